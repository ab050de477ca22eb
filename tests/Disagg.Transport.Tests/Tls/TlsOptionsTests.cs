using System.Net.Sockets;
using System.Security.Authentication;
using Disagg.Transport.Sockets;
using Disagg.Transport.Tests.Sockets;

namespace Disagg.Transport.Tests.Tls;

/// <summary>TLS settings that cannot work are refused before anything connects, naming the setting.</summary>
public class TlsOptionsTests
{
    private static ArgumentException Invalid(Action<SocketTlsOptions> configure)
    {
        var options = TlsSupport.Worker(configure: configure);
        return Assert.ThrowsAny<ArgumentException>(options.Validate);
    }

    [Fact]
    public void A_certificate_without_its_private_key_is_refused()
    {
        var error = Invalid(tls => tls.ServerCertificate = TestCertificates.PublicOnly(TlsSupport.WorkerCertificate));
        Assert.Equal("Tls.ServerCertificate", error.ParamName);
        Assert.Contains("no private key", error.Message, StringComparison.Ordinal);
        error = Invalid(tls => tls.ClientCertificate = TestCertificates.PublicOnly(TlsSupport.WorkerCertificate));
        Assert.Equal("Tls.ClientCertificate", error.ParamName);
    }

    [Theory]
    [InlineData("0123")]
    [InlineData("zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    public void A_pin_that_is_not_a_sha256_thumbprint_is_refused(string pin)
    {
        var error = Invalid(tls => tls.PinnedThumbprints = [pin]);
        Assert.Equal("Tls.PinnedThumbprints", error.ParamName);
    }

    [Fact]
    public void Pins_are_read_in_any_case_and_with_separators()
    {
        string hex = TestCertificates.Sha256(TlsSupport.WorkerCertificate).ToLowerInvariant();
        string separated = string.Join(':', Enumerable.Range(0, 32).Select(i => hex.Substring(2 * i, 2)));
        TlsSupport.PinnedClient(tls => tls.PinnedThumbprints = [separated]).Validate();
    }

    [Theory]
    [InlineData(SslProtocols.None)]
#pragma warning disable SYSLIB0039 // the obsolete versions are exactly what must be refused
    [InlineData(SslProtocols.Tls11)]
    [InlineData(SslProtocols.Tls11 | SslProtocols.Tls13)]
#pragma warning restore SYSLIB0039
    public void Only_tls_1_2_and_1_3_are_allowed(SslProtocols protocols)
    {
        var error = Invalid(tls => tls.EnabledSslProtocols = protocols);
        Assert.Equal("Tls.EnabledSslProtocols", error.ParamName);
    }

    [Fact]
    public void A_callback_and_pins_together_are_ambiguous()
    {
        var error = Invalid(tls =>
        {
            tls.RemoteCertificateValidation = (_, _, _, _) => true;
            tls.PinnedThumbprints = [TestCertificates.Sha256(TlsSupport.WorkerCertificate)];
        });
        Assert.Equal("Tls.RemoteCertificateValidation", error.ParamName);
    }

    [Fact]
    public async Task Tls_on_a_unix_socket_is_refused_on_both_sides()
    {
        await using var decode = new DecodeSide(unix: true);
        var client = await Assert.ThrowsAnyAsync<ArgumentException>(() => RemoteDecodeEngine.ConnectAsync(decode.EndPoint, TlsSupport.PinnedClient()));
        Assert.Contains("Unix socket", client.Message, StringComparison.Ordinal);

        await using var server = new DecodeWorkerServer(decode.Engine, decode.Executor.BlockStore, TlsSupport.Worker());
        var error = Assert.ThrowsAny<ArgumentException>(() => server.Start(TestSupport.NewEndPoint(unix: true)));
        Assert.Equal("Tls", error.ParamName);
        Assert.Equal(0, decode.Server.ConnectionCount);
    }

    [Fact]
    public async Task A_tls_worker_needs_its_certificate()
    {
        await using var decode = new DecodeSide(unix: false);
        var options = TlsSupport.Worker();
        options.Tls!.ServerCertificate = null;
        await using var server = new DecodeWorkerServer(decode.Engine, decode.Executor.BlockStore, options);
        var error = Assert.ThrowsAny<ArgumentException>(() => server.Start(TestSupport.NewEndPoint(unix: false)));
        Assert.Equal("Tls.ServerCertificate", error.ParamName);
        Assert.Null(server.LocalEndPoint);
    }
}
