using System.Net;
using System.Net.Sockets;
using Disagg.Tests.Reliability;
using Disagg.Transport.Sockets;
using Disagg.Transport.Tests.Sockets;

namespace Disagg.Transport.Tests.Tls;

/// <summary>
/// Every way the two sides can disagree about TLS fails fast, on both sides, with a typed error that says what is wrong, and
/// leaves the worker with no connection, no stream and no block held.
/// </summary>
public class TlsMismatchTests
{
    private static async Task<DisaggProtocolException> ConnectFails(DecodeSide decode, SocketTransportOptions client, ProtocolErrorCode code)
    {
        var error = await Assert.ThrowsAsync<DisaggProtocolException>(
            () => RemoteDecodeEngine.ConnectAsync(decode.EndPoint, client).WaitAsync(TestSupport.Bound));
        Assert.Equal(code, error.Code);
        return error;
    }

    private static async Task AssertWorkerHoldsNothing(DecodeSide decode)
    {
        await TestSupport.WaitUntil(() => decode.Server.ConnectionCount == 0, () => $"{decode.Server.ConnectionCount} connections still open.");
        await decode.AssertIdleAndLeakFree();
    }

    /// <summary>After a refused connection the worker still serves a client that is configured right.</summary>
    private static async Task AssertStillServes(DecodeSide decode, SocketTransportOptions client)
    {
        await using var remote = await RemoteDecodeEngine.ConnectAsync(decode.EndPoint, client);
        using var reservation = await remote.ReserveAsync(new InferenceRequest(new[] { 1, 2, 3 }));
        Assert.True(remote.IsConnected);
    }

    /// <summary>The client checks the worker's certificate after its TLS handshake completed on the worker's side: the worker
    /// sees a refusing client close before authenticating, and says that this may be why.</summary>
    private static async Task ExpectWorkerSawTheRefusal(DecodeSide decode)
    {
        var server = await decode.ExpectClosedWith(ProtocolErrorCode.ConnectionClosed);
        Assert.Contains("may not trust this worker's certificate", server.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_plaintext_client_is_told_the_worker_requires_tls()
    {
        await using var decode = new DecodeSide(unix: false, options: TlsSupport.Worker());

        var error = await ConnectFails(decode, TestSupport.Options(), ProtocolErrorCode.TlsRequired);

        Assert.True(error.IsRemote);
        Assert.Contains("requires TLS", error.Message, StringComparison.Ordinal);
        await decode.ExpectClosedWith(ProtocolErrorCode.TlsRequired);
        await AssertWorkerHoldsNothing(decode);
        await AssertStillServes(decode, TlsSupport.PinnedClient());
    }

    [Fact]
    public async Task A_tls_client_of_a_plaintext_worker_is_refused_on_both_sides()
    {
        await using var decode = new DecodeSide(unix: false);

        var error = await ConnectFails(decode, TlsSupport.PinnedClient(), ProtocolErrorCode.TlsHandshakeFailed);

        Assert.Contains(decode.EndPoint.ToString()!, error.Message, StringComparison.Ordinal);
        Assert.Contains("without TLS", error.Message, StringComparison.Ordinal);
        var server = await decode.ExpectClosedWith(ProtocolErrorCode.BadMagic);
        Assert.Contains("TLS", server.Detail, StringComparison.Ordinal);
        await AssertWorkerHoldsNothing(decode);
    }

    [Fact]
    public async Task A_certificate_the_system_does_not_trust_is_refused()
    {
        await using var decode = new DecodeSide(unix: false, options: TlsSupport.Worker());

        var error = await ConnectFails(decode, TlsSupport.Client(), ProtocolErrorCode.TlsHandshakeFailed); // system validation, self-signed

        Assert.Contains("is not trusted", error.Message, StringComparison.Ordinal);
        Assert.Contains(TlsSupport.WorkerHost, error.Message, StringComparison.Ordinal);
        await ExpectWorkerSawTheRefusal(decode);
        await AssertWorkerHoldsNothing(decode);
    }

    [Fact]
    public async Task A_certificate_that_is_not_pinned_is_refused()
    {
        await using var decode = new DecodeSide(unix: false, options: TlsSupport.Worker(TestCertificates.SelfSigned(TlsSupport.WorkerHost)));

        // Same name, another key: the pin (of TlsSupport.WorkerCertificate) does not match.
        var error = await ConnectFails(decode, TlsSupport.PinnedClient(), ProtocolErrorCode.TlsHandshakeFailed);

        Assert.Contains("not one of the pinned thumbprints", error.Message, StringComparison.Ordinal);
        await ExpectWorkerSawTheRefusal(decode);
        await AssertWorkerHoldsNothing(decode);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_certificate_for_another_host_is_refused(bool pinned)
    {
        var authority = TestCertificates.Authority("Disagg test CA");
        var certificate = pinned ? TlsSupport.WorkerCertificate : TestCertificates.IssuedBy(authority, TlsSupport.WorkerHost);
        await using var decode = new DecodeSide(unix: false, options: TlsSupport.Worker(certificate));
        void Trust(SocketTlsOptions tls)
        {
            if (pinned) tls.PinnedThumbprints = [TestCertificates.Sha256(certificate)];
            else tls.TrustedCertificateAuthorities = [TestCertificates.PublicOnly(authority)];
        }

        var error = await ConnectFails(decode, TlsSupport.Client(tls => { Trust(tls); tls.TargetHost = "another-host.test"; }),
            ProtocolErrorCode.TlsHandshakeFailed);

        Assert.Contains("is not issued for the host name 'another-host.test'", error.Message, StringComparison.Ordinal);
        await ExpectWorkerSawTheRefusal(decode);
        await AssertWorkerHoldsNothing(decode);
        await AssertStillServes(decode, TlsSupport.Client(Trust)); // the right name, the same trust: accepted
        await decode.AssertIdleAndLeakFree();
    }

    [Fact]
    public async Task A_worker_that_requires_client_certificates_refuses_a_client_without_one_and_accepts_a_pinned_one()
    {
        var clientCertificate = TestCertificates.SelfSigned("prefill-host.test");
        await using var decode = new DecodeSide(unix: false, options: TlsSupport.Worker(configure: tls =>
        {
            tls.RequireClientCertificate = true;
            tls.PinnedThumbprints = [TestCertificates.Sha256(clientCertificate)];
        }));

        // In TLS 1.3 the client's side of the handshake completes before the worker has checked its certificate: the client
        // learns of the refusal as a closed connection, and knows the worker had asked for a certificate.
        var error = await Assert.ThrowsAsync<DisaggProtocolException>(
            () => RemoteDecodeEngine.ConnectAsync(decode.EndPoint, TlsSupport.PinnedClient()).WaitAsync(TestSupport.Bound));
        Assert.Equal(ProtocolErrorCode.TlsHandshakeFailed, error.Code);
        Assert.Contains("asked for a client certificate", error.Message, StringComparison.Ordinal);
        Assert.Contains("this client presents none", error.Message, StringComparison.Ordinal);
        var server = await decode.ExpectClosedWith(ProtocolErrorCode.TlsHandshakeFailed);
        Assert.Contains("presented no certificate", server.Detail, StringComparison.Ordinal);
        await AssertWorkerHoldsNothing(decode);

        await AssertStillServes(decode, TlsSupport.PinnedClient(tls => tls.ClientCertificate = clientCertificate));
        await decode.AssertIdleAndLeakFree();
    }

    [Fact]
    public async Task The_callback_decides_when_set()
    {
        await using var decode = new DecodeSide(unix: false, options: TlsSupport.Worker());
        string? seen = null;

        var error = await ConnectFails(decode, TlsSupport.Client(tls => tls.RemoteCertificateValidation = (_, certificate, _, _) =>
        {
            seen = certificate?.Subject;
            return false;
        }), ProtocolErrorCode.TlsHandshakeFailed);

        Assert.Equal($"CN={TlsSupport.WorkerHost}", seen);
        Assert.Contains("callback refused", error.Message, StringComparison.Ordinal);
        await ExpectWorkerSawTheRefusal(decode);
        await AssertStillServes(decode, TlsSupport.Client(tls => tls.RemoteCertificateValidation = (_, c, _, _) => c?.Subject == seen));
        await decode.AssertIdleAndLeakFree();
    }

    [Fact]
    public async Task A_client_that_never_starts_tls_is_closed_at_the_handshake_timeout()
    {
        var clock = new ManualTimeProvider();
        var options = TlsSupport.Worker();
        options.TimeProvider = clock;
        await using var decode = new DecodeSide(unix: false, options: options);
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await silent.ConnectAsync(decode.EndPoint);
        await TestSupport.WaitUntil(() => clock.PendingTimeoutCount == 1, () => "The worker armed no handshake timeout.");

        clock.Advance(options.HandshakeTimeout);

        await decode.ExpectClosedWith(ProtocolErrorCode.HandshakeTimeout);
        await AssertWorkerHoldsNothing(decode);
    }

    [Fact]
    public async Task A_worker_that_never_answers_the_tls_hello_times_out_the_client()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var clock = new ManualTimeProvider();
        var options = TlsSupport.PinnedClient();
        options.TimeProvider = clock;
        var connecting = RemoteDecodeEngine.ConnectAsync(listener.LocalEndPoint!, options);
        using var accepted = await listener.AcceptAsync();
        // The client sends its TLS hello only after arming the handshake timeout: once a byte arrives, the timeout is armed.
        var first = new byte[1];
        Assert.Equal(1, await accepted.ReceiveAsync(first, SocketFlags.None));
        Assert.Equal(0x16, first[0]); // a TLS handshake record

        clock.Advance(options.HandshakeTimeout);

        var error = await Assert.ThrowsAsync<DisaggProtocolException>(() => connecting.WaitAsync(TestSupport.Bound));
        Assert.Equal(ProtocolErrorCode.HandshakeTimeout, error.Code);
        Assert.Contains(listener.LocalEndPoint!.ToString()!, error.Message, StringComparison.Ordinal);
    }
}
