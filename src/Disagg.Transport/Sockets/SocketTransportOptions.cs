namespace Disagg.Transport.Sockets;

/// <summary>
/// Settings shared by both ends of the socket KV transport (<see cref="DecodeWorkerServer"/> and <see cref="RemoteDecodeEngine"/>).
/// </summary>
public sealed class SocketTransportOptions
{
    /// <summary>Largest frame payload accepted by default: 4 MiB.</summary>
    public const int DefaultMaxFramePayload = 4 << 20;

    /// <summary>
    /// The shared secret both sides prove knowledge of (HMAC-SHA256 challenge-response; it never crosses the wire).
    /// At least 16 bytes. Required.
    /// </summary>
    public byte[] SharedSecret { get; set; } = [];

    /// <summary>Largest frame payload this side accepts; larger claims close the connection before any payload is buffered.
    /// Also caps what this side sends (it sends at most the smaller of both sides' limits). 64 KiB to 64 MiB.</summary>
    public int MaxFramePayload { get; set; } = DefaultMaxFramePayload;

    /// <summary>Target payload size of one KV block frame (one layer of a run of blocks). A frame carries at least one block.</summary>
    public int BlockFrameTargetBytes { get; set; } = 1 << 20;

    /// <summary>
    /// Bytes that may wait in the send pipe before writers are paused (System.IO.Pipelines pause threshold); they resume
    /// below half of it. Bounds the sender's memory when the receiver is slow: at most this plus one frame per connection.
    /// </summary>
    public int SendBufferBytes { get; set; } = 4 << 20;

    /// <summary>
    /// Server side: accept <c>DirectTransferComplete</c>, by which an authenticated client says it wrote a reservation's blocks
    /// itself, straight into this process's device memory (CUDA IPC, see Disagg.Cuda's CudaIpcKv), instead of sending them.
    /// Off by default: only turn it on for clients on this host that were given the memory handle.
    /// </summary>
    public bool AcceptDirectTransfers { get; set; }

    /// <summary>
    /// Server side: what a client needs to write this worker's KV memory directly (for example Disagg.Cuda's
    /// <c>CudaIpcKv.Export</c>), sent to each client after it has authenticated (<see cref="RemoteDecodeEngine.DirectTransferDescriptor"/>).
    /// Setting it also accepts direct transfers. At most 200 bytes.
    /// </summary>
    public byte[]? DirectTransferDescriptor { get; set; }

    /// <summary>Time a new connection has to complete the handshake (both sides).</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Client side: time to establish the socket connection before <see cref="DisaggTimeoutException"/>.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Both sides, after the handshake: a Ping is sent whenever nothing else was sent for this long, so that a quiet connection
    /// still carries a frame per interval. At most a third of <see cref="IdleTimeout"/>.
    /// </summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Both sides, after the handshake: when nothing at all (not even a Ping) arrives for this long the peer is taken for dead,
    /// the connection is closed with <see cref="ProtocolErrorCode.IdleTimeout"/>, and everything it held is released and failed.
    /// <see cref="Timeout.InfiniteTimeSpan"/> turns the check off (Pings are still sent).
    /// </summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Client side: longest wait for a reservation, including time queued in the worker for memory, before
    /// <see cref="DisaggTimeoutException"/> (the pending reservation is released on the worker).</summary>
    public TimeSpan ReserveTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Client side: longest time one KV transfer (from its first block frame, streamed during the prefill or not, to
    /// the worker's acknowledgement) may take before <see cref="DisaggTimeoutException"/>.</summary>
    public TimeSpan TransferTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Client side: longest wait for the next token of a remote decode before <see cref="DisaggTimeoutException"/>
    /// (the remote decode is cancelled).</summary>
    public TimeSpan TokenTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Server side: a reservation must be put to use (decode started) within this; otherwise its blocks are released and the
    /// client is told with <see cref="ProtocolErrorCode.LeaseExpired"/> (it sees <see cref="DisaggTimeoutException"/>). Counted in
    /// <see cref="DecodeWorkerServer.ExpiredLeaseCount"/>. Direct (CUDA IPC) transfers should finish well within it: the worker
    /// cannot stop a client that writes its memory directly.
    /// </summary>
    public TimeSpan ReservationLease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Both sides: after sending the error frame that closes a connection, how long to keep reading (and dropping) what the peer
    /// still sends until it closes too, and how long the receiving side keeps reading after a send failed. Closing a socket with
    /// unread bytes resets the connection, and a reset can destroy that error frame before the peer reads it; lingering lets the
    /// peer learn the precise reason. At most 16 MiB is dropped per close. <see cref="TimeSpan.Zero"/> closes at once. Real time
    /// (it bounds the socket's teardown; <see cref="TimeProvider"/> does not apply).
    /// </summary>
    public TimeSpan CloseLinger { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// TLS on TCP connections; null (the default) sends everything in the clear, as over a Unix socket. Both sides must agree:
    /// a mismatch fails the connection with <see cref="ProtocolErrorCode.TlsRequired"/> or <see cref="ProtocolErrorCode.TlsHandshakeFailed"/>.
    /// The shared-secret handshake still runs, inside TLS.
    /// </summary>
    public SocketTlsOptions? Tls { get; set; }

    /// <summary>The clock of every timeout and lease above (tests pass a manual one).</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (SharedSecret is null || SharedSecret.Length < 16)
            throw new ArgumentException("SharedSecret must hold at least 16 bytes.", nameof(SharedSecret));
        if (MaxFramePayload < (64 << 10) || MaxFramePayload > (64 << 20))
            throw new ArgumentOutOfRangeException(nameof(MaxFramePayload), MaxFramePayload, "MaxFramePayload must be in [64 KiB, 64 MiB].");
        if (BlockFrameTargetBytes < 1 || BlockFrameTargetBytes > MaxFramePayload)
            throw new ArgumentOutOfRangeException(nameof(BlockFrameTargetBytes), BlockFrameTargetBytes, "BlockFrameTargetBytes must be in [1, MaxFramePayload].");
        if (SendBufferBytes < (64 << 10))
            throw new ArgumentOutOfRangeException(nameof(SendBufferBytes), SendBufferBytes, "SendBufferBytes must be at least 64 KiB.");
        if (DirectTransferDescriptor is { Length: > FrameCodec.MaxDescriptorBytes })
            throw new ArgumentOutOfRangeException(nameof(DirectTransferDescriptor), DirectTransferDescriptor.Length, $"At most {FrameCodec.MaxDescriptorBytes} bytes.");
        RequirePositive(HandshakeTimeout, nameof(HandshakeTimeout));
        RequirePositive(ConnectTimeout, nameof(ConnectTimeout));
        RequirePositive(KeepAliveInterval, nameof(KeepAliveInterval));
        RequirePositive(ReserveTimeout, nameof(ReserveTimeout), infiniteAllowed: true);
        RequirePositive(TransferTimeout, nameof(TransferTimeout), infiniteAllowed: true);
        RequirePositive(TokenTimeout, nameof(TokenTimeout), infiniteAllowed: true);
        RequirePositive(ReservationLease, nameof(ReservationLease), infiniteAllowed: true);
        RequirePositive(IdleTimeout, nameof(IdleTimeout), infiniteAllowed: true);
        if (CloseLinger < TimeSpan.Zero || CloseLinger > TimeSpan.FromMinutes(1))
            throw new ArgumentOutOfRangeException(nameof(CloseLinger), CloseLinger, "CloseLinger must be in [0, 1 min].");
        if (IdleTimeout != Timeout.InfiniteTimeSpan && IdleTimeout < 3 * KeepAliveInterval)
            throw new ArgumentOutOfRangeException(nameof(IdleTimeout), IdleTimeout,
                $"IdleTimeout must be at least three KeepAliveIntervals ({3 * KeepAliveInterval}), or the peer's pings could arrive too late.");
        ArgumentNullException.ThrowIfNull(TimeProvider);
        try { Tls?.Validate(); }
        catch (ArgumentException e) { throw new ArgumentException(e.Message.Split(" (Parameter")[0], $"{nameof(Tls)}.{e.ParamName}", e); }
    }

    /// <summary>The checks that depend on the side and the endpoint: TLS only on TCP, and a worker needs its certificate.</summary>
    internal void ValidateFor(System.Net.EndPoint endPoint, bool server)
    {
        Validate();
        if (Tls is null) return;
        if (endPoint is System.Net.Sockets.UnixDomainSocketEndPoint)
            throw new ArgumentException($"TLS is for TCP endpoints; {endPoint} is a Unix socket, which stays on this host (set Tls to null for it).", nameof(Tls));
        if (server && Tls.ServerCertificate is null)
            throw new ArgumentException("Tls.ServerCertificate is required on the decode worker when TLS is on.", $"{nameof(Tls)}.{nameof(SocketTlsOptions.ServerCertificate)}");
    }

    private static void RequirePositive(TimeSpan value, string name, bool infiniteAllowed = false)
    {
        if (value > TimeSpan.Zero || (infiniteAllowed && value == Timeout.InfiniteTimeSpan)) return;
        throw new ArgumentOutOfRangeException(name, value, infiniteAllowed ? $"{name} must be positive, or Timeout.InfiniteTimeSpan." : $"{name} must be positive.");
    }
}
