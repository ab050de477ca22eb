using System.Net.Sockets;
using Disagg.Transport.Sockets;

namespace Disagg.Transport.Tests.Sockets;

/// <summary>
/// The last frame before a connection ends (a peer's error frame saying why it closes) reaches the other side: the receiver reads
/// it even when a reset follows, and the closing side lingers so that its close does not reset the connection at all.
/// </summary>
public class LastErrorFrameTests
{
    private static async Task<(Socket Ours, Socket Theirs)> ConnectedPairAsync(bool unix)
    {
        var endPoint = TestSupport.NewEndPoint(unix);
        using var listener = new Socket(endPoint.AddressFamily, SocketType.Stream, unix ? ProtocolType.Unspecified : ProtocolType.Tcp);
        listener.Bind(endPoint);
        listener.Listen(1);
        var ours = new Socket(endPoint.AddressFamily, SocketType.Stream, unix ? ProtocolType.Unspecified : ProtocolType.Tcp);
        await ours.ConnectAsync(listener.LocalEndPoint!);
        var theirs = await listener.AcceptAsync();
        if (unix) File.Delete(endPoint.ToString()!);
        return (ours, theirs);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task An_error_frame_followed_by_a_reset_is_read_before_the_reset_is_reported(bool unix)
    {
        var (ours, theirs) = await ConnectedPairAsync(unix);
        var error = new byte[FrameCodec.ErrorSize("bad block")];
        FrameCodec.WriteError(error, ProtocolErrorCode.ChecksumMismatch, "bad block");
        theirs.Send(RawPeer.Frame(FrameType.Error, 0, error));
        ours.Send(new byte[64]);   // left unread by the peer: its close then resets the connection (TCP RST; ECONNRESET on a Unix socket)
        theirs.Dispose();
        await using var connection = new FramedConnection(ours, TestSupport.Options());
        connection.Start();
        await connection.InputEnded.WaitAsync(TestSupport.Bound); // the reset is in before anything is read: no race left to win

        var (ok, header, payload) = await connection.ReadFrameAsync(CancellationToken.None);
        Assert.True(ok);
        Assert.Equal(FrameType.Error, header.Type);
        Assert.Equal(ProtocolErrorCode.ChecksumMismatch, FrameCodec.ReadError(connection.Contiguous(payload)).Code);
        var reset = await Assert.ThrowsAsync<DisaggProtocolException>(async () => await connection.ReadFrameAsync(CancellationToken.None));
        Assert.Equal(ProtocolErrorCode.ConnectionClosed, reset.Code);
        Assert.Equal(SocketError.ConnectionReset, Assert.IsType<SocketException>(reset.InnerException).SocketErrorCode);
        connection.ReleaseReaderResources();
    }

    /// <summary>A server whose receive buffer stays small, so that most of what a peer sends after a bad frame waits in the kernel.</summary>
    private static DecodeSide SmallBufferedServer(TimeSpan linger) => new(unix: false, options: new SocketTransportOptions
    {
        SharedSecret = TestSupport.Secret,
        MaxFramePayload = 64 << 10,
        BlockFrameTargetBytes = 64 << 10,
        CloseLinger = linger,
    });

    [Fact]
    public async Task A_worker_that_rejects_a_frame_keeps_taking_what_the_client_still_sends_until_the_client_closes()
    {
        await using var decode = SmallBufferedServer(linger: TestSupport.Bound); // the peer's close, not the clock, ends it here
        await using var peer = await RawPeer.ConnectAsync(decode.EndPoint);
        await peer.AuthenticateAsync(TestSupport.Secret);
        await peer.SendFrameAsync(FrameType.Ping, 7, []); // a violation: pings have stream 0
        Assert.Equal(ProtocolErrorCode.MalformedPayload, await ReadErrorAsync(peer));

        // The worker has given up on this connection; a client still busy sending must not be reset before it reads why.
        Assert.Equal(2L << 20, await peer.FloodAsync(2L << 20));
        peer.ShutdownSend();
        await peer.ExpectOrderlyEndAsync();
        await decode.ExpectClosedWith(ProtocolErrorCode.MalformedPayload);
    }

    [Fact]
    public async Task A_peer_that_keeps_sending_after_the_error_is_cut_off_after_the_drain_limit()
    {
        await using var decode = SmallBufferedServer(linger: TestSupport.Bound);
        await using var peer = await RawPeer.ConnectAsync(decode.EndPoint);
        await peer.AuthenticateAsync(TestSupport.Secret);
        await peer.SendFrameAsync(FrameType.Ping, 7, []);
        long sent = await peer.FloodAsync(1L << 30); // far more than the drain limit, the kernel buffers and the receive pipe together
        Assert.True(sent < 1L << 30, "The worker never closed on a peer that kept sending.");
        Assert.True(sent >= FramedConnection.LingerDrainLimitBytes, $"The worker cut the peer off after {sent} bytes, before draining its limit.");
        await decode.ExpectClosedWith(ProtocolErrorCode.MalformedPayload);
    }

    [Fact]
    public async Task A_peer_that_neither_sends_nor_closes_after_the_error_is_let_go_when_the_linger_ends()
    {
        await using var decode = SmallBufferedServer(linger: TimeSpan.FromMilliseconds(1));
        await using var peer = await RawPeer.ConnectAsync(decode.EndPoint);
        await peer.AuthenticateAsync(TestSupport.Secret);
        await peer.SendFrameAsync(FrameType.Ping, 7, []);
        await decode.ExpectClosedWith(ProtocolErrorCode.MalformedPayload); // while the peer stays connected and silent
        Assert.Equal(ProtocolErrorCode.MalformedPayload, await ReadErrorAsync(peer));
    }

    private static async Task<ProtocolErrorCode> ReadErrorAsync(RawPeer peer)
    {
        while (true)
        {
            var frame = await peer.ReadFrameAsync();
            Assert.True(frame is not null, "The worker closed without an error frame.");
            if (frame.Value.Type == FrameType.Error) return FrameCodec.ReadError(frame.Value.Payload).Code;
        }
    }
}
