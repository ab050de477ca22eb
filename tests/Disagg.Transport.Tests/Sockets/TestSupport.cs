using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Disagg.Kv;
using Disagg.Scheduling;
using Disagg.Tests.TestModel;
using Disagg.Transport.Sockets;

namespace Disagg.Transport.Tests.Sockets;

internal static class TestSupport
{
    public const int Layers = 2;
    public static readonly byte[] Secret = Convert.FromHexString("00112233445566778899aabbccddeeff0123456789abcdef");
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(20); // an upper bound on waits, never a timing assumption

    public static SocketTransportOptions Options(byte[]? secret = null) => new() { SharedSecret = secret ?? Secret };

    public static LlmEngine NewEngine(ToyExecutor executor, bool prefixCaching, string name = "engine") =>
        new(executor, new LlmEngineOptions
        {
            Name = name,
            Scheduler = new SchedulerOptions { MaxBatchedTokens = 24, MaxRunningSequences = 8, EnablePrefixCaching = prefixCaching },
        });

    public static EndPoint NewEndPoint(bool unix) => unix
        ? new UnixDomainSocketEndPoint(Path.Combine(Path.GetTempPath(), $"disagg-{Guid.NewGuid():N}.sock"))
        : new IPEndPoint(IPAddress.Loopback, 0);

    public static Task<List<int>> Collect(IAsyncEnumerable<GeneratedToken> stream) => TestWorkloads.Collect(stream);

    public static int CachedBlocks(LlmEngine engine) => engine.PrefixCachedBlockCount;

    /// <summary>Waits (bounded) until the engine holds no sequence and every block is free or cached by its prefix cache.</summary>
    public static Task AssertAllBlocksReturn(LlmEngine engine) => WaitUntil(() =>
    {
        var load = engine.GetLoad();
        return load.RunningSequences == 0 && load.WaitingRequests == 0
            && engine.Allocator.FreeCount + CachedBlocks(engine) == engine.Allocator.Capacity;
    }, () => $"Blocks leaked on '{engine.Name}': {engine.Allocator.FreeCount} free + {CachedBlocks(engine)} cached of {engine.Allocator.Capacity}; load {engine.GetLoad()}.");

    /// <summary>Polls a condition that another thread makes true eventually (engine loops release blocks asynchronously).</summary>
    public static Task WaitUntil(Func<bool> condition, Func<string> failure) => WaitUntil(() => Task.FromResult(condition()), failure);

    /// <summary>Polls a condition that needs an answer from elsewhere (a worker process's stats), as the other overload does.</summary>
    public static async Task WaitUntil(Func<Task<bool>> condition, Func<string> failure)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail(failure());
            await Task.Delay(1);
        }
    }
}

/// <summary>A decode engine over the toy model behind a <see cref="DecodeWorkerServer"/>, with the server's connection outcomes recorded.</summary>
internal sealed class DecodeSide : IAsyncDisposable
{
    private readonly Channel<Exception?> _closed = Channel.CreateUnbounded<Exception?>();

    public DecodeSide(bool unix, bool prefixCaching = false, int blocks = 200, SocketTransportOptions? options = null)
    {
        Executor = new ToyExecutor(blocks: blocks, endOfSequence: 3);
        Engine = TestSupport.NewEngine(Executor, prefixCaching, "decode");
        Server = new DecodeWorkerServer(Engine, Executor.BlockStore, options ?? TestSupport.Options());
        Server.ConnectionClosed += (_, e) => _closed.Writer.TryWrite(e.Error);
        Server.Start(TestSupport.NewEndPoint(unix));
        EndPoint = Server.LocalEndPoint!;
    }

    public ToyExecutor Executor { get; }
    public LlmEngine Engine { get; }
    public DecodeWorkerServer Server { get; }
    public EndPoint EndPoint { get; }

    public Task<RemoteDecodeEngine> ConnectAsync(byte[]? secret = null) => RemoteDecodeEngine.ConnectAsync(EndPoint, TestSupport.Options(secret));

    /// <summary>The outcome of the next connection to close on the server (null: clean).</summary>
    public async Task<Exception?> NextClosedAsync() => await _closed.Reader.ReadAsync().AsTask().WaitAsync(TestSupport.Bound);

    /// <summary>The next connection failure the server recorded, which must be a protocol error with <paramref name="code"/>.</summary>
    public async Task<DisaggProtocolException> ExpectClosedWith(ProtocolErrorCode code)
    {
        var error = await NextClosedAsync();
        var protocol = Assert.IsType<DisaggProtocolException>(error);
        Assert.Equal(code, protocol.Code);
        return protocol;
    }

    public async Task AssertIdleAndLeakFree()
    {
        await TestSupport.WaitUntil(() => Server.OpenStreamCount == 0, () => $"{Server.OpenStreamCount} streams still open on the server.");
        await TestSupport.AssertAllBlocksReturn(Engine);
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        await Engine.DisposeAsync();
    }
}

/// <summary>A prefill engine over the toy model, plus a client of a decode side.</summary>
internal sealed class PrefillSide : IAsyncDisposable
{
    public PrefillSide(bool prefixCaching = false, int blocks = 200)
    {
        Executor = new ToyExecutor(blocks: blocks, endOfSequence: 3);
        Engine = TestSupport.NewEngine(Executor, prefixCaching, "prefill");
    }

    public ToyExecutor Executor { get; }
    public LlmEngine Engine { get; }

    /// <summary>Reserve remotely, prefill locally, transfer, decode remotely.</summary>
    public async Task<(List<int> Tokens, KvTransferResult Transfer, int CachedTokens)> GenerateAsync(
        RemoteDecodeEngine remote, IKvTransport transport, InferenceRequest request)
    {
        using var reservation = await remote.ReserveAsync(request);
        using var prefilled = await Engine.PrefillAsync(request);
        var transfer = await transport.TransferAsync(prefilled.Kv, reservation);
        var tokens = await TestSupport.Collect(remote.DecodeAsync(reservation, prefilled.FirstToken));
        return (tokens, transfer, reservation.CachedTokens);
    }

    public ValueTask DisposeAsync() => Engine.DisposeAsync();
}

/// <summary>Wraps a block store to run a hook before each layer is read (for cancellation mid-transfer).</summary>
internal sealed class HookedStore(IKvBlockStore inner) : IKvBlockStore
{
    public Action<int>? BeforeRead { get; set; }
    public KvCacheLayout Layout => inner.Layout;
    public int BlockCount => inner.BlockCount;

    public void ReadLayer(int layer, ReadOnlySpan<int> blockIds, Span<byte> destination)
    {
        BeforeRead?.Invoke(layer);
        inner.ReadLayer(layer, blockIds, destination);
    }

    public void WriteLayer(int layer, ReadOnlySpan<int> blockIds, ReadOnlySpan<byte> source) => inner.WriteLayer(layer, blockIds, source);
}
