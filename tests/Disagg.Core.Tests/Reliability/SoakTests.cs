using Disagg.Tests.TestModel;
using Xunit.Abstractions;
using static Disagg.Tests.Engines.LlmEngineTests;

namespace Disagg.Tests.Reliability;

[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Reliability")]
public class SoakTests(ITestOutputHelper output)
{
    private const int Layers = 2, EndOfSequence = 3;

    /// <summary>A few "system prompts" every request starts with, so that both prefix caches hit and evict.</summary>
    private static readonly int[][] SystemPrompts = [.. Enumerable.Range(0, 4).Select(i =>
        Enumerable.Range(0, 4 + 5 * i).Select(j => (j * 7 + i * 13) % (ToyModel.VocabularySize - 1) + 1).ToArray())];

    private static InferenceRequest NewRequest(Random random)
    {
        var prompt = SystemPrompts[random.Next(SystemPrompts.Length)]
            .Concat(Enumerable.Range(0, random.Next(0, 24)).Select(_ => random.Next(1, ToyModel.VocabularySize)))
            .ToArray();
        var sampling = random.Next(2) == 0
            ? SamplingParameters.Greedy with { MaxTokens = random.Next(1, 24) }
            : new SamplingParameters { Temperature = 0.9f, TopK = 12, Seed = (ulong)random.Next(), MaxTokens = random.Next(1, 24) };
        return new InferenceRequest(prompt, sampling);
    }

    private static long SettledMemory()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    /// <summary>
    /// 10,000 requests (two rounds of 5,000) through prefill + transport + decode with shared prefixes, 48 at a time, a decode
    /// pool small enough to preempt, random cancellations at every point and random faults (dropped and stalled transfers, a
    /// prefill worker gone). Every request completes with exactly the reference's tokens, is cancelled, or fails typed; none is
    /// lost; every block comes back; memory does not grow from one round to the next.
    /// </summary>
    [Fact]
    public async Task Ten_thousand_requests_with_cancellations_and_faults_lose_nothing_and_leak_nothing()
    {
        var prefillExecutor = new ToyExecutor(blocks: 256, endOfSequence: EndOfSequence);
        var decodeExecutor = new ToyExecutor(blocks: 96, endOfSequence: EndOfSequence);
        await using var prefill = NewEngine(prefillExecutor, prefixCaching: true, maxBatchedTokens: 96, maxRunning: 32);
        await using var decode = NewEngine(decodeExecutor, prefixCaching: true, maxBatchedTokens: 96, maxRunning: 32);
        var runner = new SoakRunner(prefill, decode, new StagedKvTransport(prefillExecutor.BlockStore, decodeExecutor.BlockStore), NewRequest,
            r => ValueTask.FromResult<IReadOnlyList<int>?>(ToyModel.ReferenceGenerate(r, Layers, [EndOfSequence], prefillExecutor.MaxContextLength)),
            new SoakOptions { Concurrency = 48, Seed = 20250101, KvLease = TimeSpan.FromMilliseconds(500) });

        var first = await runner.RunAsync(5_000);
        long afterFirst = SettledMemory();
        var second = await runner.RunAsync(5_000, firstIndex: 5_000);
        long afterSecond = SettledMemory();
        output.WriteLine($"round 1: {first}");
        output.WriteLine($"round 2: {second}");
        output.WriteLine($"managed memory after round 1: {afterFirst / 1024} KiB, after round 2: {afterSecond / 1024} KiB");

        foreach (var round in new[] { first, second })
        {
            Assert.True(round.Lost == 0, $"Lost requests: {string.Join(" | ", round.LostExamples)}");
            Assert.True(round.Diverged == 0, $"Wrong tokens: {string.Join(" | ", round.DivergedExamples)}");
            Assert.Equal(0, round.FailedTyped); // every injected fault is recovered
            Assert.Equal(0, round.LeakedBlocks);
            Assert.Equal(0, round.UnobservedTaskExceptions);
            Assert.Equal(round.Requests, round.Completed + round.Cancelled);
            // The run exercised what it claims to: every cancellation point, every fault, recovery and lease expiry.
            Assert.Equal(4, round.CancelledAt.Count);
            Assert.All(round.FaultsInjected.Values, n => Assert.True(n > 0));
            Assert.True(round.Recoveries >= round.FaultsInjected.Values.Sum() - round.Cancelled);
            Assert.True(round.ExpiredKvLeases >= 1);
            Assert.True(round.TokensVerified > 0);
        }
        Assert.True(decode.PrefixCacheStatistics.HitTokens > 0 && prefill.PrefixCacheStatistics.HitTokens > 0);
        Assert.True(afterSecond - afterFirst < 4 << 20, $"Managed memory grew by {(afterSecond - afterFirst) / 1024} KiB over 5,000 requests.");
    }
}
