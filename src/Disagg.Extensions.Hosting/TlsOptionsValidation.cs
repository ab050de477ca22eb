using Disagg.Transport.Sockets;

namespace Disagg.Extensions.Hosting;

/// <summary>The TLS part of <see cref="DisaggregatedInferenceOptionsValidator"/>: what only makes sense on Tcp, what a worker
/// needs, and whether the certificate files can be read (they are loaded once here, and again when the transport starts).</summary>
internal static class TlsOptionsValidation
{
    private const string Section = "Transport:Tls";

    /// <summary>The socket TLS settings <paramref name="transport"/> makes, for the socket transport's own checks; null when TLS is
    /// off or a file could not be read (reported through <paramref name="fail"/>).</summary>
    public static SocketTlsOptions? Load(KvTransportOptions transport, bool server, Action<string, string> fail)
    {
        if (transport.Tls is not { Enabled: true } tls) return null;
        if (transport.Kind != KvTransportKind.Tcp)
            fail($"{Section}:{nameof(tls.Enabled)}", $"applies to the Tcp transport only (Kind is {transport.Kind}: a Unix socket or in-process transport stays on this host).");
        if (server && tls.CertificatePath is null)
            fail($"{Section}:{nameof(tls.CertificatePath)}", "is required for a DecodeWorker with TLS: its certificate (PKCS#12, or PEM with its key).");
        if (tls.CertificatePath is null && tls.CertificateKeyPath is not null)
            fail($"{Section}:{nameof(tls.CertificateKeyPath)}", "is set without CertificatePath.");
        try
        {
            return tls.ToSocketTlsOptions(server, transport.Endpoint);
        }
        catch (ArgumentException e)
        {
            fail($"{Section}:{e.ParamName}", e.Message.Split(" (Parameter")[0]);
            return null;
        }
    }

    /// <summary>The configuration name of a socket option that <see cref="SocketTransportOptions.Validate"/> named.</summary>
    public static string? ConfigurationName(string? parameter) => parameter?
        .Replace(nameof(SocketTlsOptions.ServerCertificate), nameof(KvTransportTlsOptions.CertificatePath), StringComparison.Ordinal)
        .Replace(nameof(SocketTlsOptions.ClientCertificate), nameof(KvTransportTlsOptions.CertificatePath), StringComparison.Ordinal)
        .Replace('.', ':');

    /// <summary>Frees the certificates loaded for the check.</summary>
    public static void Release(SocketTlsOptions? tls)
    {
        if (tls is null) return;
        tls.ServerCertificate?.Dispose();
        tls.ClientCertificate?.Dispose();
        foreach (var authority in tls.TrustedCertificateAuthorities ?? []) authority.Dispose();
    }
}
