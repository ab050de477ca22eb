using Disagg.Coordination;
using Disagg.Tests.TestModel;
using static Disagg.Tests.Engines.LlmEngineTests;

namespace Disagg.Tests.Reliability;

/// <summary>
/// One fault at a time, in one process: each request completes with the reference's tokens (recovered by a local re-run) or
/// fails typed, and both engines get every block back.
/// </summary>
[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Reliability")]
public sealed class FaultInjectionTests : IAsyncLifetime
{
    private const int Layers = 2, EndOfSequence = 3;
    private readonly ToyExecutor _prefillExecutor = new(blocks: 128, endOfSequence: EndOfSequence);
    private readonly ToyExecutor _decodeExecutor = new(blocks: 128, endOfSequence: EndOfSequence);
    private readonly ManualTimeProvider _clock = new();
    private readonly LlmEngine _prefill, _decode;
    private long _unobserved;

    public FaultInjectionTests()
    {
        _prefill = NewEngine(_prefillExecutor, prefixCaching: true);
        _decode = NewEngine(_decodeExecutor, prefixCaching: true);
    }

    public Task InitializeAsync()
    {
        TaskScheduler.UnobservedTaskException += CountUnobserved;
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _prefill.DisposeAsync();
        await _decode.DisposeAsync();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        TaskScheduler.UnobservedTaskException -= CountUnobserved;
        Assert.Equal(0, Interlocked.Read(ref _unobserved));
    }

    private void CountUnobserved(object? sender, UnobservedTaskExceptionEventArgs e) => Interlocked.Increment(ref _unobserved);

    private static InferenceRequest Request(int seed, int maxTokens = 12) =>
        new(Enumerable.Range(0, 30).Select(i => (i * 5 + seed) % 40 + 1).ToArray(),
            new SamplingParameters { Temperature = 0.8f, TopK = 10, Seed = (ulong)seed, MaxTokens = maxTokens, IgnoreEndOfSequence = true });

    private static List<int> Reference(InferenceRequest request) => ToyModel.ReferenceGenerate(request, Layers, [EndOfSequence], 4096);

    private DisaggregatedEngine Coordinator(IKvTransport transport, bool recover = true, IPrefillEngine? prefill = null) =>
        new([prefill ?? _prefill], [_decode], (_, _) => transport, new DisaggregationOptions
        {
            LocalPrefillMaxUncachedTokens = 0,
            RecoverLocally = recover,
            KvLease = TimeSpan.FromSeconds(30),
            TimeProvider = _clock,
        });

    private FaultInjectingKvTransport Faulty(TransferFault fault) =>
        new(new StagedKvTransport(_prefillExecutor.BlockStore, _decodeExecutor.BlockStore), _ => fault);

    private async Task AssertBothSidesLeakFree()
    {
        await AssertAllBlocksReturn(_prefill);
        await AssertAllBlocksReturn(_decode);
    }

    [Fact]
    public async Task A_transfer_that_drops_midway_is_recovered_by_a_local_prefill_on_the_decode_side()
    {
        var transport = Faulty(TransferFault.Drop);
        var coordinator = Coordinator(transport);
        var request = Request(1);
        Assert.Equal(Reference(request), await Collect(coordinator.GenerateAsync(request)));
        Assert.Equal((1, 1), (transport.Drops, coordinator.RecoveryCount));
        // The decode worker computed the prompt itself (a decode after a transfer computes only generated tokens).
        Assert.True(_decodeExecutor.ComputedPositions >= request.PromptTokens.Length);
        await AssertBothSidesLeakFree();
    }

    [Fact]
    public async Task Without_recovery_a_dropped_transfer_fails_typed_and_releases_both_sides()
    {
        var coordinator = Coordinator(Faulty(TransferFault.Drop), recover: false);
        var error = await Assert.ThrowsAsync<KvTransferException>(() => Collect(coordinator.GenerateAsync(Request(2))));
        Assert.Contains("dropped", error.Message);
        await AssertBothSidesLeakFree();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_stalled_transfer_frees_the_prefill_kv_when_its_lease_expires(bool recover)
    {
        var transport = Faulty(TransferFault.Stall);
        using var stalled = new SemaphoreSlim(0);
        transport.Stalled = _ => stalled.Release();
        var coordinator = Coordinator(transport, recover);
        var request = Request(3);
        var tokens = coordinator.GenerateAsync(request).GetAsyncEnumerator();
        Assert.True(await tokens.MoveNextAsync()); // the first token arrives while the KV is (not) moving
        Assert.True(await stalled.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.True(_prefill.Allocator.FreeCount + _prefill.PrefixCachedBlockCount < _prefill.Allocator.Capacity); // held for the transfer

        _clock.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(0, coordinator.ExpiredKvLeaseCount);
        _clock.Advance(TimeSpan.FromSeconds(1));
        await AssertAllBlocksReturn(_prefill); // released by the lease, while the caller still holds its stream
        Assert.Equal(1, coordinator.ExpiredKvLeaseCount);

        var rest = new List<int> { tokens.Current.TokenId };
        if (recover)
        {
            while (await tokens.MoveNextAsync()) rest.Add(tokens.Current.TokenId);
            Assert.Equal(Reference(request), rest);
        }
        else
        {
            var timeout = await Assert.ThrowsAsync<DisaggTimeoutException>(async () => { while (await tokens.MoveNextAsync()) { } });
            Assert.Equal(TimeSpan.FromSeconds(30), timeout.Timeout);
            Assert.Contains("KV lease", timeout.Message);
        }
        await tokens.DisposeAsync();
        await AssertBothSidesLeakFree();
    }

    [Fact]
    public async Task A_prefill_worker_that_is_gone_is_replaced_by_a_local_prefill_on_the_decode_side()
    {
        var otherExecutor = new ToyExecutor(blocks: 64, endOfSequence: EndOfSequence);
        var gone = NewEngine(otherExecutor, prefixCaching: false);
        await gone.DisposeAsync();
        var transport = new StagedKvTransport(otherExecutor.BlockStore, _decodeExecutor.BlockStore);
        var recovering = new DisaggregatedEngine([gone], [_decode], (_, _) => transport, new DisaggregationOptions { LocalPrefillMaxUncachedTokens = 0 });
        var request = Request(4);
        Assert.Equal(Reference(request), await Collect(recovering.GenerateAsync(request)));
        Assert.Equal(1, recovering.RecoveryCount);

        var failing = new DisaggregatedEngine([gone], [_decode], (_, _) => transport,
            new DisaggregationOptions { LocalPrefillMaxUncachedTokens = 0, RecoverLocally = false });
        await Assert.ThrowsAsync<EngineStoppedException>(() => Collect(failing.GenerateAsync(Request(5))));
        await AssertAllBlocksReturn(_decode);
    }

    [Fact]
    public async Task A_caller_that_leaves_while_the_kv_moves_gets_both_sides_released()
    {
        var transport = Faulty(TransferFault.Stall);
        using var stalled = new SemaphoreSlim(0);
        transport.Stalled = _ => stalled.Release();
        var coordinator = Coordinator(transport);
        await foreach (var _ in coordinator.GenerateAsync(Request(6)))
        {
            Assert.True(await stalled.WaitAsync(TimeSpan.FromSeconds(20)));
            break; // the transfer is in flight: leaving must stop it before the reservation's blocks go back
        }
        await AssertBothSidesLeakFree();
        Assert.Equal(0, coordinator.ExpiredKvLeaseCount);
    }

    [Fact]
    public async Task A_decode_worker_short_of_kv_blocks_preempts_and_queues_and_every_request_completes()
    {
        var decodeExecutor = new ToyExecutor(blocks: 20, endOfSequence: EndOfSequence); // 80 tokens: about two requests at once
        await using var decode = NewEngine(decodeExecutor, prefixCaching: false);
        var transport = new StagedKvTransport(_prefillExecutor.BlockStore, decodeExecutor.BlockStore);
        var coordinator = new DisaggregatedEngine([_prefill], [decode], (_, _) => transport, new DisaggregationOptions { LocalPrefillMaxUncachedTokens = 0 });
        var requests = Enumerable.Range(10, 12).Select(seed => Request(seed, maxTokens: 20)).ToList();
        var outputs = await Task.WhenAll(requests.Select(r => Collect(coordinator.GenerateAsync(r))));
        for (int i = 0; i < requests.Count; i++) Assert.Equal(Reference(requests[i]), outputs[i]);
        // Decode computes only generated tokens unless a sequence was preempted and recomputed from its start.
        long decodedTokens = outputs.Sum(o => o.Count - 1L);
        Assert.True(decodeExecutor.ComputedPositions > decodedTokens, "No sequence was preempted: the test did not run out of blocks.");
        await AssertAllBlocksReturn(_prefill);
        await AssertAllBlocksReturn(decode);
        Assert.Equal(0, coordinator.RecoveryCount);
    }

    [Fact]
    public async Task A_full_decode_queue_rejects_with_a_typed_error_and_is_not_recovered_elsewhere()
    {
        var decodeExecutor = new ToyExecutor(blocks: 12, endOfSequence: EndOfSequence); // one request's prompt at a time
        await using var decode = new LlmEngine(decodeExecutor, new LlmEngineOptions
        {
            Scheduler = new Disagg.Scheduling.SchedulerOptions { MaxBatchedTokens = 24, MaxRunningSequences = 8, MaxWaitingRequests = 2, EnablePrefixCaching = false },
        });
        using var gate = new ManualResetEventSlim(false);
        decodeExecutor.BeforeStep = _ => gate.Wait(); // decode holds its first sequence's blocks: later reservations queue
        var transport = new StagedKvTransport(_prefillExecutor.BlockStore, decodeExecutor.BlockStore);
        var coordinator = new DisaggregatedEngine([_prefill], [decode], (_, _) => transport, new DisaggregationOptions { LocalPrefillMaxUncachedTokens = 0 });

        // All eight reserve at once (synchronously, in this loop), before the first can reach its decode step.
        var requests = Enumerable.Range(20, 8).Select(seed => Request(seed, maxTokens: 4)).ToList();
        var runs = requests.Select(r => Collect(coordinator.GenerateAsync(r))).ToList();
        try
        {
            await TestWorkloadsWait.Until(() => runs.Count(t => t.IsFaulted) >= 5, "the queue never filled");
        }
        finally
        {
            gate.Set();
        }
        int completed = 0, rejected = 0;
        for (int i = 0; i < runs.Count; i++)
        {
            try
            {
                Assert.Equal(Reference(requests[i]), await runs[i]);
                completed++;
            }
            catch (EngineOverloadedException ex)
            {
                Assert.Contains("MaxWaitingRequests", ex.Message);
                rejected++;
            }
        }
        Assert.Equal((3, 5), (completed, rejected)); // one reserved and two waiting: the rest are turned away at once
        Assert.Equal(0, coordinator.RecoveryCount);
        await AssertAllBlocksReturn(_prefill);
        await AssertAllBlocksReturn(decode);
    }
}
