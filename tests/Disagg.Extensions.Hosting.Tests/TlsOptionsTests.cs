using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Disagg.Transport.Tests.Tls;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Disagg.Extensions.Hosting.Tests;

/// <summary>The Tcp transport's TLS settings: bound from configuration, checked with messages naming the option, read from
/// certificate files (made by the test, in a temporary directory), and used end to end by a worker host and a prefill host.</summary>
public sealed class TlsOptionsTests : IDisposable
{
    private const string WorkerHost = "decode-worker.test";
    private readonly string _directory = Directory.CreateTempSubdirectory("disagg-tls-").FullName;
    private readonly X509Certificate2 _certificate = TestCertificates.SelfSigned(WorkerHost);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Pkcs12(string password)
    {
        string path = Path.Combine(_directory, "worker.pfx");
        File.WriteAllBytes(path, _certificate.Export(X509ContentType.Pkcs12, password));
        return path;
    }

    private (string Certificate, string Key) Pem()
    {
        string certificate = Path.Combine(_directory, "worker.crt"), key = Path.Combine(_directory, "worker.key");
        File.WriteAllText(certificate, _certificate.ExportCertificatePem());
        File.WriteAllText(key, _certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        return (certificate, key);
    }

    private static IReadOnlyList<string> Validate(Action<DisaggregatedInferenceOptions> configure)
    {
        var options = new DisaggregatedInferenceOptions { ModelPath = "/models/x" };
        options.Transport.Kind = KvTransportKind.Tcp;
        options.Transport.Endpoint = $"{WorkerHost}:7000";
        options.Transport.SharedSecret = "0123456789abcdef";
        options.Transport.Tls.Enabled = true;
        configure(options);
        return new DisaggregatedInferenceOptionsValidator().Validate(null, options).Failures?.ToList() ?? [];
    }

    private static void AssertNames(IReadOnlyList<string> errors, string option, string problem) =>
        Assert.Contains(errors, e => e.Contains($"Disagg option Transport:Tls:{option} ", StringComparison.Ordinal) && e.Contains(problem, StringComparison.Ordinal));

    [Fact]
    public void Tls_settings_bind_from_configuration()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Disagg:ModelPath"] = "/models/x",
            ["Disagg:Transport:Tls:Enabled"] = "true",
            ["Disagg:Transport:Tls:CertificatePath"] = "/etc/disagg/worker.pfx",
            ["Disagg:Transport:Tls:CertificatePassword"] = "pw",
            ["Disagg:Transport:Tls:CertificateKeyPath"] = "/etc/disagg/worker.key",
            ["Disagg:Transport:Tls:TargetHost"] = WorkerHost,
            ["Disagg:Transport:Tls:PinnedThumbprints:0"] = "AA",
            ["Disagg:Transport:Tls:PinnedThumbprints:1"] = "BB",
            ["Disagg:Transport:Tls:CertificateAuthorityPath"] = "/etc/disagg/ca.pem",
            ["Disagg:Transport:Tls:RequireClientCertificate"] = "true",
            ["Disagg:Transport:Tls:EnabledSslProtocols"] = "Tls12, Tls13",
        }).Build();

        // Bound as AddDisaggregatedInference binds its section (validation, which would read the files, runs apart).
        var tls = configuration.GetSection(DisaggregatedInferenceOptions.DefaultSectionName).Get<DisaggregatedInferenceOptions>()!.Transport.Tls;

        Assert.True(tls.Enabled);
        Assert.Equal("/etc/disagg/worker.pfx", tls.CertificatePath);
        Assert.Equal("pw", tls.CertificatePassword);
        Assert.Equal("/etc/disagg/worker.key", tls.CertificateKeyPath);
        Assert.Equal(WorkerHost, tls.TargetHost);
        Assert.Equal(["AA", "BB"], tls.PinnedThumbprints);
        Assert.Equal("/etc/disagg/ca.pem", tls.CertificateAuthorityPath);
        Assert.True(tls.RequireClientCertificate);
        Assert.Equal(SslProtocols.Tls12 | SslProtocols.Tls13, tls.EnabledSslProtocols);
        Assert.False(new KvTransportTlsOptions().Enabled); // off unless asked for
    }

    [Fact]
    public void Tls_is_for_the_tcp_transport_only()
    {
        var errors = Validate(o =>
        {
            o.Transport.Kind = KvTransportKind.Unix;
            o.Transport.Endpoint = "/tmp/x.sock";
        });
        AssertNames(errors, "Enabled", "applies to the Tcp transport only");
    }

    [Fact]
    public void A_tls_worker_needs_a_readable_certificate_with_its_key()
    {
        AssertNames(Validate(o => o.Mode = InferenceMode.DecodeWorker), "CertificatePath", "is required for a DecodeWorker");
        AssertNames(Validate(o =>
        {
            o.Mode = InferenceMode.DecodeWorker;
            o.Transport.Tls.CertificatePath = Path.Combine(_directory, "missing.pfx");
        }), "CertificatePath", "could not be loaded");
        string pfx = Pkcs12("right");
        AssertNames(Validate(o =>
        {
            o.Mode = InferenceMode.DecodeWorker;
            o.Transport.Tls.CertificatePath = pfx;
            o.Transport.Tls.CertificatePassword = "wrong";
        }), "CertificatePath", "could not be loaded");
        var (certificate, _) = Pem();
        AssertNames(Validate(o =>
        {
            o.Mode = InferenceMode.DecodeWorker;
            o.Transport.Tls.CertificatePath = certificate; // a PEM certificate alone: no key in it
        }), "CertificatePath", "could not be loaded");
        AssertNames(Validate(o => o.Transport.Tls.CertificateKeyPath = "/x.key"), "CertificateKeyPath", "without CertificatePath");
    }

    [Fact]
    public void Pins_and_protocols_are_checked_by_the_transport_s_rules()
    {
        AssertNames(Validate(o => o.Transport.Tls.PinnedThumbprints.Add("not-hex")), "PinnedThumbprints", "not a SHA-256 thumbprint");
        AssertNames(Validate(o => o.Transport.Tls.EnabledSslProtocols = SslProtocols.None), "EnabledSslProtocols", "Tls13, Tls12, or both");
        Assert.Empty(Validate(o => o.Transport.Tls.PinnedThumbprints.Add(TestCertificates.Sha256(_certificate))));
    }

    [Fact]
    public void Certificate_files_map_onto_the_socket_transport_s_tls_options()
    {
        var transport = new KvTransportOptions { Kind = KvTransportKind.Tcp, Endpoint = $"{WorkerHost}:7000", SharedSecret = "0123456789abcdef" };
        transport.Tls.Enabled = true;
        transport.Tls.CertificatePath = Pkcs12("pw");
        transport.Tls.CertificatePassword = "pw";
        var worker = transport.ToSocketOptions(server: true).Tls!;
        Assert.Equal(_certificate.Thumbprint, worker.ServerCertificate!.Thumbprint);
        Assert.True(worker.ServerCertificate.HasPrivateKey);
        Assert.Null(worker.ClientCertificate);

        var (certificate, key) = Pem();
        transport.Tls.CertificatePath = certificate;
        transport.Tls.CertificateKeyPath = key;
        transport.Tls.CertificatePassword = null;
        transport.Tls.PinnedThumbprints.Add(TestCertificates.Sha256(_certificate));
        string ca = Path.Combine(_directory, "ca.pem");
        File.WriteAllText(ca, TestCertificates.Authority("Disagg test CA").ExportCertificatePem());
        transport.Tls.CertificateAuthorityPath = ca;
        var client = transport.ToSocketOptions(server: false).Tls!;
        Assert.Equal(_certificate.Thumbprint, client.ClientCertificate!.Thumbprint);
        Assert.True(client.ClientCertificate.HasPrivateKey);
        Assert.Equal(WorkerHost, client.TargetHost); // from the endpoint
        Assert.Equal([TestCertificates.Sha256(_certificate)], client.PinnedThumbprints!);
        Assert.Equal("CN=Disagg test CA", Assert.Single(client.TrustedCertificateAuthorities!).Subject);
        Assert.Null(transport.ToSocketOptions().Tls); // the timeouts-only mapping never reads files
        transport.Tls.Enabled = false;
        Assert.Null(transport.ToSocketOptions(server: false).Tls);
    }

    [Fact]
    public async Task A_prefill_host_and_a_tls_decode_worker_host_answer_like_one_colocated_host()
    {
        string pfx = Pkcs12("pw");
        string endpoint = $"127.0.0.1:{FreePort()}";
        void Tcp(KvTransportOptions t)
        {
            t.Kind = KvTransportKind.Tcp;
            t.Endpoint = endpoint;
            t.SharedSecret = "a shared secret of the two hosts";
            t.Tls.Enabled = true; // on both: either side alone would be refused
        }
        await TestHosts.AssertWorkerAndPrefillHostsAnswerLikeColocated(
            worker: t =>
            {
                Tcp(t);
                t.Tls.CertificatePath = pfx;
                t.Tls.CertificatePassword = "pw";
            },
            prefill: t =>
            {
                Tcp(t);
                t.Tls.TargetHost = WorkerHost;
                t.Tls.PinnedThumbprints.Add(TestCertificates.Sha256(_certificate));
            });
    }

    /// <summary>A port nothing listens on now (the worker host takes the endpoint from its options, so it cannot use port 0).</summary>
    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
