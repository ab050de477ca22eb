using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Disagg.Transport.Sockets;

/// <summary>
/// TLS for the socket transport's TCP connections (<see cref="SocketTransportOptions.Tls"/>): every byte after the TCP connect,
/// the shared-secret handshake included, travels inside TLS. Unix domain sockets stay plaintext (same host; file permissions
/// guard them), so TLS on a Unix endpoint is refused.
/// </summary>
/// <remarks>
/// How the peer's certificate is trusted, in order: <see cref="RemoteCertificateValidation"/> when set (it decides alone);
/// otherwise a certificate whose SHA-256 thumbprint is in <see cref="PinnedThumbprints"/> (no chain needed, self-signed is fine;
/// on the client its name must still match <see cref="TargetHost"/>); otherwise the chain must end at one of
/// <see cref="TrustedCertificateAuthorities"/> (revocation is not checked) or, when none are given, at a root the system trusts.
/// </remarks>
public sealed class SocketTlsOptions
{
    /// <summary>Server side (required there): the decode worker's certificate, with its private key.</summary>
    public X509Certificate2? ServerCertificate { get; set; }

    /// <summary>
    /// Client side: the host name the worker's certificate must be issued for (also sent as SNI). Null: the endpoint's address
    /// as text (which then has to be in the certificate's subject alternative names).
    /// </summary>
    public string? TargetHost { get; set; }

    /// <summary>Decides alone whether the peer's certificate is trusted (the other trust settings must then be unset).</summary>
    public RemoteCertificateValidationCallback? RemoteCertificateValidation { get; set; }

    /// <summary>SHA-256 thumbprints (64 hex digits, case and ':' separators ignored) of the peer certificates to trust, with no
    /// chain needed. Null or empty: not pinned.</summary>
    public IReadOnlyList<string>? PinnedThumbprints { get; set; }

    /// <summary>Private roots to trust instead of the system's: the peer's chain must end at one of them. Null or empty: the system's roots.</summary>
    public IReadOnlyList<X509Certificate2>? TrustedCertificateAuthorities { get; set; }

    /// <summary>Client side, optional: a certificate (with its private key) to present to a worker that requires one.</summary>
    public X509Certificate2? ClientCertificate { get; set; }

    /// <summary>Server side: refuse clients that present no certificate, or one the trust settings above reject.</summary>
    public bool RequireClientCertificate { get; set; }

    /// <summary>TLS versions to offer and accept: <see cref="SslProtocols.Tls13"/> (the default), <see cref="SslProtocols.Tls12"/>, or both.</summary>
    public SslProtocols EnabledSslProtocols { get; set; } = SslProtocols.Tls13;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting (role-independent checks).</summary>
    internal void Validate()
    {
        const SslProtocols allowed = SslProtocols.Tls12 | SslProtocols.Tls13;
        if (EnabledSslProtocols == SslProtocols.None || (EnabledSslProtocols & ~allowed) != 0)
            throw new ArgumentOutOfRangeException(nameof(EnabledSslProtocols), EnabledSslProtocols,
                "EnabledSslProtocols must be Tls13, Tls12, or both (older versions are not offered).");
        RequirePrivateKey(ServerCertificate, nameof(ServerCertificate));
        RequirePrivateKey(ClientCertificate, nameof(ClientCertificate));
        if (PinnedThumbprints is { } pins)
        {
            foreach (var pin in pins)
                if (NormalizeThumbprint(pin) is null)
                    throw new ArgumentException($"PinnedThumbprints holds '{pin}', which is not a SHA-256 thumbprint (64 hex digits).", nameof(PinnedThumbprints));
        }
        bool pinned = PinnedThumbprints is { Count: > 0 }, authorities = TrustedCertificateAuthorities is { Count: > 0 };
        if (RemoteCertificateValidation is not null && (pinned || authorities))
            throw new ArgumentException("RemoteCertificateValidation decides alone: do not also set PinnedThumbprints or TrustedCertificateAuthorities.",
                nameof(RemoteCertificateValidation));
        if (TargetHost is { } host && string.IsNullOrWhiteSpace(host))
            throw new ArgumentException("TargetHost must not be blank: leave it null to use the endpoint's address.", nameof(TargetHost));
    }

    private static void RequirePrivateKey(X509Certificate2? certificate, string name)
    {
        if (certificate is null) return;
        if (!certificate.HasPrivateKey)
            throw new ArgumentException($"{name} ({certificate.Subject}) has no private key: TLS needs the key to prove the certificate is ours.", name);
        if (certificate.NotAfter < DateTime.Now)
            throw new ArgumentException($"{name} ({certificate.Subject}) expired on {certificate.NotAfter:u}.", name);
    }

    /// <summary>Upper-case hex without separators, or null when <paramref name="thumbprint"/> is not 32 bytes of hex.</summary>
    internal static string? NormalizeThumbprint(string? thumbprint)
    {
        if (thumbprint is null) return null;
        string hex = thumbprint.Replace(":", "", StringComparison.Ordinal).Replace(" ", "", StringComparison.Ordinal).ToUpperInvariant();
        return hex.Length == 64 && hex.All(Uri.IsHexDigit) ? hex : null;
    }
}
