using Disagg.Kv;

namespace Disagg.Tests.TestModel;

/// <summary>A host-staged transport between two in-process block stores, layer by layer, copying only the blocks the decode side lacks.</summary>
internal sealed class StagedKvTransport(IKvBlockStore source, IKvBlockStore destination) : IKvTransport
{
    public string Name => "test-staged";

    public int BlocksMoved { get; private set; }

    public Func<int, CancellationToken, ValueTask>? BeforeLayer { get; set; }

    public async ValueTask<KvTransferResult> TransferAsync(KvHandle sourceKv, KvReservation target, CancellationToken cancellationToken = default)
    {
        source.Layout.EnsureCompatible(destination.Layout);
        var start = System.Diagnostics.Stopwatch.GetTimestamp();
        int first = target.FirstBlockToFill, used = sourceKv.UsedBlockCount;
        var from = sourceKv.BlockIds[first..used];
        var to = target.Destination.BlockIds[first..used];
        var buffer = new byte[from.Length * source.Layout.BytesPerBlockPerLayer];
        for (int layer = 0; layer < source.Layout.NumLayers; layer++)
        {
            if (BeforeLayer is { } hook) await hook(layer, cancellationToken);
            cancellationToken.ThrowIfCancellationRequested();
            source.ReadLayer(layer, from.Span, buffer);
            destination.WriteLayer(layer, to.Span, buffer);
        }
        BlocksMoved += from.Length;
        return new KvTransferResult(from.Length, buffer.LongLength * source.Layout.NumLayers,
            System.Diagnostics.Stopwatch.GetElapsedTime(start));
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
