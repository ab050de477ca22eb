using Disagg.Tests.TestModel;
using Disagg.Transport.Sockets;

namespace Disagg.Transport.Tests.Sockets;

public class DisaggregatedOverSocketsTests
{
    /// <summary>Random requests sharing a few "system prompts"; some unseeded, so the seed drawn at creation must cross the wire.</summary>
    private static List<InferenceRequest> Workload(int seed, int count) => TestWorkloads.SharedPrefixes(seed, count, alwaysSeeded: false);

    [Theory]
    [InlineData(true, false, 1)]
    [InlineData(true, true, 2)]
    [InlineData(false, false, 3)]
    [InlineData(false, true, 4)]
    public async Task Disaggregated_over_a_socket_equals_colocated(bool unix, bool prefixCaching, int seed)
    {
        await using var decode = new DecodeSide(unix, prefixCaching);
        await using var remote = await decode.ConnectAsync();
        await AssertRemoteDecodeEqualsColocated(decode, remote, prefixCaching, Workload(seed, 12));
    }

    /// <summary>Runs <paramref name="requests"/> one by one, then all at once, prefilled here and decoded through
    /// <paramref name="remote"/>: each gives the colocated engine's tokens (which are the reference's), and nothing is left held.</summary>
    internal static async Task AssertRemoteDecodeEqualsColocated(DecodeSide decode, RemoteDecodeEngine remote, bool prefixCaching, List<InferenceRequest> requests)
    {
        await using var prefill = new PrefillSide(prefixCaching);
        await using var colocated = TestSupport.NewEngine(new ToyExecutor(blocks: 200, endOfSequence: 3), prefixCaching, "colocated");
        var transport = remote.CreateTransport(prefill.Executor.BlockStore);
        Assert.Equal(prefill.Engine.KvLayout, remote.KvLayout);
        Assert.Equal(decode.Engine.MaxContextLength, remote.MaxContextLength);

        // Sequentially, so that prefix-cache hits happen, then all at once over the one connection.
        var sequential = new List<List<int>>();
        foreach (var r in requests) sequential.Add((await prefill.GenerateAsync(remote, transport, r)).Tokens);
        var concurrent = await Task.WhenAll(requests.Select(async r => (await prefill.GenerateAsync(remote, transport, r)).Tokens));

        for (int i = 0; i < requests.Count; i++)
        {
            var expected = await TestSupport.Collect(colocated.GenerateAsync(requests[i]));
            Assert.Equal(ToyModel.ReferenceGenerate(requests[i], TestSupport.Layers, [3], 4096), expected);
            Assert.Equal(expected, sequential[i]);
            Assert.Equal(expected, concurrent[i]);
        }
        await decode.AssertIdleAndLeakFree();
        await TestSupport.AssertAllBlocksReturn(prefill.Engine);
        Assert.True(remote.IsConnected);
        Assert.Equal(decode.Engine.Allocator.Capacity, remote.GetLoad().TotalKvBlocks);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Only_blocks_the_decode_side_lacks_cross_the_wire(bool unix)
    {
        await using var decode = new DecodeSide(unix, prefixCaching: true);
        await using var prefill = new PrefillSide(prefixCaching: false);
        await using var remote = await decode.ConnectAsync();
        var transport = remote.CreateTransport(prefill.Executor.BlockStore);

        var shared = Enumerable.Range(1, 16).Select(i => i % 40 + 1).ToArray(); // four whole blocks of 4
        var first = new InferenceRequest(shared.Concat(new[] { 5, 6, 9 }).ToArray(), SamplingParameters.Greedy with { MaxTokens = 5 });
        var second = new InferenceRequest(shared.Concat(new[] { 11, 12, 13, 14, 15, 16 }).ToArray(),
            new SamplingParameters { Temperature = 0.7f, Seed = 42, MaxTokens = 8 });

        var a = await prefill.GenerateAsync(remote, transport, first);
        Assert.Equal(0, a.CachedTokens);
        Assert.Equal(5, a.Transfer.Blocks); // 19 tokens: all five blocks
        Assert.Equal(5 * decode.Engine.KvLayout.BytesPerBlock, a.Transfer.Bytes);

        var b = await prefill.GenerateAsync(remote, transport, second);
        Assert.Equal(16, b.CachedTokens);
        Assert.Equal(2, b.Transfer.Blocks); // 22 tokens = 6 blocks, the first 4 already on the decode side
        Assert.Equal(2 * decode.Engine.KvLayout.BytesPerBlock, b.Transfer.Bytes);

        Assert.Equal(ToyModel.ReferenceGenerate(first, TestSupport.Layers, [3], 4096), a.Tokens);
        Assert.Equal(ToyModel.ReferenceGenerate(second, TestSupport.Layers, [3], 4096), b.Tokens);
        await decode.AssertIdleAndLeakFree();
        await TestSupport.AssertAllBlocksReturn(prefill.Engine);
    }

    [Fact]
    public async Task A_missing_transfer_is_refused_rather_than_decoding_garbage()
    {
        await using var decode = new DecodeSide(unix: true);
        await using var prefill = new PrefillSide();
        await using var remote = await decode.ConnectAsync();
        var request = new InferenceRequest(new[] { 1, 2, 3, 4, 5, 6 }, SamplingParameters.Greedy with { MaxTokens = 4 });
        using var reservation = await remote.ReserveAsync(request);
        using var prefilled = await prefill.Engine.PrefillAsync(request);
        var error = await Assert.ThrowsAsync<DisaggProtocolException>(() => TestSupport.Collect(remote.DecodeAsync(reservation, prefilled.FirstToken)));
        Assert.Equal(ProtocolErrorCode.TransferIncomplete, error.Code);
        Assert.True(error.IsRemote);
        Assert.True(remote.IsConnected); // a per-request error, not a broken connection
        await decode.AssertIdleAndLeakFree();
    }

    [Fact]
    public async Task Requests_the_worker_rejects_fail_with_typed_errors()
    {
        await using var decode = new DecodeSide(unix: true, blocks: 8);
        await using var remote = await decode.ConnectAsync();
        await Assert.ThrowsAsync<InvalidRequestException>(async () => await remote.ReserveAsync(new InferenceRequest(new[] { 1, ToyModel.VocabularySize })));
        await Assert.ThrowsAsync<InvalidRequestException>(async () => await remote.ReserveAsync(new InferenceRequest(new int[5000]))); // context 4096
        await Assert.ThrowsAsync<InvalidRequestException>(async () =>
            await remote.ReserveAsync(new InferenceRequest(new[] { 1 }, new SamplingParameters { TopP = 0 })));
        await Assert.ThrowsAsync<InvalidRequestException>(async () =>
            await remote.ReserveAsync(new InferenceRequest(new[] { 1 }, new SamplingParameters { RepetitionPenalty = float.NaN })));
        await Assert.ThrowsAsync<InvalidRequestException>(async () =>
            await remote.ReserveAsync(new InferenceRequest(new[] { 1 }, new SamplingParameters { FrequencyPenalty = 2.5f })));
        Assert.True(remote.IsConnected);
        await decode.AssertIdleAndLeakFree();
    }

    [Fact]
    public async Task Layout_mismatch_is_reported_before_anything_is_sent()
    {
        await using var decode = new DecodeSide(unix: true);
        await using var remote = await decode.ConnectAsync();
        var otherExecutor = new ToyExecutor(blocks: 64, blockSize: 8, endOfSequence: 3);
        await using var other = TestSupport.NewEngine(otherExecutor, prefixCaching: false, "other");
        var transport = remote.CreateTransport(otherExecutor.BlockStore);
        var request = new InferenceRequest(new[] { 1, 2, 3 });
        using var reservation = await remote.ReserveAsync(request);
        using var prefilled = await other.PrefillAsync(request);
        await Assert.ThrowsAsync<KvLayoutMismatchException>(async () => await transport.TransferAsync(prefilled.Kv, reservation));
    }

    [Fact]
    public async Task Graceful_stop_lets_requests_in_flight_finish_and_refuses_new_ones()
    {
        var decode = new DecodeSide(unix: true);
        await using var prefill = new PrefillSide();
        await using var remote = await decode.ConnectAsync();
        var transport = remote.CreateTransport(prefill.Executor.BlockStore);
        var request = new InferenceRequest(new[] { 4, 5, 6, 7, 8 }, SamplingParameters.Greedy with { MaxTokens = 30, IgnoreEndOfSequence = true });
        using var reservation = await remote.ReserveAsync(request);
        using var prefilled = await prefill.Engine.PrefillAsync(request);
        await transport.TransferAsync(prefilled.Kv, reservation);
        // Hold the decode engine before its first decode step, so that the request is surely in flight when the stop begins.
        using var gate = new ManualResetEventSlim(false);
        decode.Executor.BeforeStep = _ => gate.Wait();
        var stream = remote.DecodeAsync(reservation, prefilled.FirstToken).GetAsyncEnumerator();
        Assert.True(await stream.MoveNextAsync()); // the first token comes back without a step

        var stopping = decode.Server.StopAsync();
        await Assert.ThrowsAsync<EngineStoppedException>(async () => await remote.ReserveAsync(new InferenceRequest(new[] { 1, 2 })));
        Assert.False(stopping.IsCompleted);
        gate.Set();
        var tokens = new List<int> { stream.Current.TokenId };
        while (await stream.MoveNextAsync()) tokens.Add(stream.Current.TokenId);
        Assert.Equal(ToyModel.ReferenceGenerate(request, TestSupport.Layers, [3], 4096), tokens);
        await stopping.WaitAsync(TestSupport.Bound);
        await TestSupport.AssertAllBlocksReturn(decode.Engine);
        await decode.DisposeAsync();
    }
}
