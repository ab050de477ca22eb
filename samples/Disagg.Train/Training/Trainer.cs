using System.Diagnostics;
using Disagg.Train.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Disagg.Train.Training;

/// <summary>One logged point of a run.</summary>
internal sealed record TrainingPoint(int Step, double LearningRate, double TrainLoss, double? HeldOutPerplexity, double Seconds);

/// <summary>
/// Trains a <see cref="TrainingLlama"/> with AdamW (decoupled weight decay on the matrices only), warm-up + cosine rate,
/// gradient clipping, float32 weights and TF32 matrix products on CUDA. Seeded: the same corpus, settings and device give
/// the same run.
/// </summary>
internal static class Trainer
{
    public static List<TrainingPoint> Run(TrainingLlama model, int[] stream, int[] heldOut, TrainSettings settings, Device device, TextWriter log)
    {
        var schedule = settings.Schedule;
        var decayed = model.named_parameters().Where(p => p.parameter.dim() >= 2).Select(p => p.parameter).ToList();
        var plain = model.named_parameters().Where(p => p.parameter.dim() < 2).Select(p => p.parameter).ToList();
        using var optimizer = torch.optim.AdamW(
            [new AdamW.ParamGroup(decayed, lr: schedule.Peak, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: settings.WeightDecay),
             new AdamW.ParamGroup(plain, lr: schedule.Peak, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0)],
            lr: schedule.Peak);
        var windows = new TokenWindows(stream, settings.Context, settings.Seed);
        var points = new List<TrainingPoint>();
        var clock = Stopwatch.StartNew();
        double recentLoss = 0;
        int recentSteps = 0;
        model.train();
        for (int step = 1; step <= settings.Steps; step++)
        {
            using var scope = torch.NewDisposeScope();
            double rate = schedule.At(step);
            foreach (var group in optimizer.ParamGroups) group.LearningRate = rate;
            var (inputs, targets) = windows.Next(settings.BatchSize, device);
            var logits = model.forward(inputs);
            var loss = F.cross_entropy(logits.view(-1, logits.shape[2]), targets.view(-1));
            optimizer.zero_grad();
            loss.backward();
            nn.utils.clip_grad_norm_(model.parameters(), settings.ClipNorm);
            optimizer.step();
            recentLoss += loss.item<float>();
            recentSteps++;

            bool last = step == settings.Steps;
            if (step % settings.EvaluateEvery == 0 || last)
            {
                double? perplexity = last ? null : Perplexity.Evaluate(model, heldOut, settings.EvaluationContext, device).Perplexity;
                var point = new TrainingPoint(step, rate, recentLoss / recentSteps, perplexity, clock.Elapsed.TotalSeconds);
                points.Add(point);
                log.WriteLine($"step {step,5}  lr {rate:E2}  train loss {point.TrainLoss:F4}  held-out ppl {(perplexity is { } p ? p.ToString("F3") : "-")}  {point.Seconds:F1} s");
                (recentLoss, recentSteps) = (0, 0);
                model.train();
            }
        }
        return points;
    }
}
