using System.Security.Cryptography.X509Certificates;
using Disagg.Transport.Sockets;
using Disagg.Transport.Tests.Sockets;

namespace Disagg.Transport.Tests.Tls;

/// <summary>Options for a TLS worker and its clients, over certificates made once per test run.</summary>
internal static class TlsSupport
{
    public const string WorkerHost = "decode-worker.test";

    /// <summary>The worker's self-signed certificate (with its key).</summary>
    public static readonly X509Certificate2 WorkerCertificate = TestCertificates.SelfSigned(WorkerHost);

    /// <summary>A worker serving TLS with <paramref name="certificate"/> (default <see cref="WorkerCertificate"/>).</summary>
    public static SocketTransportOptions Worker(X509Certificate2? certificate = null, Action<SocketTlsOptions>? configure = null)
    {
        var options = TestSupport.Options();
        options.Tls = new SocketTlsOptions { ServerCertificate = certificate ?? WorkerCertificate };
        configure?.Invoke(options.Tls);
        return options;
    }

    /// <summary>A client that trusts the worker's certificate by its pinned thumbprint and expects it for <see cref="WorkerHost"/>.</summary>
    public static SocketTransportOptions PinnedClient(Action<SocketTlsOptions>? configure = null) =>
        Client(tls =>
        {
            tls.PinnedThumbprints = [TestCertificates.Sha256(WorkerCertificate)];
            configure?.Invoke(tls);
        });

    /// <summary>A TLS client expecting <see cref="WorkerHost"/>, with the system's validation unless <paramref name="configure"/> says otherwise.</summary>
    public static SocketTransportOptions Client(Action<SocketTlsOptions>? configure = null)
    {
        var options = TestSupport.Options();
        options.Tls = new SocketTlsOptions { TargetHost = WorkerHost };
        configure?.Invoke(options.Tls);
        return options;
    }
}
