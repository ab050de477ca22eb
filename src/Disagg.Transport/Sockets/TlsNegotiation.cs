using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;

namespace Disagg.Transport.Sockets;

/// <summary>
/// The TLS handshake of a <see cref="FramedConnection"/>, before its pumps start: on success the connection moves its bytes
/// through the returned <see cref="SslStream"/>; on failure a <see cref="DisaggProtocolException"/> says what went wrong and with
/// whom. The caller bounds it (HandshakeTimeout) with the token; a timeout surfaces as <see cref="OperationCanceledException"/>.
/// </summary>
internal static class TlsNegotiation
{
    /// <summary>Client side: TLS with the worker at <paramref name="endPoint"/>, its certificate checked under <paramref name="tls"/>.</summary>
    public static async ValueTask AuthenticateClientAsync(FramedConnection connection, SocketTlsOptions tls, EndPoint endPoint, CancellationToken cancellationToken)
    {
        string targetHost = tls.TargetHost ?? HostOf(endPoint);
        var trust = new PeerCertificateTrust(tls, server: false, targetHost);
        bool asked = false;
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = targetHost,
            EnabledSslProtocols = tls.EnabledSslProtocols,
            RemoteCertificateValidationCallback = trust.Validate,
            CertificateChainPolicy = trust.ChainPolicy,
            // Called once before the handshake (no remote certificate yet) and, when that gave none, again if the worker asks
            // for one: then a worker that closes right after the handshake has most likely refused us for the lack of it.
            LocalCertificateSelectionCallback = (_, _, _, remote, _) =>
            {
                if (remote is not null) asked = true;
                return tls.ClientCertificate!;
            },
        };
        var inner = new FirstByteNetworkStream(connection.Socket);
        var ssl = new SslStream(inner, leaveInnerStreamOpen: false);
        await AuthenticateAsync(connection, ssl,
            (ssl, ct) => ssl.AuthenticateAsClientAsync(options, ct),
            ex => $"The TLS handshake with the decode worker at {endPoint} failed: " + (inner.FirstByte == FrameCodec.FirstMagicByte
                ? "the worker answered without TLS (it is not configured for TLS)."
                : $"{trust.Rejection ?? Describe(ex)}."),
            cancellationToken).ConfigureAwait(false);
        // A certificate is only sent when the worker asks for one.
        connection.ClientCertificateRequested = asked || ssl.LocalCertificate is not null;
    }

    /// <summary>
    /// Server side: TLS with a new client. A client that starts with a plaintext frame instead of a TLS hello is told, in one
    /// plaintext error frame, that this worker requires TLS (a TLS alert would mean nothing to it).
    /// </summary>
    public static async ValueTask AuthenticateServerAsync(FramedConnection connection, SocketTlsOptions tls, CancellationToken cancellationToken)
    {
        var socket = connection.Socket;
        string peer = socket.RemoteEndPoint?.ToString() ?? "(unknown)";
        if (await FirstByteAsync(socket, peer, cancellationToken).ConfigureAwait(false) == FrameCodec.FirstMagicByte)
        {
            const string Refusal = "This decode worker requires TLS; the client connected without it (set SocketTransportOptions.Tls on the client).";
            await RefusePlaintextAsync(socket, Refusal, cancellationToken).ConfigureAwait(false);
            throw new DisaggProtocolException(ProtocolErrorCode.TlsRequired, $"The client at {peer} connected without TLS; this worker requires TLS.");
        }
        var trust = new PeerCertificateTrust(tls, server: true, targetHost: null);
        var options = new SslServerAuthenticationOptions
        {
            ServerCertificate = tls.ServerCertificate,
            EnabledSslProtocols = tls.EnabledSslProtocols,
            ClientCertificateRequired = tls.RequireClientCertificate,
            RemoteCertificateValidationCallback = trust.Validate,
            CertificateChainPolicy = trust.ChainPolicy,
        };
        await AuthenticateAsync(connection, new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false),
            (ssl, ct) => ssl.AuthenticateAsServerAsync(options, ct),
            ex => $"The TLS handshake with the client at {peer} failed: {trust.Rejection ?? Describe(ex)}.",
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs one side's handshake on <paramref name="ssl"/> and attaches it; a TLS failure becomes
    /// <see cref="ProtocolErrorCode.TlsHandshakeFailed"/> with <paramref name="failure"/>'s words, a timeout stays a cancellation.</summary>
    private static async ValueTask AuthenticateAsync(FramedConnection connection, SslStream ssl, Func<SslStream, CancellationToken, Task> authenticate,
        Func<Exception, string> failure, CancellationToken cancellationToken)
    {
        try
        {
            await authenticate(ssl, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested(); // timed out or stopped: the caller reports that
            throw new DisaggProtocolException(ProtocolErrorCode.TlsHandshakeFailed, failure(ex), inner: ex);
        }
        catch
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        connection.AttachTls(ssl);
    }

    private static string HostOf(EndPoint endPoint) => endPoint switch
    {
        DnsEndPoint dns => dns.Host,
        IPEndPoint ip => ip.Address.ToString(),
        _ => endPoint.ToString() ?? "",
    };

    private static string Describe(Exception ex) => ex.InnerException is { } inner ? $"{ex.Message} ({inner.Message})" : ex.Message;

    /// <summary>The first byte the client sent, without consuming it.</summary>
    private static async ValueTask<byte> FirstByteAsync(Socket socket, string peer, CancellationToken cancellationToken)
    {
        var first = new byte[1];
        try
        {
            if (await socket.ReceiveAsync(first, SocketFlags.Peek, cancellationToken).ConfigureAwait(false) == 1) return first[0];
        }
        catch (SocketException ex)
        {
            throw new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, $"The client at {peer} failed before the TLS handshake: {ex.Message}", inner: ex);
        }
        throw new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, $"The client at {peer} closed the connection before the TLS handshake.");
    }

    /// <summary>Reads the plaintext client's first frame (so that closing does not reset the connection and lose the answer),
    /// answers it with an error frame, and ends our side of the stream.</summary>
    private static async ValueTask RefusePlaintextAsync(Socket socket, string message, CancellationToken cancellationToken)
    {
        try
        {
            var header = new byte[FrameCodec.HeaderSize];
            await ReceiveExactlyAsync(socket, header, cancellationToken).ConfigureAwait(false);
            int length = FrameCodec.ReadHeader(header, FrameCodec.HandshakePayloadLimit).PayloadLength;
            await ReceiveExactlyAsync(socket, new byte[length], cancellationToken).ConfigureAwait(false);
            var frame = new byte[FrameCodec.HeaderSize + FrameCodec.ErrorSize(message)];
            FrameCodec.WriteHeader(frame, FrameType.Error, frame.Length - FrameCodec.HeaderSize, 0);
            FrameCodec.WriteError(frame.AsSpan(FrameCodec.HeaderSize), ProtocolErrorCode.TlsRequired, message);
            await socket.SendAsync(frame, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or DisaggProtocolException or EndOfStreamException) { /* best effort: it is refused either way */ }
    }

    private static async ValueTask ReceiveExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (!buffer.IsEmpty)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0) throw new EndOfStreamException();
            buffer = buffer[n..];
        }
    }

    /// <summary>The socket as a stream that remembers the first byte it read: a plaintext worker's answer to a TLS hello starts
    /// with the frame magic, which turns TLS's "corrupted frame" into "the worker does not use TLS".</summary>
    private sealed class FirstByteNetworkStream(Socket socket) : NetworkStream(socket, ownsSocket: false)
    {
        public int FirstByte { get; private set; } = -1;

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            FirstByte >= 0 ? base.ReadAsync(buffer, cancellationToken) : RecordAsync(buffer, cancellationToken);

        private async ValueTask<int> RecordAsync(Memory<byte> buffer, CancellationToken cancellationToken)
        {
            int n = await base.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (n > 0 && FirstByte < 0) FirstByte = buffer.Span[0];
            return n;
        }
    }
}
