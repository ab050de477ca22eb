using Disagg.Tests.TestModel;
using Disagg.Transport.Sockets;

namespace Disagg.Transport.Tests.Sockets;

public class CancellationTests
{
    private static InferenceRequest Long(params int[] prompt) =>
        new(prompt, SamplingParameters.Greedy with { MaxTokens = 1000, IgnoreEndOfSequence = true });

    private static async Task AssertConnectionStillServes(PrefillSide prefill, RemoteDecodeEngine remote, SocketKvTransport transport)
    {
        var request = new InferenceRequest(new[] { 3, 1, 4, 1, 5, 9, 2, 6 }, SamplingParameters.Greedy with { MaxTokens = 6 });
        var (tokens, _, _) = await prefill.GenerateAsync(remote, transport, request);
        Assert.Equal(ToyModel.ReferenceGenerate(request, TestSupport.Layers, [3], 4096), tokens);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Cancelling_mid_transfer_returns_every_block_on_both_sides(bool unix)
    {
        await using var decode = new DecodeSide(unix);
        await using var prefill = new PrefillSide();
        await using var remote = await decode.ConnectAsync();
        var hooked = new HookedStore(prefill.Executor.BlockStore);
        var transport = remote.CreateTransport(hooked);
        using var cts = new CancellationTokenSource();
        hooked.BeforeRead = layer => { if (layer == 1) cts.Cancel(); }; // layer 0 has crossed; cancel while reading layer 1

        var request = Long(Enumerable.Range(1, 30).ToArray());
        var reservation = await remote.ReserveAsync(request);
        var prefilled = await prefill.Engine.PrefillAsync(request);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await transport.TransferAsync(prefilled.Kv, reservation, cts.Token));
        Assert.True(decode.Server.OpenStreamCount > 0); // the caller still owns both ends
        reservation.Dispose();
        prefilled.Dispose();

        await decode.AssertIdleAndLeakFree();
        await TestSupport.AssertAllBlocksReturn(prefill.Engine);
        hooked.BeforeRead = null;
        await AssertConnectionStillServes(prefill, remote, transport);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Cancelling_mid_decode_cancels_remotely_and_returns_every_block(bool unix)
    {
        await using var decode = new DecodeSide(unix);
        await using var prefill = new PrefillSide();
        await using var remote = await decode.ConnectAsync();
        var transport = remote.CreateTransport(prefill.Executor.BlockStore);
        var request = Long(1, 2, 3, 4, 5);
        using var reservation = await remote.ReserveAsync(request);
        using (var prefilled = await prefill.Engine.PrefillAsync(request))
        {
            await transport.TransferAsync(prefilled.Kv, reservation);
            using var cts = new CancellationTokenSource();
            int seen = 0;
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            {
                await foreach (var _ in remote.DecodeAsync(reservation, prefilled.FirstToken, cts.Token))
                    if (++seen == 3) cts.Cancel();
            });
            Assert.Equal(3, seen);
        }
        await decode.AssertIdleAndLeakFree();
        await TestSupport.AssertAllBlocksReturn(prefill.Engine);
        await AssertConnectionStillServes(prefill, remote, transport);
    }

    [Fact]
    public async Task Abandoning_the_token_stream_cancels_remotely()
    {
        await using var decode = new DecodeSide(unix: true);
        await using var prefill = new PrefillSide();
        await using var remote = await decode.ConnectAsync();
        var transport = remote.CreateTransport(prefill.Executor.BlockStore);
        var request = Long(9, 8, 7);
        using var reservation = await remote.ReserveAsync(request);
        using (var prefilled = await prefill.Engine.PrefillAsync(request))
        {
            await transport.TransferAsync(prefilled.Kv, reservation);
            await foreach (var t in remote.DecodeAsync(reservation, prefilled.FirstToken))
                if (t.Index == 4) break;
        }
        await decode.AssertIdleAndLeakFree();
        Assert.Throws<InvalidOperationException>(() => remote.DecodeAsync(reservation, default).GetAsyncEnumerator().MoveNextAsync().AsTask().GetAwaiter().GetResult());
    }

    [Fact]
    public async Task Cancelling_a_reservation_that_waits_for_memory_returns_its_blocks()
    {
        await using var decode = new DecodeSide(unix: true, blocks: 8);
        await using var remote = await decode.ConnectAsync();
        var first = await remote.ReserveAsync(new InferenceRequest(Enumerable.Range(1, 24).ToArray())); // 6 of 8 blocks
        using var cts = new CancellationTokenSource();
        var waiting = remote.ReserveAsync(new InferenceRequest(Enumerable.Range(1, 16).ToArray()), cts.Token).AsTask(); // needs 4
        await TestSupport.WaitUntil(() => decode.Engine.GetLoad().WaitingRequests == 1, () => "The second reservation never queued.");
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        first.Dispose();
        await decode.AssertIdleAndLeakFree();
        Assert.Equal(8, decode.Engine.Allocator.FreeCount);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_client_disconnect_releases_reservations_transfers_and_decodes(bool unix)
    {
        await using var decode = new DecodeSide(unix);
        await using var prefill = new PrefillSide();
        var remote = await decode.ConnectAsync();
        var transport = remote.CreateTransport(prefill.Executor.BlockStore);

        // 1. Reserved, never filled.
        var idle = await remote.ReserveAsync(Long(1, 2, 3, 4, 5, 6, 7));
        // 2. Decoding, held inside the engine's step.
        var decoding = Long(5, 4, 3, 2, 1);
        var reservation = await remote.ReserveAsync(decoding);
        using var prefilled = await prefill.Engine.PrefillAsync(decoding);
        await transport.TransferAsync(prefilled.Kv, reservation);
        using var inStep = new SemaphoreSlim(0);
        using var gate = new ManualResetEventSlim(false);
        decode.Executor.BeforeStep = _ => { inStep.Release(); gate.Wait(); };
        var stream = remote.DecodeAsync(reservation, prefilled.FirstToken).GetAsyncEnumerator();
        Assert.True(await stream.MoveNextAsync());
        Assert.True(await inStep.WaitAsync(TestSupport.Bound));
        Assert.Equal(2, decode.Server.OpenStreamCount);

        await remote.DisposeAsync();
        Assert.Null(await decode.NextClosedAsync()); // a clean close, not a violation
        gate.Set();
        decode.Executor.BeforeStep = null;

        await Assert.ThrowsAsync<DisaggProtocolException>(async () => { while (await stream.MoveNextAsync()) { } });
        var after = await Assert.ThrowsAsync<DisaggProtocolException>(async () => await remote.ReserveAsync(Long(1)));
        Assert.Equal(ProtocolErrorCode.ConnectionClosed, after.Code);
        idle.Dispose(); // harmless after the connection is gone
        await decode.AssertIdleAndLeakFree();
        Assert.Equal(decode.Engine.Allocator.Capacity, decode.Engine.Allocator.FreeCount);
        Assert.Equal(0, decode.Server.ConnectionCount);
    }
}
