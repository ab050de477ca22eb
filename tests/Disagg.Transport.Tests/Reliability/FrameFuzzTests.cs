using Disagg.Kv;
using Disagg.Tests.TestModel;
using Disagg.Transport.Sockets;
using Disagg.Transport.Tests.Sockets;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Disagg.Transport.Tests.Reliability;

/// <summary>
/// The wire decoders and the worker's frame reader see hostile bytes: mutations of valid frames (not only noise) end in a
/// <see cref="DisaggProtocolException"/> or a valid decode — never another exception, never an allocation beyond what the bytes
/// hold, never a hang — and the worker disconnects the sender, releases what it held and serves on.
/// </summary>
[Trait("Category", "Reliability")]
public class FrameFuzzTests(HostilePeerTests.SharedDecodeSide shared) : IClassFixture<HostilePeerTests.SharedDecodeSide>
{
    private static readonly KvCacheLayout Layout = new(2, 1, 1, 4, KvDataType.Float32); // the toy model's: 32 bytes per block-layer

    private static readonly InferenceRequest Sample = new(new[] { 5, 6, 7, 8, 9, 10, 11 },
        new SamplingParameters { Temperature = 0.7f, TopK = 5, Seed = 3, MaxTokens = 4, StopTokenIds = [3, 4], StopStrings = ["\n\n", "stop"] });

    /// <summary>A valid payload of every frame type a peer may send, with the decoder for it.</summary>
    private static readonly (string Name, byte[] Payload, Action<byte[]> Decode)[] Decoders =
    [
        ("Reserve", Encode(FrameCodec.ReserveSize(Sample), p => FrameCodec.WriteReserve(p, Sample)), p => FrameCodec.ReadReserve(p)),
        ("Reserved", Encode(FrameCodec.ReservedSize(3), p => FrameCodec.WriteReserved(p, 4, 7, [9, 2, 5])), p => FrameCodec.ReadReserved(p)),
        ("Blocks", Encode(FrameCodec.BlocksSize(2, Layout.BytesPerBlockPerLayer), p => FrameCodec.WriteBlocks(p, 1, [3, 8], 0, static (_, d) => d.Fill(0x3F))),
            p => FrameCodec.ReadBlocks(p, Layout)),
        ("Token", Encode(FrameCodec.TokenPayloadSize, p => FrameCodec.WriteToken(p, new GeneratedToken(17, 2, 0, FinishReason.MaxTokens))), p => FrameCodec.ReadToken(p, FrameType.Token)),
        ("TransferAck", Encode(FrameCodec.TransferAckSize, p => FrameCodec.WriteTransferAck(p, 2, 64)), p => FrameCodec.ReadTransferAck(p)),
        ("Load", Encode(FrameCodec.LoadSize, p => FrameCodec.WriteLoad(p, new EngineLoad(1, 2, 3, 4))), p => FrameCodec.ReadLoad(p)),
        ("Error", Encode(FrameCodec.ErrorSize("bad things"), p => FrameCodec.WriteError(p, ProtocolErrorCode.RemoteFailure, "bad things")), p => FrameCodec.ReadError(p)),
        ("Ready", Encode(FrameCodec.ReadySize([1, 2, 3]), p => FrameCodec.WriteReady(p, Layout, 4096, new EngineLoad(0, 0, 8, 8), [1, 2, 3])), p => FrameCodec.ReadReady(p)),
        ("Hello", Encode(FrameCodec.HelloSize, p => FrameCodec.WriteHello(p, new byte[FrameCodec.NonceSize], 1 << 20)), p => FrameCodec.ReadHello(p, new byte[FrameCodec.NonceSize])),
        ("Challenge", Encode(FrameCodec.ChallengeSize, p => FrameCodec.WriteChallenge(p, new byte[FrameCodec.NonceSize], new byte[FrameCodec.MacSize], 1 << 20)),
            p => FrameCodec.ReadChallenge(p, new byte[FrameCodec.NonceSize], new byte[FrameCodec.MacSize])),
        ("Header", RawPeer.Header(FrameType.Blocks, 100, 1), p => FrameCodec.ReadHeader(p.Length >= FrameCodec.HeaderSize ? p : new byte[FrameCodec.HeaderSize], 1 << 20)),
    ];

    private static byte[] Encode(int size, Action<byte[]> write)
    {
        var payload = new byte[size];
        write(payload);
        return payload;
    }

    [Property(MaxTest = 1000)]
    public void Mutated_valid_payloads_decode_or_fail_with_protocol_errors_only(byte decoderIndex, ByteMutation mutation)
    {
        var (name, valid, decode) = Decoders[decoderIndex % Decoders.Length];
        var bytes = mutation.Apply(valid);
        long before = GC.GetAllocatedBytesForCurrentThread();
        try { decode(bytes); }
        catch (DisaggProtocolException) { }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        // Decoded arrays and strings are at most a few times the payload (UTF-16 strings, boxed results): never a claimed count.
        Assert.True(allocated < 4096 + 8L * bytes.Length, $"{name}, {mutation}: allocated {allocated} bytes for a {bytes.Length}-byte payload.");
    }

    /// <summary>A valid session's frames (after the handshake): reserve, blocks, complete, decode, cancel, ping.</summary>
    private static byte[] Session()
    {
        var reserve = new byte[FrameCodec.ReserveSize(Sample)];
        FrameCodec.WriteReserve(reserve, Sample);
        var blocks = RawPeer.BlocksPayload(0, [0, 1], new byte[2 * Layout.BytesPerBlockPerLayer]);
        var token = new byte[FrameCodec.TokenPayloadSize];
        FrameCodec.WriteToken(token, new GeneratedToken(12, 0, 0, null));
        return [
            .. RawPeer.Frame(FrameType.Reserve, 1, reserve), .. RawPeer.Frame(FrameType.Blocks, 1, blocks),
            .. RawPeer.Frame(FrameType.TransferComplete, 1, []), .. RawPeer.Frame(FrameType.DecodeStart, 1, token),
            .. RawPeer.Frame(FrameType.Ping, 0, []), .. RawPeer.Frame(FrameType.Cancel, 1, []),
        ];
    }

    [Property(MaxTest = 40)]
    public async Task A_mutated_session_gets_a_typed_error_or_a_clean_close_and_the_worker_holds_nothing(ByteMutation mutation, bool handshakeToo)
    {
        var decode = shared.Decode;
        await using (var peer = await RawPeer.ConnectAsync(decode.EndPoint))
        {
            if (handshakeToo)
            {
                var hello = new byte[FrameCodec.HelloSize];
                FrameCodec.WriteHello(hello, new byte[FrameCodec.NonceSize], SocketTransportOptions.DefaultMaxFramePayload);
                await peer.SendAsync(mutation.Apply(RawPeer.Frame(FrameType.Hello, 0, hello)));
            }
            else
            {
                await peer.AuthenticateAsync(TestSupport.Secret);
                await peer.SendAsync(mutation.Apply(Session()));
            }
            peer.ShutdownSend();
            while (await peer.ReadFrameAsync() is not null) { } // bounded: the worker must answer and close
        }
        var error = await decode.NextClosedAsync();
        if (error is not null) Assert.IsType<DisaggProtocolException>(error);
        await decode.AssertIdleAndLeakFree();
        Assert.Equal(0, decode.Server.ConnectionCount);
    }

    [Fact]
    public async Task The_worker_serves_correctly_after_the_mutated_sessions()
    {
        var decode = shared.Decode;
        await using var prefill = new PrefillSide();
        await using var remote = await decode.ConnectAsync();
        var request = new InferenceRequest(new[] { 2, 7, 1, 8, 2, 8 }, new SamplingParameters { Temperature = 0.9f, Seed = 7, MaxTokens = 8 });
        var (tokens, _, _) = await prefill.GenerateAsync(remote, remote.CreateTransport(prefill.Executor.BlockStore), request);
        Assert.Equal(ToyModel.ReferenceGenerate(request, TestSupport.Layers, [3], 4096), tokens);
    }
}
