using Disagg.Train.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Train.Training;

/// <summary>The result of <see cref="Perplexity.Evaluate"/>.</summary>
internal sealed record PerplexityResult(double Perplexity, double MeanNegativeLogLikelihood, int PredictedTokens, int Windows);

/// <summary>Held-out perplexity of a model, by <see cref="EvaluationWindows"/>, in float32 with TF32 off.</summary>
internal static class Perplexity
{
    private const int WindowsPerBatch = 16;

    public static PerplexityResult Evaluate(TrainingLlama model, int[] tokens, int contextLength, Device device)
    {
        bool tf32 = device.type == DeviceType.CUDA && torch.backends.cuda.matmul.allow_tf32;
        if (tf32) torch.backends.cuda.matmul.allow_tf32 = false; // full float32, to compare with float32 inference elsewhere
        try
        {
            model.eval();
            using var noGrad = torch.no_grad();
            var windows = EvaluationWindows.Split(tokens.Length, contextLength).ToList();
            double total = 0;
            int predicted = 0;
            // Same-length windows go together; only the last one can be shorter.
            foreach (var group in windows.GroupBy(w => w.Length).SelectMany(g => g.Chunk(WindowsPerBatch)))
            {
                using var scope = torch.NewDisposeScope();
                int length = group[0].Length;
                var ids = new long[group.Length * length];
                for (int w = 0; w < group.Length; w++)
                    for (int t = 0; t < length; t++) ids[w * length + t] = tokens[group[w].Start + t];
                var batch = torch.tensor(ids, [group.Length, length]).to(device);
                var logProbabilities = model.forward(batch.narrow(1, 0, length - 1)).log_softmax(-1);
                var picked = logProbabilities.gather(2, batch.narrow(1, 1, length - 1).unsqueeze(2));
                total -= picked.to(ScalarType.Float64).sum().item<double>();
                predicted += group.Length * (length - 1);
            }
            double mean = total / predicted;
            return new PerplexityResult(Math.Exp(mean), mean, predicted, windows.Count);
        }
        finally
        {
            if (tf32) torch.backends.cuda.matmul.allow_tf32 = true;
        }
    }
}
