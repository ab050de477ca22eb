using System.Buffers;
using Disagg.Kv;

namespace Disagg.Benchmarks.Transport;

/// <summary>A KV block store in host arrays, one per layer: what the socket transport reads from and writes into, with no
/// device copy in the way, so a benchmark over it measures the transport alone.</summary>
internal sealed class HostKvStore(KvCacheLayout layout, int blocks) : IKvBlockStore
{
    private readonly byte[][] _layers = [.. Enumerable.Range(0, layout.NumLayers).Select(_ => new byte[blocks * layout.BytesPerBlockPerLayer])];

    public KvCacheLayout Layout => layout;

    public int BlockCount => blocks;

    public void ReadLayer(int layer, ReadOnlySpan<int> blockIds, Span<byte> destination)
    {
        int perBlock = checked((int)layout.BytesPerBlockPerLayer);
        for (int i = 0; i < blockIds.Length; i++) _layers[layer].AsSpan(blockIds[i] * perBlock, perBlock).CopyTo(destination[(i * perBlock)..]);
    }

    public void WriteLayer(int layer, ReadOnlySpan<int> blockIds, ReadOnlySpan<byte> source)
    {
        int perBlock = checked((int)layout.BytesPerBlockPerLayer);
        for (int i = 0; i < blockIds.Length; i++) source.Slice(i * perBlock, perBlock).CopyTo(_layers[layer].AsSpan(blockIds[i] * perBlock, perBlock));
    }

    /// <summary>Block by block straight from the worker's receive segments, as a store that copies anyway should.</summary>
    public void WriteLayer(int layer, ReadOnlySpan<int> blockIds, in ReadOnlySequence<byte> source)
    {
        int perBlock = checked((int)layout.BytesPerBlockPerLayer);
        if (source.Length != (long)blockIds.Length * perBlock) throw new ArgumentException("Wrong size.", nameof(source));
        var reader = new SequenceReader<byte>(source);
        for (int i = 0; i < blockIds.Length; i++)
        {
            reader.TryCopyTo(_layers[layer].AsSpan(blockIds[i] * perBlock, perBlock));
            reader.Advance(perBlock);
        }
    }
}
