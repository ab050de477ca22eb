using Disagg.Cuda.Model;
using Disagg.Cuda.Runtime;
using Disagg.Sampling;
using FsCheck.Xunit;
using TorchSharp;

namespace Disagg.Cuda.Tests.Model;

public class DeviceSamplerTests
{
    public DeviceSamplerTests() => TorchRuntime.Initialize();

    /// <summary>
    /// Rows of random logits (with many exact ties), random temperature, top-k, top-p, min-p, draws and penalties over a
    /// random history (greedy rows among them): the device sampler (here on libtorch's CPU backend) picks exactly the token
    /// the reference <see cref="TokenSampler"/> picks.
    /// </summary>
    [Property(MaxTest = 300)]
    public void Agrees_with_the_reference_sampler(int seed)
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
        var penalized = new List<(int, PenalizedToken)>();
        var collector = new TokenPenalties();
        for (int r = 0; r < rows; r++)
        {
            rowsToSample[r] = SamplingRow.For(parameters[r], vocab, seeds[r], histories[r].Length - promptLengths[r]);
            var entries = new List<PenalizedToken>();
            collector.Collect(histories[r], promptLengths[r], parameters[r], entries);
            penalized.AddRange(entries.Select(e => (r, e)));
        }
        using var tensor = torch.tensor(logits, [rows, vocab]);
        using var before = tensor.clone();
        var drawn = DeviceSampler.Sample(tensor, rowsToSample, penalized);

        Assert.True(tensor.equal(before).all().item<bool>(), "the caller's logits are left as they were");
        var reference = new TokenSampler();
        for (int r = 0; r < rows; r++)
            Assert.Equal(reference.Sample(logits.AsSpan(r * vocab, vocab), parameters[r], seeds[r], histories[r], promptLengths[r]), (int)drawn[r]);
    }
}
