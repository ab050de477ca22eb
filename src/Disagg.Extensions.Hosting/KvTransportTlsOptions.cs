using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Disagg.Transport.Sockets;

namespace Disagg.Extensions.Hosting;

/// <summary>
/// TLS for the Tcp transport (<see cref="KvTransportOptions.Tls"/>), bindable from configuration (<c>Disagg:Transport:Tls</c>).
/// A decode worker needs its certificate; a prefill host needs to know how to trust the worker's (pinned thumbprints, a private
/// CA, or the system's roots) and the host name it was issued for. Both ends must turn it on.
/// </summary>
public sealed class KvTransportTlsOptions
{
    /// <summary>Encrypt the Tcp transport's connections. Off by default; not for the Unix transport (same host).</summary>
    public bool Enabled { get; set; }

    /// <summary>This host's certificate: the worker's server certificate (required on a decode worker) or a prefill host's client
    /// certificate (optional). A PKCS#12 file (.pfx, .p12), or a PEM file; with <see cref="CertificateKeyPath"/> unset, a PEM file
    /// holds the key too.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>Password of the PKCS#12 file, or of an encrypted PEM key.</summary>
    public string? CertificatePassword { get; set; }

    /// <summary>PEM file of the certificate's private key, when it is not inside <see cref="CertificatePath"/>.</summary>
    public string? CertificateKeyPath { get; set; }

    /// <summary>Prefill host: the name the worker's certificate must be issued for. Null: the host part of <see cref="KvTransportOptions.Endpoint"/>.</summary>
    public string? TargetHost { get; set; }

    /// <summary>SHA-256 thumbprints (hex) of the peer certificates to trust without a chain (self-signed is fine).</summary>
    public IList<string> PinnedThumbprints { get; } = new List<string>();

    /// <summary>PEM file of private root certificates to trust instead of the system's.</summary>
    public string? CertificateAuthorityPath { get; set; }

    /// <summary>Decode worker: refuse clients without a certificate that the trust settings accept.</summary>
    public bool RequireClientCertificate { get; set; }

    /// <summary>TLS versions: <c>Tls13</c> (the default), <c>Tls12</c>, or <c>"Tls12, Tls13"</c>.</summary>
    public SslProtocols EnabledSslProtocols { get; set; } = SslProtocols.Tls13;

    /// <summary>The socket transport's TLS settings (null when off), reading the certificate files now.</summary>
    /// <exception cref="ArgumentException">A file could not be read (<see cref="ArgumentException.ParamName"/> names the option).</exception>
    /// <param name="server">True for a decode worker (this host's certificate serves), false for a client.</param>
    /// <param name="endpoint">The transport's host:port, whose host is the default <see cref="TargetHost"/>.</param>
    internal SocketTlsOptions? ToSocketTlsOptions(bool server, string? endpoint)
    {
        if (!Enabled) return null;
        var certificate = Load(LoadCertificate, nameof(CertificatePath));
        return new SocketTlsOptions
        {
            ServerCertificate = server ? certificate : null,
            ClientCertificate = server ? null : certificate,
            TargetHost = TargetHost ?? HostOf(endpoint),
            PinnedThumbprints = [.. PinnedThumbprints],
            TrustedCertificateAuthorities = CertificateAuthorityPath is { } ca ? Load(() => LoadAuthorities(ca), nameof(CertificateAuthorityPath)) : null,
            RequireClientCertificate = RequireClientCertificate,
            EnabledSslProtocols = EnabledSslProtocols,
        };
    }

    private static T Load<T>(Func<T> load, string option)
    {
        try
        {
            return load();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or InvalidDataException)
        {
            throw new ArgumentException($"could not be loaded: {e.Message}", option, e);
        }
    }

    private X509Certificate2? LoadCertificate() =>
        CertificatePath is { } path ? TlsCertificateFile.Load(path, CertificateKeyPath, CertificatePassword) : null;

    private static X509Certificate2[] LoadAuthorities(string path)
    {
        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(path);
        if (authorities.Count == 0) throw new InvalidDataException($"'{path}' holds no PEM certificate.");
        return [.. authorities];
    }

    private static string? HostOf(string? endpoint)
    {
        int colon = endpoint?.LastIndexOf(':') ?? -1;
        return colon > 0 ? endpoint![..colon].Trim('[', ']') : null;
    }
}
