using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Disagg.Transport.Sockets;

namespace Disagg.Chat;

/// <summary>The socket transport's TLS settings that the --tls* flags ask for, on either side.</summary>
internal static class ChatTls
{
    /// <summary>
    /// The decode worker's side: it presents --tls-cert, and with --tls-client-ca or --tls-client-pin requires the chat's
    /// certificate and trusts only those. Null when TLS is off.
    /// </summary>
    public static SocketTlsOptions? ForWorker(TlsFlags flags) => flags.Enabled
        ? new SocketTlsOptions
        {
            ServerCertificate = LoadCertificate(flags),
            RequireClientCertificate = flags.RequiresClientCertificate,
            PinnedThumbprints = flags.ClientPins.Count > 0 ? [.. flags.ClientPins] : null,
            TrustedCertificateAuthorities = LoadAuthorities("--tls-client-ca", flags.ClientAuthorityPath),
        }
        : null;

    /// <summary>
    /// The chat's side: it trusts the pinned thumbprints, plus <paramref name="handedOverThumbprint"/> (the certificate it gave the
    /// worker it started); with no pin at all, --tls-ca or the system's roots. It presents --tls-client-cert when given. Null when TLS is off.
    /// </summary>
    public static SocketTlsOptions? ForClient(TlsFlags flags, string? handedOverThumbprint) => flags.Enabled
        ? new SocketTlsOptions
        {
            TargetHost = flags.TargetHost,
            PinnedThumbprints = handedOverThumbprint is null ? [.. flags.Pins] : [.. flags.Pins, handedOverThumbprint],
            TrustedCertificateAuthorities = LoadAuthorities("--tls-ca", flags.AuthorityPath),
            ClientCertificate = flags.ClientCertificatePath is { } client
                ? Load("--tls-client-cert", client, "--tls-client-key", flags.ClientKeyPath, flags.EffectivePassword)
                : null,
        }
        : null;

    /// <summary>--tls-cert (with --tls-key, and the password) loaded, with its private key; a <see cref="UsageException"/> says why not.</summary>
    public static X509Certificate2 LoadCertificate(TlsFlags flags) =>
        Load("--tls-cert", flags.CertificatePath ?? throw new UsageException("--tls needs --tls-cert here."), "--tls-key", flags.KeyPath, flags.EffectivePassword);

    private static X509Certificate2 Load(string flag, string path, string keyFlag, string? keyPath, string? password)
    {
        X509Certificate2 certificate;
        try
        {
            certificate = TlsCertificateFile.Load(path, keyPath, password);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            string hint = password is null ? $" (if it has a password, give --tls-password or set {TlsFlags.PasswordVariable})" : "";
            throw new UsageException($"{flag} '{path}' could not be loaded{hint}: {e.Message}");
        }
        string? problem = !certificate.HasPrivateKey ? $"holds no private key (give it with {keyFlag}, or a PKCS#12 file that includes it)"
            : certificate.NotAfter < DateTime.Now ? $"expired on {certificate.NotAfter:u}"
            : null;
        if (problem is null) return certificate;
        certificate.Dispose();
        throw new UsageException($"{flag} '{path}' {problem}.");
    }

    /// <summary>The CA certificates in <paramref name="path"/> (null: none given); a <see cref="UsageException"/> names the flag.</summary>
    private static IReadOnlyList<X509Certificate2>? LoadAuthorities(string flag, string? path)
    {
        if (path is null) return null;
        try
        {
            return TlsCertificateFile.LoadAuthorities(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new UsageException($"{flag} '{path}' holds no certificate authority that could be read (a PEM bundle or one DER certificate): {e.Message}");
        }
    }

    /// <summary>What the chat's flags can do about a TLS disagreement with the worker; null for other errors.</summary>
    public static string? Hint(Exception error) => error is DisaggProtocolException protocol ? protocol.Code switch
    {
        ProtocolErrorCode.TlsRequired => "The decode worker uses TLS: add --tls (with --tls-pin and the thumbprint the worker prints, or --tls-host).",
        ProtocolErrorCode.TlsHandshakeFailed => "Check that both sides use --tls, that --tls-pin, --tls-ca or --tls-host match the certificate the " +
            "worker prints, and, when the worker checks chats (--tls-client-ca, --tls-client-pin), that --tls-client-cert is one it accepts.",
        _ => null,
    } : null;

    /// <summary>The SHA-256 thumbprint, as --tls-pin takes it.</summary>
    public static string Thumbprint(X509Certificate2 certificate) => certificate.GetCertHashString(HashAlgorithmName.SHA256);
}
