using Disagg.Cuda.Model;
using Disagg.Sampling;
using TorchSharp;

namespace Disagg.Cuda.Tests.Model;

/// <summary>One random sampling case, run through <see cref="DeviceSampler"/> on a device and through the reference.</summary>
internal static class SamplerCase
{
    /// <summary>The reference's tokens, the device sampler's, and whether the logits tensor came back unchanged.</summary>
    public static (long[] Expected, long[] Actual, bool LogitsKept) Run(int seed, string device)
    {
        var random = new Random(seed);
        int rows = random.Next(1, 6), vocab = random.Next(1, 400);
        var logits = new float[rows * vocab];
        for (int i = 0; i < logits.Length; i++)
            logits[i] = random.Next(3) == 0 ? random.Next(-3, 4) : (float)(random.NextDouble() * 12 - 6); // ties, and spread
        var parameters = new SamplingParameters[rows];
        var histories = new int[rows][];
        var promptLengths = new int[rows];
        var seeds = new ulong[rows];
        for (int r = 0; r < rows; r++)
        {
            bool penalties = random.Next(2) == 0;
            parameters[r] = new SamplingParameters
            {
                Temperature = random.Next(5) == 0 ? 0f : (float)(0.05 + random.NextDouble() * 2.5),
                TopK = random.Next(3) == 0 ? 0 : random.Next(1, vocab + 3),
                TopP = random.Next(3) == 0 ? 1f : (float)(0.01 + random.NextDouble() * 0.99),
                MinP = random.Next(3) == 0 ? (float)random.NextDouble() : 0f,
                RepetitionPenalty = penalties && random.Next(2) == 0 ? (float)(0.5 + random.NextDouble() * 1.5) : 1f,
                PresencePenalty = penalties && random.Next(2) == 0 ? (float)(random.NextDouble() * 4 - 2) : 0f,
                FrequencyPenalty = penalties && random.Next(2) == 0 ? (float)(random.NextDouble() * 4 - 2) : 0f,
            };
            // Few distinct ids, so that tokens repeat; some beyond the vocabulary, which have no logit to change.
            histories[r] = Enumerable.Range(0, random.Next(0, 40)).Select(_ => random.Next(0, Math.Min(vocab + 2, 30))).ToArray();
            promptLengths[r] = random.Next(0, histories[r].Length + 1);
            seeds[r] = (ulong)random.NextInt64();
        }

        var rowsToSample = new SamplingRow[rows];
        var penalized = new PenaltyTable();
        var expected = new long[rows];
        var reference = new TokenSampler();
        for (int r = 0; r < rows; r++)
        {
            rowsToSample[r] = SamplingRow.For(parameters[r], vocab, seeds[r], histories[r].Length - promptLengths[r]);
            if (parameters[r].HasPenalties) // as the executor does: the history's counts, whichever penalties are on
            {
                var counts = new TokenPenalties();
                counts.Update(histories[r], promptLengths[r]);
                penalized.Add(r, vocab, counts);
            }
            expected[r] = reference.Sample(logits.AsSpan(r * vocab, vocab), parameters[r], seeds[r], histories[r], promptLengths[r]);
        }
        using var tensor = torch.tensor(logits, [rows, vocab], device: torch.device(device));
        using var before = tensor.clone();
        var actual = DeviceSampler.Sample(tensor, rowsToSample, penalized);
        return (expected, actual, tensor.equal(before).all().item<bool>());
    }
}
