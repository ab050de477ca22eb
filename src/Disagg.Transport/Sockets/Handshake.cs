using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using Disagg.Kv;

namespace Disagg.Transport.Sockets;

/// <summary>
/// Mutual challenge-response on a shared secret. Each side sends a fresh 32-byte nonce; each proves knowledge of the secret
/// with HMAC-SHA256(secret, role label ‖ own-side nonce ‖ other nonce) over both nonces. The server proves first, and the
/// client verifies that proof before it sends its own, so a fake server learns nothing. The secret never crosses the wire,
/// and the distinct role labels stop one side's proof from being replayed as the other's.
/// </summary>
internal static class Handshake
{
    private static readonly byte[] ServerLabel = Encoding.ASCII.GetBytes("disagg-kv/1 server proof\0");
    private static readonly byte[] ClientLabel = Encoding.ASCII.GetBytes("disagg-kv/1 client proof\0");

    public static void Mac(byte[] secret, bool server, ReadOnlySpan<byte> clientNonce, ReadOnlySpan<byte> serverNonce, Span<byte> mac)
    {
        var label = server ? ServerLabel : ClientLabel;
        Span<byte> message = stackalloc byte[label.Length + 2 * FrameCodec.NonceSize];
        label.CopyTo(message);
        clientNonce.CopyTo(message[label.Length..]);
        serverNonce.CopyTo(message[(label.Length + FrameCodec.NonceSize)..]);
        HMACSHA256.HashData(secret, message, mac);
    }

    /// <summary>Client side. Returns the worker's description once both sides are authenticated.</summary>
    public static async ValueTask<(KvCacheLayout Layout, int MaxContextLength, EngineLoad Load, byte[]? Descriptor)> RunClientAsync(
        FramedConnection connection, SocketTransportOptions options, CancellationToken cancellationToken)
    {
        var clientNonce = RandomNumberGenerator.GetBytes(FrameCodec.NonceSize);
        await connection.WriteFrameAsync(FrameType.Hello, 0, FrameCodec.HelloSize, (clientNonce, options.MaxFramePayload),
            static (s, p) => FrameCodec.WriteHello(p, s.clientNonce, s.MaxFramePayload), cancellationToken).ConfigureAwait(false);

        var serverNonce = new byte[FrameCodec.NonceSize];
        var serverMac = new byte[FrameCodec.MacSize];
        ReadOnlyMemory<byte> payload;
        try
        {
            payload = await ExpectAsync(connection, FrameType.Challenge, cancellationToken).ConfigureAwait(false);
        }
        catch (DisaggProtocolException ex) when (ex.Code == ProtocolErrorCode.ConnectionClosed && connection.ClientCertificateRequested)
        {
            // TLS 1.3: the worker checks our certificate after our side of the TLS handshake has completed, and refuses by closing.
            string presented = options.Tls?.ClientCertificate is { } mine
                ? $"it did not accept this client's certificate ({mine.Subject}, SHA-256 {mine.GetCertHashString(HashAlgorithmName.SHA256)})"
                : "this client presents none (set SocketTlsOptions.ClientCertificate)";
            throw new DisaggProtocolException(ProtocolErrorCode.TlsHandshakeFailed,
                $"The decode worker asked for a client certificate and closed the connection right after the TLS handshake: {presented}. " +
                "The worker's log says why.", inner: ex);
        }
        int peerLimit = FrameCodec.ReadChallenge(payload.Span, serverNonce, serverMac);
        var expected = new byte[FrameCodec.MacSize];
        Mac(options.SharedSecret, server: true, clientNonce, serverNonce, expected);
        if (!CryptographicOperations.FixedTimeEquals(expected, serverMac))
            throw new DisaggProtocolException(ProtocolErrorCode.AuthenticationFailed, "The server did not prove knowledge of the shared secret.");

        var proof = new byte[FrameCodec.MacSize];
        Mac(options.SharedSecret, server: false, clientNonce, serverNonce, proof);
        await connection.WriteFrameAsync(FrameType.Proof, 0, FrameCodec.MacSize, proof,
            static (s, p) => s.CopyTo(p), cancellationToken).ConfigureAwait(false);

        payload = await ExpectAsync(connection, FrameType.Ready, cancellationToken).ConfigureAwait(false);
        var ready = FrameCodec.ReadReady(payload.Span);
        connection.SendLimit = peerLimit;
        connection.ReceiveLimit = options.MaxFramePayload;
        return ready;
    }

    /// <summary>Server side. Throws <see cref="DisaggProtocolException"/> (AuthenticationFailed, ...) when the peer fails.</summary>
    public static async ValueTask RunServerAsync(FramedConnection connection, SocketTransportOptions options, IDecodeEngine engine,
        CancellationToken cancellationToken)
    {
        var clientNonce = new byte[FrameCodec.NonceSize];
        ReadOnlyMemory<byte> payload;
        try
        {
            payload = await ExpectAsync(connection, FrameType.Hello, cancellationToken).ConfigureAwait(false);
        }
        catch (DisaggProtocolException ex) when (ex.Code == ProtocolErrorCode.ConnectionClosed && options.Tls is not null)
        {
            // TLS checks the server's certificate on the client after the TLS handshake has completed here: a client that
            // refuses it just closes, and this is all the worker can see of it.
            throw new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed,
                "The client closed the connection after the TLS handshake, before authenticating: it may not trust this worker's certificate " +
                "(the client's error, TlsHandshakeFailed, says why).", inner: ex);
        }
        int peerLimit = FrameCodec.ReadHello(payload.Span, clientNonce);

        var serverNonce = RandomNumberGenerator.GetBytes(FrameCodec.NonceSize);
        var serverMac = new byte[FrameCodec.MacSize];
        Mac(options.SharedSecret, server: true, clientNonce, serverNonce, serverMac);
        await connection.WriteFrameAsync(FrameType.Challenge, 0, FrameCodec.ChallengeSize, (serverNonce, serverMac, options.MaxFramePayload),
            static (s, p) => FrameCodec.WriteChallenge(p, s.serverNonce, s.serverMac, s.MaxFramePayload), cancellationToken).ConfigureAwait(false);

        payload = await ExpectAsync(connection, FrameType.Proof, cancellationToken).ConfigureAwait(false);
        if (payload.Length != FrameCodec.MacSize)
            throw new DisaggProtocolException(ProtocolErrorCode.MalformedPayload, "Malformed Proof frame payload.");
        var expected = new byte[FrameCodec.MacSize];
        Mac(options.SharedSecret, server: false, clientNonce, serverNonce, expected);
        if (!CryptographicOperations.FixedTimeEquals(expected, payload.Span))
            throw new DisaggProtocolException(ProtocolErrorCode.AuthenticationFailed, "The client did not prove knowledge of the shared secret.");

        connection.SendLimit = peerLimit;
        connection.ReceiveLimit = options.MaxFramePayload;
        var descriptor = options.DirectTransferDescriptor;
        await connection.WriteFrameAsync(FrameType.Ready, 0, FrameCodec.ReadySize(descriptor), (engine, descriptor),
            static (s, p) => FrameCodec.WriteReady(p, s.engine.KvLayout, s.engine.MaxContextLength, s.engine.GetLoad(), s.descriptor), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads one handshake frame of the expected type (copied: handshake payloads are tiny). An error frame throws the peer's error.</summary>
    private static async ValueTask<ReadOnlyMemory<byte>> ExpectAsync(FramedConnection connection, FrameType type, CancellationToken cancellationToken)
    {
        var (ok, header, payload) = await connection.ReadFrameAsync(cancellationToken).ConfigureAwait(false);
        if (!ok)
            throw new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, $"The peer closed the connection during the handshake (expecting {type}).");
        var bytes = payload.ToArray();
        connection.ConsumeFrame();
        if (header.Type == FrameType.Error)
        {
            var (code, message) = FrameCodec.ReadError(bytes);
            throw new DisaggProtocolException(code, message, isRemote: true);
        }
        if (header.Type != type || header.StreamId != 0)
            throw new DisaggProtocolException(ProtocolErrorCode.UnexpectedFrameType, $"Expected a {type} frame during the handshake, got {header.Type}.");
        return bytes;
    }
}
