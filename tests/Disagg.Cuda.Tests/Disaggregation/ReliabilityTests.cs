using Disagg.Cuda.Model;
using Disagg.Tests.Reliability;
using Disagg.Transport.InProcess;
using Xunit.Abstractions;

namespace Disagg.Cuda.Tests.Disaggregation;

/// <summary>
/// The soak of the Core tests over a real model (the tiny Llama 3 fixture, CPU float32): prefill and decode engines, the
/// in-process transport streaming each chunk, random cancellations at every point and random faults. Nothing is lost (every
/// sampled request that completes has exactly a colocated engine's tokens), nothing leaks.
/// </summary>
[Trait("Category", "Reliability")]
public class ReliabilityTests(ITestOutputHelper output)
{
    private const int Requests = 1000;

    private static ModelRunnerOptions RunnerOptions => new() { Device = "cpu", DataType = "float32", BlockSize = 4, KvCacheBlocks = 160 };

    private static TorchModelExecutor Load() => TorchModelExecutor.Load(Fixtures.ModelDirectory("llama3"), RunnerOptions);

    [Fact]
    public async Task Soak_on_a_real_model_loses_nothing_and_leaks_nothing()
    {
        var prefillExecutor = Load();
        int vocabulary = prefillExecutor.VocabularySize;
        await using var prefill = new LlmEngine(prefillExecutor, new LlmEngineOptions { Name = "prefill", Scheduler = new() { MaxBatchedTokens = 64 } });
        await using var decode = new LlmEngine(Load(), new LlmEngineOptions { Name = "decode", Scheduler = new() { MaxBatchedTokens = 64 } });
        await using var reference = new LlmEngine(Load(), new LlmEngineOptions { Name = "reference" });
        var systemPrompts = Fixtures.LoadGolden("llama3").Prompts.Select(p => p.Ids).ToArray();

        InferenceRequest NewRequest(Random random)
        {
            var prompt = systemPrompts[random.Next(systemPrompts.Length)]
                .Concat(Enumerable.Range(0, random.Next(0, 12)).Select(_ => random.Next(1, vocabulary))).ToArray();
            var sampling = random.Next(2) == 0
                ? SamplingParameters.Greedy with { MaxTokens = random.Next(1, 10), IgnoreEndOfSequence = true }
                : new SamplingParameters { Temperature = 0.8f, TopK = 20, Seed = (ulong)random.Next(), MaxTokens = random.Next(1, 10), IgnoreEndOfSequence = true };
            return new InferenceRequest(prompt, sampling);
        }

        // Every other request is checked against the colocated engine (the check costs a whole generation).
        async ValueTask<IReadOnlyList<int>?> Reference(InferenceRequest request)
        {
            if ((request.Id.Value.GetHashCode() & 1) != 0) return null;
            var tokens = new List<int>();
            await foreach (var t in reference.GenerateAsync(request)) tokens.Add(t.TokenId);
            return tokens;
        }

        var runner = new SoakRunner(prefill, decode, new InProcessKvTransport(prefill.BlockStore!, decode.BlockStore!), NewRequest, Reference,
            new SoakOptions { Concurrency = 16, Seed = 42, DropRate = 0.03, StallRate = 0.01, PrefillGoneRate = 0.03, KvLease = TimeSpan.FromSeconds(1) });
        var summary = await runner.RunAsync(Requests);
        output.WriteLine(summary.ToString());

        Assert.True(summary.Lost == 0, $"Lost requests: {string.Join(" | ", summary.LostExamples)}");
        Assert.True(summary.Diverged == 0, $"Wrong tokens: {string.Join(" | ", summary.DivergedExamples)}");
        Assert.Equal(0, summary.FailedTyped);
        Assert.Equal(0, summary.LeakedBlocks);
        Assert.Equal(0, summary.UnobservedTaskExceptions);
        Assert.Equal(Requests, summary.Completed + summary.Cancelled);
        Assert.True(summary.TokensVerified > 0 && summary.Recoveries > 0);
    }
}
