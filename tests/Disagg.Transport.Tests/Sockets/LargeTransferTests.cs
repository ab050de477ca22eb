using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Disagg.Kv;
using Disagg.Transport.Sockets;
using Xunit.Abstractions;

namespace Disagg.Transport.Tests.Sockets;

/// <summary>KV bytes in plain arrays, one per layer, in the canonical block order.</summary>
internal sealed class ArrayKvStore : IKvBlockStore
{
    private readonly byte[][] _layers;

    public ArrayKvStore(KvCacheLayout layout, int blocks)
    {
        Layout = layout;
        BlockCount = blocks;
        _layers = Enumerable.Range(0, layout.NumLayers).Select(_ => new byte[blocks * layout.BytesPerBlockPerLayer]).ToArray();
    }

    public KvCacheLayout Layout { get; }
    public int BlockCount { get; }
    private int Bytes => (int)Layout.BytesPerBlockPerLayer;

    public Span<byte> Block(int layer, int block) => _layers[layer].AsSpan(block * Bytes, Bytes);

    public void ReadLayer(int layer, ReadOnlySpan<int> blockIds, Span<byte> destination)
    {
        if (destination.Length != blockIds.Length * Bytes) throw new ArgumentException("Wrong size.", nameof(destination));
        for (int i = 0; i < blockIds.Length; i++) Block(layer, blockIds[i]).CopyTo(destination.Slice(i * Bytes, Bytes));
    }

    public void WriteLayer(int layer, ReadOnlySpan<int> blockIds, ReadOnlySpan<byte> source)
    {
        if (source.Length != blockIds.Length * Bytes) throw new ArgumentException("Wrong size.", nameof(source));
        for (int i = 0; i < blockIds.Length; i++) source.Slice(i * Bytes, Bytes).CopyTo(Block(layer, blockIds[i]));
    }
}

/// <summary>A decode engine that only reserves (from a free list, reversed so remote ids differ from local ones).</summary>
internal sealed class ReserveOnlyEngine(KvCacheLayout layout, int blocks) : IDecodeEngine
{
    private readonly ConcurrentStack<int> _free = new(Enumerable.Range(0, blocks));

    public KvCacheLayout KvLayout => layout;
    public int MaxContextLength => 1 << 20;
    public int FreeCount => _free.Count;
    public EngineLoad GetLoad() => new(0, 0, _free.Count, blocks);

    public ValueTask<KvReservation> ReserveAsync(InferenceRequest request, CancellationToken cancellationToken = default)
    {
        int needed = layout.BlocksForTokens(request.PromptTokens.Length);
        var ids = new int[needed];
        if (_free.TryPopRange(ids) != needed) throw new InvalidOperationException("Pool too small for the test.");
        return ValueTask.FromResult(new KvReservation(request, new KvHandle(request.Id, layout, ids, request.PromptTokens.Length), 0,
            () => _free.PushRange(ids)));
    }

    public async IAsyncEnumerable<GeneratedToken> DecodeAsync(KvReservation reservation, GeneratedToken firstToken,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await Task.CompletedTask;
        if (!reservation.TryClaim()) throw new InvalidOperationException("Not open.");
        yield return firstToken with { Finish = FinishReason.MaxTokens };
    }
}

public class LargeTransferTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_64_MiB_transfer_arrives_intact_through_bounded_buffers(bool unix)
    {
        // 4 layers x 8 KV heads x 128 dims x 16 tokens x fp16 = 64 KiB per block and layer; 256 blocks = 64 MiB.
        var layout = new KvCacheLayout(4, 8, 128, 16, KvDataType.Float16);
        const int blocks = 256;
        var source = new ArrayKvStore(layout, blocks);
        var destination = new ArrayKvStore(layout, blocks);
        var engine = new ReserveOnlyEngine(layout, blocks);
        var options = TestSupport.Options();
        options.SendBufferBytes = 256 << 10; // a small send window: the sender must wait for the socket, not buffer
        await using var server = new DecodeWorkerServer(engine, destination, options);
        server.Start(TestSupport.NewEndPoint(unix));
        await using var remote = await RemoteDecodeEngine.ConnectAsync(server.LocalEndPoint!, options);
        var transport = remote.CreateTransport(source);

        var localIds = Enumerable.Range(0, blocks).ToArray();
        for (int layer = 0; layer < layout.NumLayers; layer++)
            foreach (int b in localIds) new Random(layer * 1000 + b).NextBytes(source.Block(layer, b));
        var request = new InferenceRequest(new int[blocks * layout.BlockSize]);
        using var reservation = await remote.ReserveAsync(request);
        var sourceKv = new KvHandle(request.Id, layout, localIds, request.PromptTokens.Length);

        var result = await transport.TransferAsync(sourceKv, reservation);

        Assert.Equal(blocks, result.Blocks);
        Assert.Equal(64L << 20, result.Bytes);
        var remoteIds = reservation.Destination.BlockIds.ToArray();
        Assert.NotEqual(localIds, remoteIds);
        for (int layer = 0; layer < layout.NumLayers; layer++)
            for (int i = 0; i < blocks; i++)
                Assert.True(source.Block(layer, localIds[i]).SequenceEqual(destination.Block(layer, remoteIds[i])), $"Layer {layer}, block {i} differs.");
        output.WriteLine($"{(unix ? "UDS" : "TCP")} loopback: {result.Bytes / (1 << 20)} MiB in {result.Elapsed.TotalMilliseconds:0} ms = {result.BytesPerSecond / (1 << 20):0} MiB/s");

        var tokens = await TestSupport.Collect(remote.DecodeAsync(reservation, new GeneratedToken(5, 0, 0)));
        Assert.Equal([5], tokens);
        await TestSupport.WaitUntil(() => server.OpenStreamCount == 0, () => "The stream stayed open.");
    }

    /// <summary>
    /// Both ends reuse their connection's buffers: the number of buffers a connection ever allocates is bounded by what its
    /// pipes hold at once (here well under 64 of the 64 KiB minimum), not by the bytes sent. Four 16 MiB transfers move 1,024
    /// such segments' worth; over TLS a segment per 16 KiB record would be 4,096.
    /// </summary>
    [Theory]
    [InlineData("unix")]
    [InlineData("tcp")]
    [InlineData("tcp+tls")]
    public async Task Repeated_transfers_reuse_the_connections_buffers(string link)
    {
        var layout = new KvCacheLayout(4, 8, 128, 16, KvDataType.Float16); // 64 KiB per block and layer
        const int blocks = 64; // 16 MiB per transfer
        var source = new ArrayKvStore(layout, blocks);
        var destination = new ArrayKvStore(layout, blocks);
        var engine = new ReserveOnlyEngine(layout, blocks);
        var (serverOptions, clientOptions) = link == "tcp+tls"
            ? (Tls.TlsSupport.Worker(), Tls.TlsSupport.PinnedClient())
            : (TestSupport.Options(), TestSupport.Options());
        foreach (var options in new[] { serverOptions, clientOptions })
        {
            options.MaxFramePayload = 256 << 10; // a receive pipe of at most ~576 KiB
            options.BlockFrameTargetBytes = 128 << 10;
            options.SendBufferBytes = 256 << 10;
        }
        await using var server = new DecodeWorkerServer(engine, destination, serverOptions);
        server.Start(TestSupport.NewEndPoint(link == "unix"));
        await using var remote = await RemoteDecodeEngine.ConnectAsync(server.LocalEndPoint!, clientOptions);
        var transport = remote.CreateTransport(source);
        var localIds = Enumerable.Range(0, blocks).ToArray();
        for (int layer = 0; layer < layout.NumLayers; layer++)
            foreach (int b in localIds) new Random(layer * 1000 + b).NextBytes(source.Block(layer, b));

        for (int round = 0; round < 4; round++)
        {
            var request = new InferenceRequest(new int[blocks * layout.BlockSize]);
            using var reservation = await remote.ReserveAsync(request);
            var result = await transport.TransferAsync(new KvHandle(request.Id, layout, localIds, request.PromptTokens.Length), reservation);
            Assert.Equal(16L << 20, result.Bytes);
            var remoteIds = reservation.Destination.BlockIds.ToArray();
            for (int i = 0; i < blocks; i += 7)
                Assert.True(source.Block(layout.NumLayers - 1, localIds[i]).SequenceEqual(destination.Block(layout.NumLayers - 1, remoteIds[i])));
        }

        int sent = remote.Connection.BufferAllocations, received = server.BufferAllocations;
        output.WriteLine($"{link}: the client's connection allocated {sent} buffers, the worker's {received}");
        Assert.InRange(sent, 1, 64);
        Assert.InRange(received, 1, 64);
    }
}
