using System.Runtime.InteropServices;
using Disagg.Tests.TestModel;
using Disagg.Transport.Sockets;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Disagg.Transport.Tests.Sockets;

/// <summary>Peers that break the protocol get a typed error and are disconnected; the server keeps serving and leaks nothing.</summary>
public class HostilePeerTests(HostilePeerTests.SharedDecodeSide shared) : IClassFixture<HostilePeerTests.SharedDecodeSide>
{
    /// <summary>One server that many garbage-sending peers hit in turn.</summary>
    public sealed class SharedDecodeSide : IAsyncLifetime
    {
        internal DecodeSide Decode { get; } = new(unix: true);
        public Task InitializeAsync() => Task.CompletedTask;
        public async Task DisposeAsync() => await Decode.DisposeAsync();
    }

    private static InferenceRequest Request(int length = 10) =>
        new(Enumerable.Range(1, length).ToArray(), SamplingParameters.Greedy with { MaxTokens = 6 });

    /// <summary>A well-behaved client still gets correct tokens, and the decode side holds nothing afterwards.</summary>
    private static async Task AssertServerStillServes(DecodeSide decode)
    {
        await using var prefill = new PrefillSide();
        await using var remote = await decode.ConnectAsync();
        var request = new InferenceRequest(new[] { 2, 7, 1, 8, 2, 8 }, new SamplingParameters { Temperature = 0.9f, Seed = 7, MaxTokens = 8 });
        var (tokens, _, _) = await prefill.GenerateAsync(remote, remote.CreateTransport(prefill.Executor.BlockStore), request);
        Assert.Equal(ToyModel.ReferenceGenerate(request, TestSupport.Layers, [3], 4096), tokens);
        await remote.DisposeAsync();
        Assert.Null(await decode.NextClosedAsync());
        await decode.AssertIdleAndLeakFree();
    }

    private static float[] LayerFloats(DecodeSide decode, int layer, int[] blocks)
    {
        var bytes = new byte[blocks.Length * decode.Engine.KvLayout.BytesPerBlockPerLayer];
        decode.Executor.BlockStore.ReadLayer(layer, blocks, bytes);
        return MemoryMarshal.Cast<byte, float>(bytes).ToArray();
    }

    private static byte[] LayerBytes(DecodeSide decode, int blocks, byte fill) =>
        Enumerable.Repeat(fill, (int)(blocks * decode.Engine.KvLayout.BytesPerBlockPerLayer)).ToArray();

    [Fact]
    public async Task A_client_with_the_wrong_secret_is_refused_and_the_server_is_not_fooled_either()
    {
        await using var decode = new DecodeSide(unix: true);
        var wrong = TestSupport.Secret.Select(b => (byte)(b ^ 0x5a)).ToArray();

        // The real client checks the server's proof first and refuses to go on.
        var error = await Assert.ThrowsAsync<DisaggProtocolException>(() => decode.ConnectAsync(wrong));
        Assert.Equal(ProtocolErrorCode.AuthenticationFailed, error.Code);
        var serverSide = await decode.ExpectClosedWith(ProtocolErrorCode.AuthenticationFailed);
        Assert.True(serverSide.IsRemote);

        // A raw client that ignores the server's proof and answers with a wrong one.
        await using (var peer = await RawPeer.ConnectAsync(decode.EndPoint))
        {
            var hello = new byte[FrameCodec.HelloSize];
            FrameCodec.WriteHello(hello, new byte[FrameCodec.NonceSize], SocketTransportOptions.DefaultMaxFramePayload);
            await peer.SendFrameAsync(FrameType.Hello, 0, hello);
            Assert.Equal(FrameType.Challenge, (await peer.ReadFrameAsync())!.Value.Type);
            await peer.SendFrameAsync(FrameType.Proof, 0, new byte[FrameCodec.MacSize]);
            Assert.Equal(ProtocolErrorCode.AuthenticationFailed, await peer.ExpectErrorAndCloseAsync());
        }
        Assert.False((await decode.ExpectClosedWith(ProtocolErrorCode.AuthenticationFailed)).IsRemote);

        // And a client may not skip the handshake.
        await using (var peer = await RawPeer.ConnectAsync(decode.EndPoint))
        {
            var payload = new byte[FrameCodec.ReserveSize(Request())];
            FrameCodec.WriteReserve(payload, Request());
            await peer.SendAsync(RawPeer.Frame(FrameType.Reserve, 1, payload));
            Assert.Equal(ProtocolErrorCode.UnexpectedFrameType, await peer.ExpectErrorAndCloseAsync());
        }
        await decode.ExpectClosedWith(ProtocolErrorCode.UnexpectedFrameType);
        await AssertServerStillServes(decode);
    }

    [Fact]
    public async Task A_peer_that_never_authenticates_is_dropped_after_the_handshake_timeout()
    {
        var options = TestSupport.Options();
        options.HandshakeTimeout = TimeSpan.FromMilliseconds(200);
        await using var decode = new DecodeSide(unix: true, options: options);
        await using var peer = await RawPeer.ConnectAsync(decode.EndPoint);
        Assert.Equal(ProtocolErrorCode.HandshakeTimeout, await peer.ExpectErrorAndCloseAsync());
        await decode.ExpectClosedWith(ProtocolErrorCode.HandshakeTimeout);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Wrong_version_unknown_type_and_bad_magic_are_rejected(bool authenticated)
    {
        await using var decode = new DecodeSide(unix: false);
        var cases = new (byte[] Bytes, ProtocolErrorCode Code)[]
        {
            (RawPeer.Frame(FrameType.Hello, 0, new byte[FrameCodec.HelloSize], version: 1), ProtocolErrorCode.UnsupportedVersion), // a version-1 peer
            (RawPeer.Frame(FrameType.Hello, 0, new byte[FrameCodec.HelloSize], version: 2), ProtocolErrorCode.UnsupportedVersion), // no penalties in Reserve
            (RawPeer.Frame(FrameType.Hello, 0, new byte[FrameCodec.HelloSize], version: (byte)(FrameCodec.Version + 1)), ProtocolErrorCode.UnsupportedVersion),
            (RawPeer.Frame((FrameType)99, 0, []), ProtocolErrorCode.UnexpectedFrameType),
            (RawPeer.Frame(FrameType.Hello, 0, []).Select((b, i) => i == 0 ? (byte)'X' : b).ToArray(), ProtocolErrorCode.BadMagic),
            // A frame type only a server may send.
            (RawPeer.Frame(FrameType.Token, 1, new byte[FrameCodec.TokenPayloadSize]), ProtocolErrorCode.UnexpectedFrameType),
        };
        foreach (var (bytes, code) in cases)
        {
            await using var peer = await RawPeer.ConnectAsync(decode.EndPoint);
            if (authenticated) await peer.AuthenticateAsync(TestSupport.Secret);
            await peer.SendAsync(bytes);
            Assert.Equal(code, await peer.ExpectErrorAndCloseAsync());
            await decode.ExpectClosedWith(code);
        }
        await AssertServerStillServes(decode);
    }

    [Theory]
    [InlineData(false, 1000u)]
    [InlineData(true, (uint)SocketTransportOptions.DefaultMaxFramePayload + 1)]
    [InlineData(true, uint.MaxValue)]
    public async Task An_oversized_length_is_rejected_from_the_header_alone(bool authenticated, uint claimed)
    {
        await using var decode = new DecodeSide(unix: true);
        await using var peer = await RawPeer.ConnectAsync(decode.EndPoint);
        if (authenticated) await peer.AuthenticateAsync(TestSupport.Secret);
        // Only the header is sent: the server must answer without waiting for (or buffering) the claimed payload.
        await peer.SendAsync(RawPeer.Header(authenticated ? FrameType.Blocks : FrameType.Hello, claimed, authenticated ? 1UL : 0UL));
        Assert.Equal(ProtocolErrorCode.FrameTooLarge, await peer.ExpectErrorAndCloseAsync());
        await decode.ExpectClosedWith(ProtocolErrorCode.FrameTooLarge);
        await AssertServerStillServes(decode);
    }

    [Fact]
    public async Task A_bad_checksum_is_rejected_before_anything_is_written()
    {
        await using var decode = new DecodeSide(unix: true);
        await using var peer = await RawPeer.ConnectAsync(decode.EndPoint);
        await peer.AuthenticateAsync(TestSupport.Secret);
        var (_, ids) = await peer.ReserveAsync(1, Request());
        var payload = RawPeer.BlocksPayload(0, ids, LayerBytes(decode, ids.Length, 0x41));
        payload[FrameCodec.BlocksFixedBytes + 4 * ids.Length] ^= 0x01; // one bit of data
        await peer.SendFrameAsync(FrameType.Blocks, 1, payload);
        Assert.Equal(ProtocolErrorCode.ChecksumMismatch, await peer.ExpectErrorAndCloseAsync());
        await decode.ExpectClosedWith(ProtocolErrorCode.ChecksumMismatch);
        await decode.AssertIdleAndLeakFree();
        Assert.All(LayerFloats(decode, 0, ids), f => Assert.True(float.IsNaN(f))); // untouched since the pool was created
        await AssertServerStillServes(decode);
    }

    [Fact]
    public async Task Blocks_outside_the_reservation_are_never_written()
    {
        await using var decode = new DecodeSide(unix: true);
        await using var prefill = new PrefillSide();
        // A victim on another connection holds a reservation; the attacker learns nothing of it but may guess ids.
        await using var victim = await decode.ConnectAsync();
        var victimRequest = new InferenceRequest(Enumerable.Range(5, 12).ToArray(), SamplingParameters.Greedy with { MaxTokens = 7 });
        using var victimReservation = await victim.ReserveAsync(victimRequest);
        var victimIds = victimReservation.Destination.BlockIds.ToArray();

        await using var peer = await RawPeer.ConnectAsync(decode.EndPoint);
        await peer.AuthenticateAsync(TestSupport.Secret);
        var (_, ids) = await peer.ReserveAsync(1, Request());
        var payload = RawPeer.BlocksPayload(1, [ids[0], victimIds[1]], LayerBytes(decode, 2, 0x42));
        await peer.SendFrameAsync(FrameType.Blocks, 1, payload);
        Assert.Equal(ProtocolErrorCode.BlockNotInReservation, await peer.ExpectErrorAndCloseAsync());
        await decode.ExpectClosedWith(ProtocolErrorCode.BlockNotInReservation);
        Assert.All(LayerFloats(decode, 1, [ids[0], victimIds[1]]), f => Assert.True(float.IsNaN(f))); // not even the attacker's own block

        // The victim's request completes correctly.
        using var prefilled = await prefill.Engine.PrefillAsync(victimRequest);
        await victim.CreateTransport(prefill.Executor.BlockStore).TransferAsync(prefilled.Kv, victimReservation);
        var tokens = await TestSupport.Collect(victim.DecodeAsync(victimReservation, prefilled.FirstToken));
        Assert.Equal(ToyModel.ReferenceGenerate(victimRequest, TestSupport.Layers, [3], 4096), tokens);
    }

    [Fact]
    public async Task Blocks_the_decode_side_shares_from_its_prefix_cache_are_not_writable()
    {
        await using var decode = new DecodeSide(unix: true, prefixCaching: true);
        await using var prefill = new PrefillSide();
        var shared = Enumerable.Range(1, 8).ToArray();
        await using (var remote = await decode.ConnectAsync())
            await prefill.GenerateAsync(remote, remote.CreateTransport(prefill.Executor.BlockStore),
                new InferenceRequest(shared.Append(20).ToArray(), SamplingParameters.Greedy with { MaxTokens = 2 }));
        await decode.NextClosedAsync();

        await using var peer = await RawPeer.ConnectAsync(decode.EndPoint);
        await peer.AuthenticateAsync(TestSupport.Secret);
        var (cached, ids) = await peer.ReserveAsync(1, new InferenceRequest(shared.Append(30).ToArray()));
        Assert.Equal(8, cached);
        var before = LayerFloats(decode, 0, [ids[0]]);
        await peer.SendFrameAsync(FrameType.Blocks, 1, RawPeer.BlocksPayload(0, [ids[0]], LayerBytes(decode, 1, 0x43)));
        Assert.Equal(ProtocolErrorCode.BlockNotInReservation, await peer.ExpectErrorAndCloseAsync());
        await decode.ExpectClosedWith(ProtocolErrorCode.BlockNotInReservation);
        Assert.Equal(before, LayerFloats(decode, 0, [ids[0]]));
        await AssertServerStillServes(decode);
    }

    [Fact]
    public async Task Payload_length_must_match_the_layout_and_streams_must_exist()
    {
        await using var decode = new DecodeSide(unix: true);
        await using (var peer = await RawPeer.ConnectAsync(decode.EndPoint))
        {
            await peer.AuthenticateAsync(TestSupport.Secret);
            var (_, ids) = await peer.ReserveAsync(1, Request());
            var payload = RawPeer.BlocksPayload(0, [ids[0], ids[1]], LayerBytes(decode, 2, 0x44));
            payload[4] = 3; // claims three blocks, carries two
            await peer.SendFrameAsync(FrameType.Blocks, 1, payload);
            Assert.Equal(ProtocolErrorCode.MalformedPayload, await peer.ExpectErrorAndCloseAsync());
        }
        await decode.ExpectClosedWith(ProtocolErrorCode.MalformedPayload);
        await using (var peer = await RawPeer.ConnectAsync(decode.EndPoint))
        {
            await peer.AuthenticateAsync(TestSupport.Secret);
            await peer.SendFrameAsync(FrameType.Blocks, 77, RawPeer.BlocksPayload(0, [0], LayerBytes(decode, 1, 0x45)));
            Assert.Equal(ProtocolErrorCode.UnknownStream, await peer.ExpectErrorAndCloseAsync());
        }
        await decode.ExpectClosedWith(ProtocolErrorCode.UnknownStream);
        await decode.AssertIdleAndLeakFree();
        await AssertServerStillServes(decode);
    }

    [Fact]
    public async Task A_truncated_frame_is_reported_and_the_reservation_released()
    {
        await using var decode = new DecodeSide(unix: false);
        await using var peer = await RawPeer.ConnectAsync(decode.EndPoint);
        await peer.AuthenticateAsync(TestSupport.Secret);
        var (_, ids) = await peer.ReserveAsync(1, Request());
        var frame = RawPeer.Frame(FrameType.Blocks, 1, RawPeer.BlocksPayload(0, ids, LayerBytes(decode, ids.Length, 0x46)));
        await peer.SendAsync(frame[..(frame.Length / 2)]);
        peer.ShutdownSend();
        Assert.Equal(ProtocolErrorCode.TruncatedFrame, await peer.ExpectErrorAndCloseAsync());
        await decode.ExpectClosedWith(ProtocolErrorCode.TruncatedFrame);
        await decode.AssertIdleAndLeakFree();
        await AssertServerStillServes(decode);
    }

    [Fact]
    public async Task A_hostile_server_is_detected_by_the_client()
    {
        // A "server" that answers Hello with garbage.
        var endPoint = TestSupport.NewEndPoint(unix: true);
        using var listener = new System.Net.Sockets.Socket(endPoint.AddressFamily, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        listener.Bind(endPoint);
        listener.Listen(1);
        var serve = Task.Run(async () =>
        {
            using var s = await listener.AcceptAsync();
            var buffer = new byte[FrameCodec.HeaderSize + FrameCodec.HelloSize];
            await s.ReceiveAsync(buffer);
            await s.SendAsync(RawPeer.Frame(FrameType.Challenge, 0, new byte[FrameCodec.ChallengeSize - 1]));
            await s.ReceiveAsync(buffer); // the client's error frame, then its close
        });
        try
        {
            var error = await Assert.ThrowsAsync<DisaggProtocolException>(() => RemoteDecodeEngine.ConnectAsync(endPoint, TestSupport.Options()));
            Assert.Equal(ProtocolErrorCode.MalformedPayload, error.Code);
            await serve.WaitAsync(TestSupport.Bound);
        }
        finally
        {
            File.Delete(endPoint.ToString()!);
        }
    }

    [Property(MaxTest = 40)]
    public async Task Random_garbage_gets_a_typed_error_and_the_server_keeps_serving(byte[] garbage, bool authenticated, bool magicFirst)
    {
        var decode = shared.Decode;
        if (magicFirst) garbage = [.. RawPeer.Header(FrameType.Reserve, (uint)garbage.Length, 1)[..8], .. garbage];
        await using (var peer = await RawPeer.ConnectAsync(decode.EndPoint))
        {
            if (authenticated) await peer.AuthenticateAsync(TestSupport.Secret);
            await peer.SendAsync(garbage);
            peer.ShutdownSend();
            while (await peer.ReadFrameAsync() is not null) { } // whatever the server answers, it must then close
        }
        var error = await decode.NextClosedAsync();
        if (garbage.Length == 0)
        {
            // Hanging up is not a violation once authenticated; before, it is reported as a connection that closed mid-handshake.
            if (authenticated) Assert.Null(error);
            else Assert.Equal(ProtocolErrorCode.ConnectionClosed, Assert.IsType<DisaggProtocolException>(error).Code);
        }
        else
        {
            Assert.NotEqual(ProtocolErrorCode.ConnectionClosed, Assert.IsType<DisaggProtocolException>(error).Code);
        }
        await decode.AssertIdleAndLeakFree();
        Assert.Equal(0, decode.Server.ConnectionCount);
    }

    [Fact]
    public async Task After_random_garbage_the_server_still_serves()
    {
        var decode = shared.Decode;
        await using var peer = await RawPeer.ConnectAsync(decode.EndPoint);
        await peer.SendAsync(Gen.Sample(ArbMap.Default.GeneratorFor<byte>(), 64).ToArray());
        await peer.ExpectErrorAndCloseAsync();
        await decode.NextClosedAsync();
        await AssertServerStillServes(decode);
    }
}
