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

    /// <summary>Time a new connection has to complete the handshake.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

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
        if (HandshakeTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(HandshakeTimeout), HandshakeTimeout, "HandshakeTimeout must be positive.");
    }
}
