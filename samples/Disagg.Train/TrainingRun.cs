using System.Diagnostics;
using Disagg.Cuda.Runtime;
using Disagg.Tokenization;
using Disagg.Train.Corpus;
using Disagg.Train.Model;
using Disagg.Train.Output;
using Disagg.Train.Tokenizer;
using Disagg.Train.Training;
using TorchSharp;

namespace Disagg.Train;

/// <summary>
/// The whole run: corpus and split, documents, tokenizer (trained here, written as tokenizer.json, then read back through
/// Disagg's <see cref="ModelTokenizer"/> on Microsoft.ML.Tokenizers to encode every document, so training sees the ids
/// inference will produce), model, training, bfloat16 rounding, held-out evaluation, and the model directory.
/// </summary>
internal static class TrainingRun
{
    public static void Execute(TrainOptions options, TextWriter log)
    {
        var clock = Stopwatch.StartNew();
        var settings = options.Settings;
        var corpus = KjvCorpus.Load(options.Corpus);
        var documents = TrainingDocuments.Build(corpus.Training, options.ChatFraction, settings.Seed);
        string heldOutText = TrainingDocuments.PlainText(corpus.HeldOut);
        log.WriteLine($"corpus: {corpus.Chapters.Count} chapters, {corpus.Training.Count} for training ({documents.Count} documents), {corpus.HeldOut.Count} held out");

        Directory.CreateDirectory(options.Output);
        var vocabulary = BpeTrainer.Train(documents, options.Vocab, SpecialTokens.All);
        TokenizerFiles.Write(vocabulary, options.Output, settings.Context);
        var tokenizer = ModelTokenizer.Load(options.Output);
        int[] stream = [.. documents.SelectMany(d => tokenizer.Encode(d, addSpecialTokens: false))];
        int[] heldOut = [.. tokenizer.Encode(heldOutText, addSpecialTokens: false)];
        if (!heldOut.SequenceEqual(vocabulary.Encode(heldOutText)))
            throw new InvalidDataException("The loaded tokenizer.json and the trainer's BPE disagree on the held-out text.");
        log.WriteLine($"tokenizer: {vocabulary.Size} tokens ({vocabulary.Merges.Count} merges); {stream.Length:N0} training tokens, {heldOut.Length:N0} held-out; {clock.Elapsed.TotalSeconds:F1} s");

        var device = InitializeDevice(options.Device, settings.Seed);
        var shape = options.Shape with { VocabSize = vocabulary.Size };
        using var model = new TrainingLlama(shape, device);
        log.WriteLine($"model: {shape.ParameterCount:N0} parameters on {options.Device}");
        var trainClock = Stopwatch.StartNew();
        var curve = Trainer.Run(model, stream, heldOut, settings, device, log);
        double trainingSeconds = trainClock.Elapsed.TotalSeconds;

        Checkpoint.RoundToBFloat16(model);
        var result = Perplexity.Evaluate(model, heldOut, settings.EvaluationContext, device);
        curve[^1] = curve[^1] with { HeldOutPerplexity = result.Perplexity };
        log.WriteLine($"held-out perplexity {result.Perplexity:F4} over {result.PredictedTokens:N0} predictions (bfloat16 weights, float32 math)");

        long bytes = Checkpoint.Write(model, options.Output);
        ConfigFiles.Write(shape, vocabulary, options.Output);
        string deviceName = options.Device == "cuda" ? $"CUDA ({DeviceName()})" : "CPU";
        ModelCard.Write(new RunSummary(shape, bytes, settings, deviceName, corpus.Training.Count, documents.Count, stream.Length,
            corpus.HeldOut, heldOut.Length, result, curve, trainingSeconds), heldOutText, options.Output);
        log.WriteLine($"wrote {Path.GetFullPath(options.Output)} ({bytes:N0} bytes of weights) in {clock.Elapsed.TotalSeconds:F1} s");
    }

    private static torch.Device InitializeDevice(string device, int seed)
    {
        bool cuda = device == "cuda";
        TorchRuntime.Initialize(cuda ? TorchBackend.Cuda : TorchBackend.Cpu);
        torch.manual_seed(seed);
        if (cuda)
        {
            torch.cuda.manual_seed_all(seed);
            torch.backends.cuda.matmul.allow_tf32 = true;
            torch.backends.cudnn.allow_tf32 = true;
        }
        return torch.device(device);
    }

    private static string DeviceName()
    {
        try
        {
            var query = Process.Start(new ProcessStartInfo("nvidia-smi", "--query-gpu=name --format=csv,noheader") { RedirectStandardOutput = true });
            string? name = query?.StandardOutput.ReadLine();
            query?.WaitForExit();
            return string.IsNullOrWhiteSpace(name) ? "GPU" : name.Trim();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "GPU";
        }
    }
}
