using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Disagg.Transport.Sockets;

namespace Disagg.Chat;

/// <summary>The socket transport's TLS settings that the --tls* flags ask for, on either side.</summary>
internal static class ChatTls
{
    /// <summary>The decode worker's side: it presents --tls-cert. Null when TLS is off.</summary>
    public static SocketTlsOptions? ForWorker(TlsFlags flags) =>
        flags.Enabled ? new SocketTlsOptions { ServerCertificate = LoadCertificate(flags) } : null;

    /// <summary>
    /// The chat's side: it trusts the pinned thumbprints, plus <paramref name="handedOverThumbprint"/> (the certificate it gave the
    /// worker it started); with no pin at all, the system's roots. Null when TLS is off.
    /// </summary>
    public static SocketTlsOptions? ForClient(TlsFlags flags, string? handedOverThumbprint) => flags.Enabled
        ? new SocketTlsOptions
        {
            TargetHost = flags.TargetHost,
            PinnedThumbprints = handedOverThumbprint is null ? [.. flags.Pins] : [.. flags.Pins, handedOverThumbprint],
        }
        : null;

    /// <summary>--tls-cert (with --tls-key, and the password) loaded, with its private key; a <see cref="UsageException"/> says why not.</summary>
    public static X509Certificate2 LoadCertificate(TlsFlags flags)
    {
        string path = flags.CertificatePath ?? throw new UsageException("--tls needs --tls-cert here.");
        X509Certificate2 certificate;
        try
        {
            certificate = TlsCertificateFile.Load(path, flags.KeyPath, flags.EffectivePassword);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            string hint = flags.EffectivePassword is null ? $" (if it has a password, give --tls-password or set {TlsFlags.PasswordVariable})" : "";
            throw new UsageException($"--tls-cert '{path}' could not be loaded{hint}: {e.Message}");
        }
        string? problem = !certificate.HasPrivateKey ? "holds no private key (give it with --tls-key, or a PKCS#12 file that includes it)"
            : certificate.NotAfter < DateTime.Now ? $"expired on {certificate.NotAfter:u}"
            : null;
        if (problem is null) return certificate;
        certificate.Dispose();
        throw new UsageException($"--tls-cert '{path}' {problem}.");
    }

    /// <summary>What the chat's flags can do about a TLS disagreement with the worker; null for other errors.</summary>
    public static string? Hint(Exception error) => error is DisaggProtocolException protocol ? protocol.Code switch
    {
        ProtocolErrorCode.TlsRequired => "The decode worker uses TLS: add --tls (with --tls-pin and the thumbprint the worker prints, or --tls-host).",
        ProtocolErrorCode.TlsHandshakeFailed => "Check that both sides use --tls, and that --tls-pin or --tls-host match the certificate the worker prints.",
        _ => null,
    } : null;

    /// <summary>The SHA-256 thumbprint, as --tls-pin takes it.</summary>
    public static string Thumbprint(X509Certificate2 certificate) => certificate.GetCertHashString(HashAlgorithmName.SHA256);
}
