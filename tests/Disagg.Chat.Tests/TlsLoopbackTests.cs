using System.Net;
using Disagg.Coordination;
using Disagg.Scheduling;
using Disagg.Tests.TestModel;
using Disagg.Transport.Sockets;

namespace Disagg.Chat.Tests;

/// <summary>
/// What the chat and the worker it starts do with --tls, in one process over loopback TCP: the worker presents the handed-over
/// throwaway certificate (read back from its file as the worker reads it), the chat pins it, and requests run over TLS;
/// a chat that does not pin it, or expects another name, is refused.
/// </summary>
public sealed class TlsLoopbackTests : IAsyncLifetime
{
    private static readonly byte[] Secret = "a shared secret of the test"u8.ToArray();
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20); // an upper bound on waits, never a timing assumption
    private static readonly string[] ChatTlsArguments = ["--mode", "disaggregated", "--transport", "tcp", "--tls"];

    private readonly WorkerCertificateHandover _handover = WorkerCertificateHandover.Prepare(ChatOptions.Parse(ChatTlsArguments).Tls, "127.0.0.1");
    private readonly ToyExecutor _decodeExecutor = new(blocks: 64, endOfSequence: 3);
    private LlmEngine? _decode;
    private DecodeWorkerServer? _server;

    private EndPoint WorkerEndPoint => _server!.LocalEndPoint!;

    public Task InitializeAsync()
    {
        // The worker's command line as the chat writes it, the password as it would come from the environment.
        var worker = ChatOptions.Parse(["--serve-decode", "--endpoint", "tcp:127.0.0.1:1", .. _handover.WorkerArguments, "--tls-password", _handover.Password!]);
        _decode = NewEngine(_decodeExecutor, "decode");
        _server = new DecodeWorkerServer(_decode, _decodeExecutor.BlockStore, new SocketTransportOptions { SharedSecret = Secret, Tls = ChatTls.ForWorker(worker.Tls) });
        _server.Start(new IPEndPoint(IPAddress.Loopback, 0));
        _handover.Dispose(); // as the chat does once the worker is up: the worker holds the certificate, the file is gone
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
        if (_decode is not null) await _decode.DisposeAsync();
    }

    [Fact]
    public async Task The_chat_pins_the_handed_over_certificate_and_requests_run_over_tls()
    {
        await using var remote = await ConnectAsync(ChatOptions.Parse(ChatTlsArguments), _handover.Thumbprint);
        await using var prefill = NewEngine(new ToyExecutor(blocks: 64, endOfSequence: 3), "prefill");
        var transport = remote.CreateTransport(prefill.BlockStore!);
        var engine = new DisaggregatedEngine([prefill], [remote], (_, _) => transport);
        var request = new InferenceRequest(new[] { 5, 9, 2, 11, 4, 8, 6 }, SamplingParameters.Greedy with { MaxTokens = 12 });

        var tokens = await TestWorkloads.Collect(engine.GenerateAsync(request));

        Assert.Equal(ToyModel.ReferenceGenerate(request, _decodeExecutor.KvLayout.NumLayers, [3], 4096), tokens);
        Assert.True(_decodeExecutor.Steps > 0, "The decode worker ran no step: the request did not cross.");
        await WaitUntil(() => _decode!.Allocator.FreeCount == _decode.Allocator.Capacity, "The worker still holds blocks.");
    }

    [Fact]
    public async Task A_chat_that_does_not_pin_the_certificate_is_refused()
    {
        var error = await Assert.ThrowsAsync<DisaggProtocolException>(() => ConnectAsync(ChatOptions.Parse(ChatTlsArguments), handedOverThumbprint: null));

        Assert.Equal(ProtocolErrorCode.TlsHandshakeFailed, error.Code);
        Assert.Contains("is not trusted", error.Message, StringComparison.Ordinal);
        Assert.NotNull(ChatTls.Hint(error));
    }

    [Fact]
    public async Task A_chat_expecting_another_host_name_is_refused_though_the_pin_matches()
    {
        var options = ChatOptions.Parse([.. ChatTlsArguments, "--tls-host", "elsewhere.test", "--tls-pin", _handover.Thumbprint]);

        var error = await Assert.ThrowsAsync<DisaggProtocolException>(() => ConnectAsync(options, handedOverThumbprint: null));

        Assert.Equal(ProtocolErrorCode.TlsHandshakeFailed, error.Code);
        Assert.Contains("not issued for the host name 'elsewhere.test'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_chat_without_tls_is_told_the_worker_requires_it()
    {
        var error = await Assert.ThrowsAsync<DisaggProtocolException>(() => ConnectAsync(ChatOptions.Parse(["--mode", "disaggregated", "--transport", "tcp"]), null));

        Assert.Equal(ProtocolErrorCode.TlsRequired, error.Code);
        Assert.Contains("add --tls", ChatTls.Hint(error), StringComparison.Ordinal);
    }

    private Task<RemoteDecodeEngine> ConnectAsync(ChatOptions chat, string? handedOverThumbprint) =>
        RemoteDecodeEngine.ConnectAsync(WorkerEndPoint, new SocketTransportOptions { SharedSecret = Secret, Tls = ChatTls.ForClient(chat.Tls, handedOverThumbprint) });

    private static LlmEngine NewEngine(ToyExecutor executor, string name) => new(executor, new LlmEngineOptions
    {
        Name = name,
        Scheduler = new SchedulerOptions { MaxBatchedTokens = 24, MaxRunningSequences = 8, EnablePrefixCaching = false },
    });

    private static async Task WaitUntil(Func<bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail(failure);
            await Task.Delay(1);
        }
    }
}
