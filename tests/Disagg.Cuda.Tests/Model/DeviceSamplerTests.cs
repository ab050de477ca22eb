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
    /// Rows of random logits (with many exact ties) and random temperature, top-k, top-p and draws: the device sampler
    /// (here on libtorch's CPU backend) picks exactly the token the reference <see cref="TokenSampler"/> picks.
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
        var seeds = new ulong[rows];
        var indices = new int[rows];
        for (int r = 0; r < rows; r++)
        {
            parameters[r] = new SamplingParameters
            {
                Temperature = (float)(0.05 + random.NextDouble() * 2.5),
                TopK = random.Next(3) == 0 ? 0 : random.Next(1, vocab + 3),
                TopP = random.Next(3) == 0 ? 1f : (float)(0.01 + random.NextDouble() * 0.99),
            };
            seeds[r] = (ulong)random.NextInt64();
            indices[r] = random.Next(0, 1000);
        }

        using var tensor = torch.tensor(logits, [rows, vocab]);
        var drawn = DeviceSampler.Sample(tensor,
            parameters.Select(p => 1.0 / p.Temperature).ToArray(),
            parameters.Select(p => p.TopK > 0 ? (long)p.TopK : vocab).ToArray(),
            parameters.Select(p => p.TopP < 1f ? p.TopP : 2.0).ToArray(),
            Enumerable.Range(0, rows).Select(r => SamplingRandom.Uniform(seeds[r], indices[r])).ToArray());

        var reference = new TokenSampler();
        for (int r = 0; r < rows; r++)
            Assert.Equal(reference.Sample(logits.AsSpan(r * vocab, vocab), parameters[r], seeds[r], indices[r]), (int)drawn[r]);
    }
}
