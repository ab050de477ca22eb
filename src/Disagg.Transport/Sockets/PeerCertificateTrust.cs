using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Disagg.Transport.Sockets;

/// <summary>
/// Decides whether one connection's peer certificate is trusted under <see cref="SocketTlsOptions"/>, and remembers why not, so
/// that the handshake's failure can say it (TLS itself only reports that the callback said no).
/// </summary>
internal sealed class PeerCertificateTrust
{
    private readonly SocketTlsOptions _tls;
    private readonly bool _server;
    private readonly string? _targetHost;
    private readonly HashSet<string>? _pins;

    public PeerCertificateTrust(SocketTlsOptions tls, bool server, string? targetHost)
    {
        _tls = tls;
        _server = server;
        _targetHost = targetHost;
        if (tls.PinnedThumbprints is { Count: > 0 } pins)
            _pins = new HashSet<string>(pins.Select(p => SocketTlsOptions.NormalizeThumbprint(p)!), StringComparer.Ordinal);
        if (tls.TrustedCertificateAuthorities is { Count: > 0 } authorities)
        {
            ChainPolicy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
            ChainPolicy.CustomTrustStore.AddRange(authorities.ToArray());
        }
    }

    /// <summary>The chain policy for private roots (null: the system's roots).</summary>
    public X509ChainPolicy? ChainPolicy { get; }

    /// <summary>Why the peer's certificate was refused (null when it was not, or not examined).</summary>
    public string? Rejection { get; private set; }

    /// <summary>The <see cref="RemoteCertificateValidationCallback"/> of the handshake.</summary>
    public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        string peer = _server ? "the client's certificate" : "the worker's certificate";
        if (_server && !_tls.RequireClientCertificate) return true;
        if (_tls.RemoteCertificateValidation is { } custom)
            return custom(sender, certificate, chain, errors) || Reject($"the RemoteCertificateValidation callback refused {peer} ({certificate?.Subject}; {errors})");
        if (certificate is null) return Reject($"{(_server ? "the client" : "the worker")} presented no certificate");
        if (_pins is not null)
        {
            string thumbprint = certificate.GetCertHashString(HashAlgorithmName.SHA256);
            if (!_pins.Contains(thumbprint))
                return Reject($"{peer} ({certificate.Subject}, SHA-256 {thumbprint}) is not one of the pinned thumbprints");
            errors &= ~SslPolicyErrors.RemoteCertificateChainErrors; // pinned: the thumbprint is the trust, no chain needed
        }
        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
            return Reject($"{peer} ({certificate.Subject}) is not issued for the host name '{_targetHost}'");
        if ((errors & SslPolicyErrors.RemoteCertificateChainErrors) != 0)
        {
            var status = chain?.ChainStatus.Select(s => s.Status.ToString()).Distinct() ?? [];
            return Reject($"{peer} ({certificate.Subject}) is not trusted: {string.Join(", ", status)}");
        }
        return errors == SslPolicyErrors.None || Reject($"{peer} ({certificate.Subject}) was refused: {errors}");
    }

    private bool Reject(string reason)
    {
        Rejection = reason;
        return false;
    }
}
