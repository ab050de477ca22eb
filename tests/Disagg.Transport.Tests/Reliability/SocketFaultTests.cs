using Disagg.Coordination;
using Disagg.Tests.Reliability;
using Disagg.Tests.TestModel;
using Disagg.Transport.Sockets;
using Disagg.Transport.Tests.Sockets;

namespace Disagg.Transport.Tests.Reliability;

/// <summary>
/// Faults between a prefill process and a decode worker, injected by a proxy on the link or by stopping the worker: every request
/// completes with the reference's tokens (recovered by running it on the prefill engine alone) or fails with a typed error, every
/// wait ends, and neither side keeps a block.
/// </summary>
[Trait("Category", "Reliability")]
public sealed class SocketFaultTests : IAsyncLifetime
{
    private readonly ManualTimeProvider _clock = new();
    private DecodeSide _decode = null!;
    private PrefillSide _prefill = null!;
    private FaultProxy _proxy = null!;
    private RemoteDecodeEngine _remote = null!;

    /// <summary>Set before <see cref="InitializeAsync"/> runs the rest; tests that need other timeouts build their own.</summary>
    private SocketTransportOptions Options(bool manualClock) => new()
    {
        SharedSecret = TestSupport.Secret,
        TimeProvider = manualClock ? _clock : TimeProvider.System,
        // A manual clock jumps faster than bytes move: idle detection is tested on its own, and off elsewhere.
        IdleTimeout = manualClock ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(20),
        // Apart from the 30 s of the transfer and token timeouts, so that a test's advance fires one of them only.
        ReservationLease = TimeSpan.FromSeconds(45),
    };

    public Task InitializeAsync() => StartAsync(manualClock: true);

    private async Task StartAsync(bool manualClock, SocketTransportOptions? serverOptions = null, SocketTransportOptions? clientOptions = null)
    {
        _decode = new DecodeSide(unix: true, blocks: 64, options: serverOptions ?? Options(manualClock));
        _prefill = new PrefillSide();
        _proxy = new FaultProxy(_decode.EndPoint, (_, _) => ProxyAction.Forward);
        _remote = await RemoteDecodeEngine.ConnectAsync(_proxy.EndPoint, clientOptions ?? Options(manualClock));
    }

    public async Task DisposeAsync()
    {
        await _remote.DisposeAsync();
        await _proxy.DisposeAsync();
        await _prefill.DisposeAsync();
        await _decode.DisposeAsync();
    }

    private DisaggregatedEngine Coordinator(bool recover) =>
        new([_prefill.Engine], [_remote], (_, _) => _remote.CreateTransport(_prefill.Executor.BlockStore),
            new DisaggregationOptions { LocalPrefillMaxUncachedTokens = 0, RecoverLocally = recover });

    private static InferenceRequest Request(int maxTokens = 10) =>
        new(Enumerable.Range(0, 26).Select(i => i * 7 % 40 + 1).ToArray(),
            new SamplingParameters { Temperature = 0.9f, TopK = 8, Seed = 5, MaxTokens = maxTokens, IgnoreEndOfSequence = true });

    private static List<int> Reference(InferenceRequest request) => ToyModel.ReferenceGenerate(request, TestSupport.Layers, [3], 4096);

    private async Task AssertNothingHeldAnywhere()
    {
        await _decode.AssertIdleAndLeakFree();
        await TestSupport.AssertAllBlocksReturn(_prefill.Engine);
    }

    /// <summary>Runs the request: the reference's tokens when recovered, else the typed error it failed with.</summary>
    private async Task<KvTransferException?> RunAsync(bool recover, InferenceRequest request)
    {
        var coordinator = Coordinator(recover);
        if (recover)
        {
            Assert.Equal(Reference(request), await TestSupport.Collect(coordinator.GenerateAsync(request)));
            Assert.Equal(1, coordinator.RecoveryCount);
            return null;
        }
        return await Assert.ThrowsAnyAsync<KvTransferException>(() => TestSupport.Collect(coordinator.GenerateAsync(request)));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_link_that_drops_mid_transfer_is_recovered_or_fails_typed(bool recover)
    {
        _proxy.Decide = (fromClient, type) => fromClient && type == FrameType.Blocks ? ProxyAction.Drop : ProxyAction.Forward;
        var error = await RunAsync(recover, Request());
        if (!recover) Assert.Equal(ProtocolErrorCode.ConnectionClosed, Assert.IsType<DisaggProtocolException>(error).Code);
        Assert.False(_remote.IsConnected);
        Assert.Null(await _decode.NextClosedAsync()); // the worker saw its peer hang up, between frames
        await AssertNothingHeldAnywhere();
        if (recover) await RunAsync(recover, Request(maxTokens: 4)); // with its decode worker gone, the pipeline keeps serving
        await AssertNothingHeldAnywhere();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_corrupted_block_frame_is_caught_by_its_checksum_and_nothing_of_it_is_written(bool recover)
    {
        _proxy.Decide = (fromClient, type) => fromClient && type == FrameType.Blocks ? ProxyAction.Corrupt : ProxyAction.Forward;
        var error = await RunAsync(recover, Request());
        // The worker closes the connection on the bad frame, after an error frame saying why; the client, still sending
        // blocks, must learn that reason, not just that its sends failed.
        var reported = Assert.IsType<DisaggProtocolException>(_remote.Failure);
        Assert.Equal(ProtocolErrorCode.ChecksumMismatch, reported.Code);
        Assert.True(reported.IsRemote);
        if (!recover) Assert.Contains("ChecksumMismatch", error!.Message);
        await _decode.ExpectClosedWith(ProtocolErrorCode.ChecksumMismatch);
        await AssertNothingHeldAnywhere();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_transfer_that_stalls_times_out(bool recover)
    {
        // The KV and its "complete" go nowhere; everything else (pings, releases) passes.
        _proxy.Decide = (fromClient, type) => fromClient && type is FrameType.Blocks or FrameType.TransferComplete ? ProxyAction.Hold : ProxyAction.Forward;
        var coordinator = Coordinator(recover);
        var request = Request();
        var run = TestSupport.Collect(coordinator.GenerateAsync(request));
        Assert.True(await _proxy.FaultApplied.WaitAsync(TestSupport.Bound)); // the KV is on its way to nowhere
        _clock.Advance(TimeSpan.FromSeconds(29));
        Assert.False(run.IsCompleted);
        _clock.Advance(TimeSpan.FromSeconds(1)); // SocketTransportOptions.TransferTimeout
        if (recover)
        {
            Assert.Equal(Reference(request), await run);
        }
        else
        {
            var timeout = await Assert.ThrowsAsync<DisaggTimeoutException>(() => run);
            Assert.Equal(TimeSpan.FromSeconds(30), timeout.Timeout);
            Assert.Contains("transferring the KV", timeout.Message);
        }
        Assert.True(_remote.IsConnected); // a per-request failure: the connection serves on
        await AssertNothingHeldAnywhere();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_worker_that_stops_sending_tokens_times_out(bool recover)
    {
        using var gate = new ManualResetEventSlim(false);
        _decode.Executor.BeforeStep = _ => gate.Wait(); // the worker's engine hangs in its first decode step
        try
        {
            var coordinator = Coordinator(recover);
            var request = Request();
            var run = TestSupport.Collect(coordinator.GenerateAsync(request));
            await TestSupport.WaitUntil(() => _decode.Engine.GetLoad().RunningSequences == 1, () => "The decode never started.");
            // Once the worker decodes, its reservation lease (45 s) goes: then the one timeout left armed is the client's wait
            // for a token (30 s). Counting alone could see the lease before the token wait is armed, and the advance below
            // would then fire nothing, leaving the run waiting forever.
            await TestSupport.WaitUntil(() => _clock.PendingTimeouts is [var due] && due == TimeSpan.FromSeconds(30),
                () => $"Not exactly the token timeout armed: {string.Join(", ", _clock.PendingTimeouts)}.");
            _clock.Advance(TimeSpan.FromSeconds(30)); // SocketTransportOptions.TokenTimeout
            if (recover) Assert.Equal(Reference(request), await run);
            else Assert.Contains("next token", (await Assert.ThrowsAsync<DisaggTimeoutException>(() => run)).Message);
        }
        finally
        {
            gate.Set();
            _decode.Executor.BeforeStep = null;
        }
        await AssertNothingHeldAnywhere(); // the client cancelled the remote decode when it gave up
    }

    [Fact]
    public async Task A_reservation_never_put_to_use_is_released_by_the_workers_lease()
    {
        var request = Request();
        using var reservation = await _remote.ReserveAsync(request);
        Assert.True(_decode.Engine.Allocator.FreeCount < _decode.Engine.Allocator.Capacity);
        _clock.Advance(TimeSpan.FromSeconds(44));
        Assert.Equal(0, _decode.Server.ExpiredLeaseCount);
        _clock.Advance(TimeSpan.FromSeconds(1)); // SocketTransportOptions.ReservationLease
        Assert.Equal(1, _decode.Server.ExpiredLeaseCount);
        await _decode.AssertIdleAndLeakFree();

        // The client learns it as a timeout, not as a mystery, and the connection serves on.
        await TestSupport.WaitUntil(() =>
        {
            try { _remote.OpenStreamOf(reservation); return false; }
            catch (DisaggTimeoutException) { return true; }
        }, () => "The client was not told that the lease expired.");
        using var prefilled = await _prefill.Engine.PrefillAsync(request);
        var error = await Assert.ThrowsAsync<DisaggTimeoutException>(async () =>
            await _remote.CreateTransport(_prefill.Executor.BlockStore).TransferAsync(prefilled.Kv, reservation));
        Assert.Contains("lease", error.Message);
        Assert.True(_remote.IsConnected);
        prefilled.Dispose();
        reservation.Dispose();
        await AssertNothingHeldAnywhere();
    }

    [Fact]
    public async Task A_reservation_that_waits_too_long_for_memory_times_out_and_leaves_nothing_behind()
    {
        await DisposeAsync();
        var serverOptions = Options(manualClock: true);
        serverOptions.ReservationLease = Timeout.InfiniteTimeSpan; // the held reservation stays held
        await StartAsync(manualClock: true, serverOptions);

        var held = await _remote.ReserveAsync(new InferenceRequest(Enumerable.Range(0, 240).Select(i => i % 40 + 1).ToArray())); // 60 of 64 blocks
        var waiting = _remote.ReserveAsync(new InferenceRequest(Enumerable.Range(1, 32).ToArray())).AsTask();
        await TestSupport.WaitUntil(() => _decode.Engine.GetLoad().WaitingRequests == 1, () => "The second reservation never queued.");
        _clock.Advance(TimeSpan.FromSeconds(59));
        Assert.False(waiting.IsCompleted);
        _clock.Advance(TimeSpan.FromSeconds(1)); // SocketTransportOptions.ReserveTimeout
        Assert.Contains("reserving KV blocks", (await Assert.ThrowsAsync<DisaggTimeoutException>(() => waiting)).Message);
        await TestSupport.WaitUntil(() => _decode.Engine.GetLoad().WaitingRequests == 0, () => "The worker still queues the abandoned reservation.");
        held.Dispose();
        await _decode.AssertIdleAndLeakFree();
    }

    [Fact]
    public async Task A_peer_that_goes_silent_is_detected_by_both_sides_within_the_idle_timeout()
    {
        await DisposeAsync();
        SocketTransportOptions Silent() => new() { SharedSecret = TestSupport.Secret, TimeProvider = _clock, IdleTimeout = TimeSpan.FromSeconds(20) };
        await StartAsync(manualClock: true, Silent(), Silent());
        var request = Request();
        var reservation = await _remote.ReserveAsync(request);
        var coordinator = Coordinator(recover: false);
        _proxy.Decide = (_, _) => ProxyAction.BlackHole; // the next frame either way, and everything after it, vanishes
        var run = TestSupport.Collect(coordinator.GenerateAsync(Request(maxTokens: 3)));
        Assert.True(await _proxy.FaultApplied.WaitAsync(TestSupport.Bound));

        _clock.Advance(TimeSpan.FromSeconds(15)); // pings go out every 5 s, into the hole
        Assert.True(_remote.IsConnected);
        _clock.Advance(TimeSpan.FromSeconds(5)); // SocketTransportOptions.IdleTimeout on both sides
        await TestSupport.WaitUntil(() => !_remote.IsConnected, () => "The client did not notice the silence.");
        Assert.Equal(ProtocolErrorCode.IdleTimeout, Assert.IsType<DisaggProtocolException>(_remote.Failure).Code);
        Assert.Contains("IdleTimeout", (await Assert.ThrowsAnyAsync<KvTransferException>(() => run)).Message);
        await _decode.ExpectClosedWith(ProtocolErrorCode.IdleTimeout);
        reservation.Dispose();
        await AssertNothingHeldAnywhere(); // the worker released the reservation it held for the silent client
    }

    [Fact]
    public async Task Peers_without_a_secret_are_refused_before_connecting()
    {
        var engine = _decode.Engine;
        Assert.Throws<ArgumentException>(() => new DecodeWorkerServer(engine, _decode.Executor.BlockStore, new SocketTransportOptions()));
        await Assert.ThrowsAsync<ArgumentException>(() => RemoteDecodeEngine.ConnectAsync(_decode.EndPoint, new SocketTransportOptions { SharedSecret = new byte[15] }));
    }
}
