using Disagg.Scheduling;
using Disagg.Tests.TestModel;
using FsCheck.Xunit;

namespace Disagg.Tests.Engines;

public class LlmEngineTests
{
    private const int Layers = 2;

    internal static LlmEngine NewEngine(ToyExecutor executor, bool prefixCaching, int maxBatchedTokens = 24, int maxRunning = 8) =>
        new(executor, new LlmEngineOptions
        {
            Scheduler = new SchedulerOptions
            {
                MaxBatchedTokens = maxBatchedTokens,
                MaxRunningSequences = maxRunning,
                EnablePrefixCaching = prefixCaching,
            },
        });

    internal static List<InferenceRequest> Workload(int seed, int count) => TestWorkloads.SharedPrefixes(seed, count);

    internal static Task<List<int>> Collect(IAsyncEnumerable<GeneratedToken> stream) => TestWorkloads.Collect(stream);

    internal static async Task AssertAllBlocksReturn(LlmEngine engine)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var load = engine.GetLoad();
            int cached = engine.PrefixCachedBlockCount;
            if (load.RunningSequences == 0 && load.WaitingRequests == 0 && engine.Allocator.FreeCount + cached == engine.Allocator.Capacity)
                return;
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"Blocks leaked: {engine.Allocator.FreeCount} free + {cached} cached of {engine.Allocator.Capacity}; load {load}.");
            await Task.Delay(1);
        }
    }

    [Property(MaxTest = 12)]
    public async Task Colocated_generation_matches_the_cache_free_reference(int seed, bool prefixCaching, bool tinyPool)
    {
        // A tiny pool forces preemption by recompute; a small token budget forces chunked prefill.
        var executor = new ToyExecutor(blocks: tinyPool ? 24 : 400, endOfSequence: 3);
        await using var engine = NewEngine(executor, prefixCaching);
        var requests = Workload(seed, 16);

        var outputs = await Task.WhenAll(requests.Select(r => Collect(engine.GenerateAsync(r))));

        for (int i = 0; i < requests.Count; i++)
            Assert.Equal(ToyModel.ReferenceGenerate(requests[i], Layers, [3], executor.MaxContextLength), outputs[i]);
        await AssertAllBlocksReturn(engine);
    }

    [Property(MaxTest = 10)]
    public async Task Disaggregated_generation_equals_colocated(int seed, bool prefixCaching)
    {
        var prefillExecutor = new ToyExecutor(blocks: 200, endOfSequence: 3);
        var decodeExecutor = new ToyExecutor(blocks: 200, endOfSequence: 3);
        await using var prefill = NewEngine(prefillExecutor, prefixCaching);
        await using var decode = NewEngine(decodeExecutor, prefixCaching);
        var transport = new StagedKvTransport(prefillExecutor.BlockStore, decodeExecutor.BlockStore);

        foreach (var request in Workload(seed, 8))
        {
            using var reservation = await decode.ReserveAsync(request);
            List<int> tokens;
            using (var prefilled = await prefill.PrefillAsync(request))
            {
                await transport.TransferAsync(prefilled.Kv, reservation);
                tokens = await Collect(decode.DecodeAsync(reservation, prefilled.FirstToken));
            }
            Assert.Equal(ToyModel.ReferenceGenerate(request, Layers, [3], prefillExecutor.MaxContextLength), tokens);
        }
        await AssertAllBlocksReturn(prefill);
        await AssertAllBlocksReturn(decode);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Stopping_a_decode_stream_after_its_first_token_returns_the_reserved_blocks(bool firstIsLast)
    {
        var executor = new ToyExecutor(blocks: 64);
        await using var engine = NewEngine(executor, prefixCaching: false);
        var request = new InferenceRequest(new[] { 1, 2, 3, 4, 5, 6 }, SamplingParameters.Greedy with { MaxTokens = 20, IgnoreEndOfSequence = true });
        var reservation = await engine.ReserveAsync(request);
        var first = new GeneratedToken(9, 0, 0, firstIsLast ? FinishReason.MaxTokens : null);
        await foreach (var token in engine.DecodeAsync(reservation, first))
        {
            Assert.Equal(9, token.TokenId);
            break; // the caller walks away after the first token
        }
        await AssertAllBlocksReturn(engine);
        Assert.Equal(engine.Allocator.Capacity, engine.Allocator.FreeCount);
    }

    [Fact]
    public async Task A_reservation_that_could_never_fit_the_pool_fails_alone()
    {
        var executor = new ToyExecutor(blocks: 4, maxContext: 4096); // 16 tokens of KV
        await using var engine = NewEngine(executor, prefixCaching: false);
        var tooBig = new InferenceRequest(Enumerable.Range(1, 40).ToArray(), SamplingParameters.Greedy);
        await Assert.ThrowsAsync<PromptTooLongException>(async () => await engine.ReserveAsync(tooBig));
        var fine = new InferenceRequest(new[] { 1, 2, 3 }, SamplingParameters.Greedy with { MaxTokens = 3 });
        Assert.Equal(ToyModel.ReferenceGenerate(fine, Layers, [], 4096), await Collect(engine.GenerateAsync(fine)));
    }

    [Fact]
    public async Task Cancelling_mid_decode_returns_every_block()
    {
        var executor = new ToyExecutor(blocks: 64);
        await using var engine = NewEngine(executor, prefixCaching: false);
        using var cts = new CancellationTokenSource();
        var request = new InferenceRequest(new[] { 1, 2, 3, 4, 5 }, SamplingParameters.Greedy with { MaxTokens = 1000, IgnoreEndOfSequence = true });

        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in engine.GenerateAsync(request, cts.Token))
                if (++seen == 3) cts.Cancel();
        });
        Assert.Equal(3, seen);
        await AssertAllBlocksReturn(engine);
        Assert.Equal(engine.Allocator.Capacity, engine.Allocator.FreeCount);
    }

    [Fact]
    public async Task Abandoning_the_stream_returns_every_block()
    {
        var executor = new ToyExecutor(blocks: 64);
        await using var engine = NewEngine(executor, prefixCaching: false);
        var request = new InferenceRequest(new[] { 9, 8, 7 }, SamplingParameters.Greedy with { MaxTokens = 500, IgnoreEndOfSequence = true });
        await foreach (var t in engine.GenerateAsync(request))
            if (t.Index == 4) break;
        await AssertAllBlocksReturn(engine);
        Assert.Equal(engine.Allocator.Capacity, engine.Allocator.FreeCount);
    }

    [Fact]
    public async Task Invalid_requests_fail_with_typed_errors_and_hold_nothing()
    {
        await using var engine = NewEngine(new ToyExecutor(blocks: 8, maxContext: 64), prefixCaching: false);
        await Assert.ThrowsAsync<InvalidRequestException>(() => Collect(engine.GenerateAsync(new InferenceRequest(Array.Empty<int>()))));
        await Assert.ThrowsAsync<InvalidRequestException>(() => Collect(engine.GenerateAsync(new InferenceRequest(new[] { 1, ToyModel.VocabularySize }))));
        var tooLong = await Assert.ThrowsAsync<PromptTooLongException>(() => Collect(engine.GenerateAsync(new InferenceRequest(new int[100]))));
        Assert.Equal(100, tooLong.PromptLength);
        // Fits the context (64) but not the pool (8 blocks of 4 tokens).
        var tooBig = await Assert.ThrowsAsync<PromptTooLongException>(() => Collect(engine.GenerateAsync(new InferenceRequest(new int[40]))));
        Assert.Contains("KV pool", tooBig.Message);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            Collect(engine.GenerateAsync(new InferenceRequest(new[] { 1 }, new SamplingParameters { TopP = 0 }))));
        await AssertAllBlocksReturn(engine);
    }

    [Fact]
    public async Task A_failing_step_fails_its_requests_and_the_engine_keeps_serving()
    {
        var executor = new ToyExecutor(blocks: 64);
        await using var engine = NewEngine(executor, prefixCaching: false);
        executor.BeforeStep = _ => throw new InvalidOperationException("device lost");
        var error = await Assert.ThrowsAsync<DisaggException>(() => Collect(engine.GenerateAsync(new InferenceRequest(new[] { 1, 2 }))));
        Assert.Contains("device lost", error.Message);
        await AssertAllBlocksReturn(engine);

        executor.BeforeStep = null;
        var request = new InferenceRequest(new[] { 1, 2 }, SamplingParameters.Greedy with { MaxTokens = 5 });
        Assert.Equal(ToyModel.ReferenceGenerate(request, Layers, [], executor.MaxContextLength), await Collect(engine.GenerateAsync(request)));
    }

    [Fact]
    public async Task Disposing_the_engine_fails_requests_in_flight()
    {
        var executor = new ToyExecutor(blocks: 64);
        var engine = NewEngine(executor, prefixCaching: false);
        using var secondStepReached = new SemaphoreSlim(0);
        using var resume = new SemaphoreSlim(0);
        executor.BeforeStep = _ =>
        {
            if (executor.Steps != 1) return;
            secondStepReached.Release();
            resume.Wait();
        };
        var request = new InferenceRequest(new[] { 1, 2 }, SamplingParameters.Greedy with { MaxTokens = 1000, IgnoreEndOfSequence = true });
        var stream = engine.GenerateAsync(request).GetAsyncEnumerator();
        Assert.True(await stream.MoveNextAsync());
        await secondStepReached.WaitAsync();
        var disposing = engine.DisposeAsync().AsTask();
        resume.Release();
        await disposing;
        await Assert.ThrowsAsync<EngineStoppedException>(async () => { while (await stream.MoveNextAsync()) { } });
        Assert.True(executor.Disposed);
        Assert.Equal(engine.Allocator.Capacity, engine.Allocator.FreeCount);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Collect(engine.GenerateAsync(request)));
    }

    [Fact]
    public async Task Released_and_cancelled_reservations_and_prefills_return_their_blocks()
    {
        var executor = new ToyExecutor(blocks: 32);
        await using var engine = NewEngine(executor, prefixCaching: false);
        var request = new InferenceRequest(Enumerable.Range(1, 17).ToArray());

        var reservation = await engine.ReserveAsync(request);
        Assert.Equal(5, reservation.Destination.BlockIds.Length);
        Assert.Equal(32 - 5, engine.Allocator.FreeCount);
        reservation.Dispose();

        var prefilled = await engine.PrefillAsync(request);
        Assert.Equal(17, prefilled.Kv.SequenceLength);
        prefilled.Dispose();
        prefilled.Dispose(); // harmless twice
        await AssertAllBlocksReturn(engine);
        Assert.Equal(32, engine.Allocator.FreeCount);

        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await engine.PrefillAsync(request, cancellationToken: cts.Token));
        await AssertAllBlocksReturn(engine);
    }
}
