using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using BenchmarkDotNet.Attributes;
using Disagg.Kv;
using Disagg.Transport.Sockets;

namespace Disagg.Benchmarks.Transport;

/// <summary>
/// One prompt's KV across the socket transport, host memory on both sides (the cross-process, host-staged path without
/// its device copies): a decode worker and its client in one process, over a Unix domain socket, loopback TCP, or
/// loopback TCP with TLS 1.3 (a pinned self-signed certificate). Each invocation reserves the blocks, transfers every
/// layer and releases them. GB/s = the layout's bytes (Qwen2.5-0.5B: 24.0 MiB for 2,048 tokens; Llama-3-8B: 256 MiB)
/// divided by the mean.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 2, iterationCount: 8)]
public class SocketKvTransferBenchmarks
{
    private const int PromptTokens = 2048, BlockSize = 16;
    private static readonly byte[] Secret = RandomNumberGenerator.GetBytes(32);

    private LlmEngine _engine = null!;
    private DecodeWorkerServer _server = null!;
    private RemoteDecodeEngine _remote = null!;
    private SocketKvTransport _transport = null!;
    private KvCacheLayout _layout = null!;
    private int[] _blockIds = null!;
    private int[] _prompt = null!;
    private string? _socketPath;

    /// <summary>The KV layout of a real model shape: layers x KV heads x head dim, bf16.</summary>
    [Params("qwen2.5-0.5b", "llama3-8b")]
    public string Shape { get; set; } = "qwen2.5-0.5b";

    /// <summary>unix, tcp or tcp+tls.</summary>
    [Params("unix", "tcp", "tcp+tls")]
    public string Link { get; set; } = "unix";

    [GlobalSetup]
    public async Task StartAsync()
    {
        var layout = Shape == "llama3-8b" ? new KvCacheLayout(32, 8, 128, BlockSize, KvDataType.BFloat16) : new KvCacheLayout(24, 2, 64, BlockSize, KvDataType.BFloat16);
        int blocks = PromptTokens / BlockSize;
        var executor = new KvOnlyExecutor(layout, 2 * blocks);
        _engine = new LlmEngine(executor, new LlmEngineOptions { Name = "decode" });
        var server = new SocketTransportOptions { SharedSecret = Secret };
        var client = new SocketTransportOptions { SharedSecret = Secret };
        if (Link == "tcp+tls")
        {
            var certificate = SelfSigned("decode.bench");
            server.Tls = new SocketTlsOptions { ServerCertificate = certificate };
            client.Tls = new SocketTlsOptions { TargetHost = "decode.bench", PinnedThumbprints = [Convert.ToHexString(certificate.GetCertHash(HashAlgorithmName.SHA256))] };
        }
        EndPoint endPoint = new IPEndPoint(IPAddress.Loopback, 0);
        if (Link == "unix")
        {
            _socketPath = Path.Combine(Path.GetTempPath(), $"disagg-bench-{Guid.NewGuid():N}.sock");
            endPoint = new UnixDomainSocketEndPoint(_socketPath);
        }
        _server = new DecodeWorkerServer(_engine, executor.BlockStore, server);
        _server.Start(endPoint);
        _remote = await RemoteDecodeEngine.ConnectAsync(_server.LocalEndPoint!, client);
        _transport = _remote.CreateTransport(new HostKvStore(layout, blocks));
        _prompt = [.. Enumerable.Range(0, PromptTokens).Select(i => 1 + i % 200)];
        _layout = layout;
        _blockIds = [.. Enumerable.Range(0, blocks)];
    }

    /// <summary>Reserve, transfer every layer of 2,048 tokens, release.</summary>
    [Benchmark]
    public async Task<long> Transfer()
    {
        var request = new InferenceRequest(_prompt, SamplingParameters.Greedy with { MaxTokens = 1 });
        using var reservation = await _remote.ReserveAsync(request);
        var result = await _transport.TransferAsync(new KvHandle(request.Id, _layout, _blockIds, PromptTokens), reservation);
        return result.Bytes;
    }

    [GlobalCleanup]
    public async Task StopAsync()
    {
        await _remote.DisposeAsync();
        await _server.DisposeAsync();
        await _engine.DisposeAsync();
        if (_socketPath is not null) File.Delete(_socketPath);
    }

    private static X509Certificate2 SelfSigned(string host)
    {
        var request = new CertificateRequest($"CN={host}", ECDsa.Create(ECCurve.NamedCurves.nistP256), HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(host);
        request.CertificateExtensions.Add(names.Build());
        using var ephemeral = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null); // a key the TLS stack can use on Linux
    }
}
