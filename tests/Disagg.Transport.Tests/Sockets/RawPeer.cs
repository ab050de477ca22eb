using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Disagg.Transport.Sockets;

namespace Disagg.Transport.Tests.Sockets;

/// <summary>A client that speaks the wire protocol by hand, to misbehave on purpose.</summary>
internal sealed class RawPeer : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;

    private RawPeer(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    public static async Task<RawPeer> ConnectAsync(EndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, endPoint is UnixDomainSocketEndPoint ? ProtocolType.Unspecified : ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint);
        return new RawPeer(socket);
    }

    public static byte[] Frame(FrameType type, ulong streamId, ReadOnlySpan<byte> payload, byte version = FrameCodec.Version)
    {
        var frame = new byte[FrameCodec.HeaderSize + payload.Length];
        FrameCodec.WriteHeader(frame, type, payload.Length, streamId);
        frame[4] = version;
        payload.CopyTo(frame.AsSpan(FrameCodec.HeaderSize));
        return frame;
    }

    public static byte[] BlocksPayload(int layer, int[] blockIds, byte[] data)
    {
        var payload = new byte[FrameCodec.BlocksFixedBytes + 4 * blockIds.Length + data.Length];
        FrameCodec.WriteBlocks(payload, layer, blockIds, data, static (d, span) => d.CopyTo(span));
        return payload;
    }

    public Task SendAsync(byte[] bytes) => _stream.WriteAsync(bytes).AsTask();

    public Task SendFrameAsync(FrameType type, ulong streamId, byte[] payload) => SendAsync(Frame(type, streamId, payload));

    public void ShutdownSend() => _socket.Shutdown(SocketShutdown.Send);

    /// <summary>Sends zeros in 64 KiB writes until a send fails (the server went away) or <paramref name="limit"/> bytes are out;
    /// returns how many were sent.</summary>
    public async Task<long> FloodAsync(long limit)
    {
        var chunk = new byte[64 << 10];
        long sent = 0;
        try
        {
            while (sent < limit)
            {
                await _socket.SendAsync(chunk.AsMemory(), SocketFlags.None).AsTask().WaitAsync(TestSupport.Bound);
                sent += chunk.Length;
            }
        }
        catch (SocketException) { }
        return sent;
    }

    /// <summary>Asserts that the server ended the connection with an orderly close (end of stream), not a reset.</summary>
    public async Task ExpectOrderlyEndAsync()
    {
        var one = new byte[1];
        Assert.Equal(0, await _socket.ReceiveAsync(one.AsMemory(), SocketFlags.None).AsTask().WaitAsync(TestSupport.Bound)); // a reset throws here instead
    }

    /// <summary>The next frame, or null at end of stream.</summary>
    public async Task<(FrameType Type, ulong StreamId, byte[] Payload)?> ReadFrameAsync()
    {
        var header = new byte[FrameCodec.HeaderSize];
        int got = 0;
        while (got < header.Length)
        {
            int n;
            try { n = await _stream.ReadAsync(header.AsMemory(got)).AsTask().WaitAsync(TestSupport.Bound); }
            catch (IOException) { return null; } // reset by the server after it closed
            if (n == 0) return null;
            got += n;
        }
        var h = FrameCodec.ReadHeader(header, int.MaxValue);
        var payload = new byte[h.PayloadLength];
        await _stream.ReadExactlyAsync(payload).AsTask().WaitAsync(TestSupport.Bound);
        return (h.Type, h.StreamId, payload);
    }

    /// <summary>Reads until the connection-level error frame, then expects the server to close.</summary>
    public async Task<ProtocolErrorCode> ExpectErrorAndCloseAsync()
    {
        while (true)
        {
            var frame = await ReadFrameAsync();
            Assert.True(frame is not null, "The server closed without an error frame.");
            var (type, id, payload) = frame.Value;
            if (type != FrameType.Error || id != 0) continue;
            var (code, message) = FrameCodec.ReadError(payload);
            Assert.False(string.IsNullOrWhiteSpace(message));
            Assert.Null(await ReadFrameAsync());
            return code;
        }
    }

    public async Task AuthenticateAsync(byte[] secret)
    {
        var clientNonce = new byte[FrameCodec.NonceSize];
        Random.Shared.NextBytes(clientNonce);
        var hello = new byte[FrameCodec.HelloSize];
        FrameCodec.WriteHello(hello, clientNonce, SocketTransportOptions.DefaultMaxFramePayload);
        await SendFrameAsync(FrameType.Hello, 0, hello);
        var challenge = await ReadFrameAsync();
        Assert.Equal(FrameType.Challenge, challenge!.Value.Type);
        var serverNonce = challenge.Value.Payload.AsSpan(0, FrameCodec.NonceSize).ToArray();
        var proof = new byte[FrameCodec.MacSize];
        Handshake.Mac(secret, server: false, clientNonce, serverNonce, proof);
        await SendFrameAsync(FrameType.Proof, 0, proof);
        var ready = await ReadFrameAsync();
        if (ready is { Type: FrameType.Ready }) return;
        Assert.Fail($"Expected Ready, got {ready?.Type.ToString() ?? "end of stream"}.");
    }

    /// <summary>Reserves on stream <paramref name="streamId"/>; returns (cached tokens, block ids).</summary>
    public async Task<(int Cached, int[] BlockIds)> ReserveAsync(ulong streamId, InferenceRequest request)
    {
        var payload = new byte[FrameCodec.ReserveSize(request)];
        FrameCodec.WriteReserve(payload, request);
        await SendFrameAsync(FrameType.Reserve, streamId, payload);
        while (true)
        {
            var frame = await ReadFrameAsync();
            Assert.NotNull(frame);
            if (frame.Value.Type != FrameType.Reserved) continue; // load reports
            var (cached, _, ids) = FrameCodec.ReadReserved(frame.Value.Payload);
            return (cached, ids);
        }
    }

    public static byte[] Header(FrameType type, uint claimedLength, ulong streamId = 0)
    {
        var header = new byte[FrameCodec.HeaderSize];
        FrameCodec.WriteHeader(header, type, 0, streamId);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), claimedLength);
        return header;
    }

    public async ValueTask DisposeAsync() => await _stream.DisposeAsync();
}
