using Disagg.Coordination;
using Disagg.Tests.TestModel;
using Disagg.Tests.Engines;
using static Disagg.Tests.Engines.LlmEngineTests;

namespace Disagg.Tests.Coordination;

public class DisaggregatedEngineTests
{
    private const int Layers = 2, EndOfSequence = 3;

    private sealed class Cluster : IAsyncDisposable
    {
        public readonly List<(ToyExecutor Executor, LlmEngine Engine)> Prefill = [], Decode = [];
        public readonly Dictionary<(IPrefillEngine, IDecodeEngine), StagedKvTransport> Transports = [];
        public readonly List<KvTransferResult> Transfers = [];

        public Cluster(int prefillWorkers, int decodeWorkers, bool prefixCaching, int blocks = 200)
        {
            for (int i = 0; i < prefillWorkers; i++)
            {
                var x = new ToyExecutor(blocks, endOfSequence: EndOfSequence);
                Prefill.Add((x, NewEngine(x, prefixCaching)));
            }
            for (int i = 0; i < decodeWorkers; i++)
            {
                var x = new ToyExecutor(blocks, endOfSequence: EndOfSequence);
                Decode.Add((x, NewEngine(x, prefixCaching)));
            }
            foreach (var p in Prefill)
                foreach (var d in Decode)
                    Transports[(p.Engine, d.Engine)] = new StagedKvTransport(p.Executor.BlockStore, d.Executor.BlockStore);
        }

        public DisaggregatedEngine Coordinator(RoutingPolicy policy, int localPrefillMaxUncachedTokens) => new(
            [.. Prefill.Select(p => (IPrefillEngine)p.Engine)], [.. Decode.Select(d => (IDecodeEngine)d.Engine)],
            (p, d) => Transports[(p, d)],
            new DisaggregationOptions
            {
                Policy = policy,
                LocalPrefillMaxUncachedTokens = localPrefillMaxUncachedTokens,
                TransferCompleted = r => { lock (Transfers) Transfers.Add(r); },
            });

        public async Task AssertAllBlocksReturn()
        {
            foreach (var (_, engine) in Prefill.Concat(Decode)) await LlmEngineTests.AssertAllBlocksReturn(engine);
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var (_, engine) in Prefill.Concat(Decode)) await engine.DisposeAsync();
        }
    }

    /// <summary>Concurrent random requests through two prefill and two decode workers give exactly the cache-free reference's tokens.</summary>
    [Theory]
    [InlineData(1, RoutingPolicy.CacheAware, 0, true)]
    [InlineData(2, RoutingPolicy.RoundRobin, 0, false)]
    [InlineData(3, RoutingPolicy.LeastLoaded, 8, true)]
    [InlineData(4, RoutingPolicy.CacheAware, 12, true)]
    public async Task Disaggregated_output_equals_the_colocated_reference(int seed, RoutingPolicy policy, int localThreshold, bool prefixCaching)
    {
        await using var cluster = new Cluster(2, 2, prefixCaching);
        var coordinator = cluster.Coordinator(policy, localThreshold);
        var requests = Workload(seed, 16);
        var results = await Task.WhenAll(requests.Select(r => Collect(coordinator.GenerateAsync(r))));
        for (int i = 0; i < requests.Count; i++)
            Assert.Equal(ToyModel.ReferenceGenerate(requests[i], Layers, [EndOfSequence], 4096), results[i]);
        Assert.Equal(requests.Count, coordinator.LocalPrefillCount + coordinator.DisaggregatedCount);
        if (localThreshold == 0) Assert.Equal(0, coordinator.LocalPrefillCount);
        await cluster.AssertAllBlocksReturn();
    }

    [Fact]
    public async Task Only_the_blocks_the_decode_worker_lacks_cross_and_its_hit_counts_stay_exact()
    {
        await using var cluster = new Cluster(1, 1, prefixCaching: true);
        var coordinator = cluster.Coordinator(RoutingPolicy.CacheAware, localPrefillMaxUncachedTokens: 0);
        var sampling = SamplingParameters.Greedy with { MaxTokens = 3, IgnoreEndOfSequence = true };
        int[] system = [.. Enumerable.Range(10, 24)];  // vocabulary is 48                          // 6 blocks of 4
        await Collect(coordinator.GenerateAsync(new InferenceRequest(system.Concat([40, 41]).ToArray(), sampling)));
        var decode = cluster.Decode[0].Engine;
        long hitsBefore = decode.PrefixCacheStatistics.HitTokens;

        var second = new InferenceRequest(system.Concat([42, 43, 44, 45, 46]).ToArray(), sampling); // 29 tokens: 8 blocks
        Assert.Equal(ToyModel.ReferenceGenerate(second, Layers, [EndOfSequence], 4096), await Collect(coordinator.GenerateAsync(second)));
        Assert.Equal(2, cluster.Transfers[^1].Blocks);                        // blocks 6 and 7 only
        Assert.Equal(24, decode.PrefixCacheStatistics.HitTokens - hitsBefore);
        await cluster.AssertAllBlocksReturn();
    }

    [Fact]
    public async Task Short_or_mostly_cached_prompts_are_prefilled_on_the_decode_worker()
    {
        await using var cluster = new Cluster(1, 1, prefixCaching: true);
        var coordinator = cluster.Coordinator(RoutingPolicy.CacheAware, localPrefillMaxUncachedTokens: 8);
        var sampling = SamplingParameters.Greedy with { MaxTokens = 2, IgnoreEndOfSequence = true };

        await Collect(coordinator.GenerateAsync(new InferenceRequest(new[] { 1, 2, 3, 4, 5 }, sampling)));
        Assert.Equal((1, 0), (coordinator.LocalPrefillCount, coordinator.DisaggregatedCount));
        Assert.Equal(0, cluster.Prefill[0].Executor.Steps);

        int[] longPrompt = [.. Enumerable.Range(10, 30)];
        await Collect(coordinator.GenerateAsync(new InferenceRequest(longPrompt, sampling)));
        Assert.Equal(1, coordinator.DisaggregatedCount);
        // Now the decode worker caches it: the same prompt plus a little is cheap to finish there.
        await Collect(coordinator.GenerateAsync(new InferenceRequest(longPrompt.Concat([7, 8]).ToArray(), sampling)));
        Assert.Equal(2, coordinator.LocalPrefillCount);
        await cluster.AssertAllBlocksReturn();
    }

    [Fact]
    public async Task Cancelling_mid_transfer_returns_every_block_on_both_sides()
    {
        await using var cluster = new Cluster(1, 1, prefixCaching: true);
        var coordinator = cluster.Coordinator(RoutingPolicy.RoundRobin, localPrefillMaxUncachedTokens: 0);
        using var cts = new CancellationTokenSource();
        var transport = cluster.Transports.Values.Single();
        transport.BeforeLayer = (layer, _) =>
        {
            if (layer == 1) cts.Cancel();
            return ValueTask.CompletedTask;
        };
        var request = new InferenceRequest(Enumerable.Range(1, 40).ToArray(), SamplingParameters.Greedy with { MaxTokens = 50 });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Collect(coordinator.GenerateAsync(request, cts.Token)));
        await cluster.AssertAllBlocksReturn();
    }

    [Fact]
    public void Workers_with_different_kv_layouts_are_refused()
    {
        var a = new ToyExecutor(16, blockSize: 4);
        var b = new ToyExecutor(16, blockSize: 8);
        var prefill = NewEngine(a, prefixCaching: false);
        var decode = NewEngine(b, prefixCaching: false);
        Assert.Throws<KvLayoutMismatchException>(() => new DisaggregatedEngine([prefill], [decode], (_, _) => throw new InvalidOperationException()));
        _ = prefill.DisposeAsync();
        _ = decode.DisposeAsync();
    }
}
