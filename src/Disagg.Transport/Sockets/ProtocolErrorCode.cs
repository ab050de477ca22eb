namespace Disagg.Transport.Sockets;

/// <summary>Why a socket-transport connection or stream failed. Sent on the wire in error frames (16 bits).</summary>
public enum ProtocolErrorCode : ushort
{
    /// <summary>Unspecified protocol violation.</summary>
    ProtocolViolation = 1,
    /// <summary>The frame did not start with the protocol's magic number.</summary>
    BadMagic = 2,
    /// <summary>The peer speaks a protocol version this side does not.</summary>
    UnsupportedVersion = 3,
    /// <summary>The frame type is unknown, or not allowed in the connection's current state or direction.</summary>
    UnexpectedFrameType = 4,
    /// <summary>A frame claimed a payload longer than the receiver's limit.</summary>
    FrameTooLarge = 5,
    /// <summary>The connection ended in the middle of a frame.</summary>
    TruncatedFrame = 6,
    /// <summary>A block payload's checksum did not match its bytes.</summary>
    ChecksumMismatch = 7,
    /// <summary>A frame's payload length disagrees with what its fields and the KV layout imply, or a field is out of range.</summary>
    MalformedPayload = 8,
    /// <summary>A block frame named a block that the reservation does not let the peer write.</summary>
    BlockNotInReservation = 9,
    /// <summary>The peer failed the shared-secret challenge.</summary>
    AuthenticationFailed = 10,
    /// <summary>The peer did not complete the handshake in time.</summary>
    HandshakeTimeout = 11,
    /// <summary>A frame named a stream that was never opened.</summary>
    UnknownStream = 12,
    /// <summary>A frame is not valid in its stream's state (for example decoding before the transfer completed).</summary>
    InvalidStreamState = 13,
    /// <summary>Decode was asked for before every block of the reservation had been written.</summary>
    TransferIncomplete = 14,
    /// <summary>The decode engine rejected the request (<see cref="InvalidRequestException"/> on its side).</summary>
    InvalidRequest = 15,
    /// <summary>The decode engine is overloaded.</summary>
    EngineOverloaded = 16,
    /// <summary>The decode engine or its server is stopping.</summary>
    EngineStopped = 17,
    /// <summary>The connection closed or failed.</summary>
    ConnectionClosed = 18,
    /// <summary>The remote side failed for a reason of its own.</summary>
    RemoteFailure = 19,
    /// <summary>The two sides' KV layouts differ.</summary>
    LayoutMismatch = 20,
    /// <summary>Nothing arrived from the peer for <see cref="SocketTransportOptions.IdleTimeout"/> (not even a Ping): it is dead or unreachable.</summary>
    IdleTimeout = 21,
    /// <summary>A reservation was not put to use (decode started) within the worker's <see cref="SocketTransportOptions.ReservationLease"/>; its blocks were released.</summary>
    LeaseExpired = 22,
    /// <summary>The TLS handshake failed: the peer's certificate is not trusted or not for the expected host, the versions do not
    /// match, or the peer does not speak TLS. Detected locally (no error frame can reach a peer with whom TLS failed).</summary>
    TlsHandshakeFailed = 23,
    /// <summary>The worker requires TLS and the client connected without it (the worker says so in one plaintext error frame).</summary>
    TlsRequired = 24,
}

/// <summary>
/// A socket-transport failure: a protocol violation by the peer, a failed authentication, a lost connection, or an error the
/// remote side reported. <see cref="Code"/> says which; <see cref="IsRemote"/> says whether the peer reported it.
/// </summary>
public sealed class DisaggProtocolException : KvTransferException
{
    /// <summary>Creates the exception.</summary>
    public DisaggProtocolException(ProtocolErrorCode code, string message, bool isRemote = false, Exception? inner = null)
        : base($"{(isRemote ? "Peer reported" : "Socket transport")} {code}: {message}", inner)
    {
        Code = code;
        IsRemote = isRemote;
        Detail = message;
    }

    /// <summary>What went wrong.</summary>
    public ProtocolErrorCode Code { get; }

    /// <summary>True when the peer reported the error in an error frame; false when this side detected it.</summary>
    public bool IsRemote { get; }

    /// <summary>The message without the code prefix (what is sent in an error frame).</summary>
    public string Detail { get; }
}
