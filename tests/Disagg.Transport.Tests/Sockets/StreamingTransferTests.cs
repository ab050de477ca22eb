using Disagg.Kv;
using Disagg.Transport.Sockets;

namespace Disagg.Transport.Tests.Sockets;

/// <summary>
/// The socket transport as a streaming transport: a prefill chunk's full blocks cross while later chunks compute (before
/// CompleteAsync), a block the chunk left partly written waits, and CompleteAsync sends the rest and is acknowledged.
/// </summary>
public class StreamingTransferTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_chunk_s_full_blocks_cross_before_the_prefill_completes(bool unix)
    {
        var layout = new KvCacheLayout(3, 2, 8, 4, KvDataType.Float32);
        const int Blocks = 16, PromptTokens = Blocks * 4 - 2; // the last block partly used
        var source = new ArrayKvStore(layout, Blocks);
        var destination = new ArrayKvStore(layout, Blocks);
        for (int layer = 0; layer < layout.NumLayers; layer++)
            for (int b = 0; b < Blocks; b++) new Random(layer * 100 + b).NextBytes(source.Block(layer, b));
        var options = TestSupport.Options();
        await using var server = new DecodeWorkerServer(new ReserveOnlyEngine(layout, Blocks), destination, options);
        server.Start(TestSupport.NewEndPoint(unix));
        await using var remote = await RemoteDecodeEngine.ConnectAsync(server.LocalEndPoint!, options);
        var transport = (IStreamingKvTransport)remote.CreateTransport(source);
        var request = new InferenceRequest(new int[PromptTokens]);
        using var reservation = await remote.ReserveAsync(request);
        var localIds = Enumerable.Range(0, Blocks).ToArray();
        var remoteIds = reservation.Destination.BlockIds.ToArray();
        var kv = new KvHandle(request.Id, layout, localIds, PromptTokens);
        bool Arrived(int block) => Enumerable.Range(0, layout.NumLayers)
            .All(l => source.Block(l, localIds[block]).SequenceEqual(destination.Block(l, remoteIds[block])));

        using var stream = transport.BeginTransfer(reservation);
        for (int layer = 0; layer < layout.NumLayers; layer++) stream.OnLayerWritten(kv, layer, 0, 21); // a chunk of 21 tokens

        // Blocks 0-4 are complete after 21 tokens and cross now; block 5 holds only position 20 so far and must wait.
        await TestSupport.WaitUntil(() => Enumerable.Range(0, 5).All(Arrived), () => "The chunk's full blocks did not cross during the prefill.");
        Assert.False(Arrived(5));

        var result = await stream.CompleteAsync(kv);

        Assert.Equal(Blocks, result.Blocks);
        Assert.Equal(Blocks * layout.BytesPerBlock, result.Bytes); // every block crossed exactly once
        Assert.All(Enumerable.Range(0, Blocks), b => Assert.True(Arrived(b), $"Block {b} differs."));
        var tokens = await TestSupport.Collect(remote.DecodeAsync(reservation, new GeneratedToken(5, 0, 0)));
        Assert.Equal([5], tokens);
        await TestSupport.WaitUntil(() => server.OpenStreamCount == 0, () => "The stream stayed open.");
    }
}
