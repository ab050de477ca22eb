using System.Net;
using System.Security.Cryptography.X509Certificates;
using Disagg.Tests.TestModel;
using Disagg.Transport.Sockets;
using Disagg.Transport.Tests.Sockets;

namespace Disagg.Transport.Tests.Tls;

/// <summary>
/// The decode engine in a real child process serving TLS over loopback TCP, its certificate loaded from a PKCS#12 file as
/// a deployment would: a client that pins it gets the colocated tokens; one that pins another certificate, or speaks
/// plaintext, is refused with a typed error; the worker is left holding nothing.
/// </summary>
public sealed class TwoProcessTlsTests : IAsyncLifetime
{
    private const int WorkerBlocks = 64;
    private WorkerProcess? _worker;
    private IPEndPoint _endPoint = null!;

    public async Task InitializeAsync()
    {
        const string password = "two-process test";
        _worker = await WorkerProcess.StartAsync(WorkerBlocks, async folder =>
        {
            string certificate = Path.Combine(folder, "worker.p12");
            await File.WriteAllBytesAsync(certificate, TlsSupport.WorkerCertificate.Export(X509ContentType.Pkcs12, password));
            return ("tcp:127.0.0.1:0", new Dictionary<string, string> { ["DISAGG_WORKER_TLS_CERT"] = certificate, ["DISAGG_WORKER_TLS_PASSWORD"] = password });
        });
        _endPoint = new IPEndPoint(IPAddress.Loopback, int.Parse(_worker.ReadyLine["READY ".Length..], System.Globalization.CultureInfo.InvariantCulture));
    }

    public async Task DisposeAsync()
    {
        if (_worker is not null) await _worker.DisposeAsync();
    }

    [Fact]
    public async Task A_pinned_client_gets_the_colocated_tokens_from_a_TLS_worker_process()
    {
        await using var prefill = new PrefillSide();
        var remote = await RemoteDecodeEngine.ConnectAsync(_endPoint, TlsSupport.PinnedClient());
        var transport = remote.CreateTransport(prefill.Executor.BlockStore);
        var requests = new[]
        {
            new InferenceRequest(Enumerable.Range(5, 19).ToArray(), SamplingParameters.Greedy with { MaxTokens = 14 }),
            new InferenceRequest(new[] { 2, 9, 4 }, new SamplingParameters { Temperature = 0.9f, TopK = 8, Seed = 5, MaxTokens = 18 }),
        };
        var outputs = await Task.WhenAll(requests.Select(async r => (await prefill.GenerateAsync(remote, transport, r)).Tokens));
        for (int i = 0; i < requests.Length; i++)
            Assert.Equal(ToyModel.ReferenceGenerate(requests[i], TestSupport.Layers, [3], 4096), outputs[i]);
        await remote.DisposeAsync();

        await _worker!.AssertHoldsNothing();
        await TestSupport.AssertAllBlocksReturn(prefill.Engine);
    }

    [Fact]
    public async Task A_client_pinning_another_certificate_or_speaking_plaintext_is_refused_with_a_typed_error()
    {
        using var other = TestCertificates.SelfSigned(TlsSupport.WorkerHost);
        var wrongPin = TlsSupport.Client(tls => tls.PinnedThumbprints = [TestCertificates.Sha256(other)]);
        var pinned = await Assert.ThrowsAsync<DisaggProtocolException>(
            () => RemoteDecodeEngine.ConnectAsync(_endPoint, wrongPin).WaitAsync(TestSupport.Bound));
        Assert.Equal(ProtocolErrorCode.TlsHandshakeFailed, pinned.Code);

        var plaintext = await Assert.ThrowsAsync<DisaggProtocolException>(
            () => RemoteDecodeEngine.ConnectAsync(_endPoint, TestSupport.Options()).WaitAsync(TestSupport.Bound));
        Assert.Equal(ProtocolErrorCode.TlsRequired, plaintext.Code);
        Assert.True(plaintext.IsRemote); // the worker said so, rather than the connection just closing

        await _worker!.AssertHoldsNothing(); // and it still serves
        await using var remote = await RemoteDecodeEngine.ConnectAsync(_endPoint, TlsSupport.PinnedClient());
        Assert.Equal(WorkerBlocks, remote.GetLoad().TotalKvBlocks);
    }
}
