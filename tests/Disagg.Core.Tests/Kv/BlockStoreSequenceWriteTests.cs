using Disagg.Kv;
using Disagg.Tests.TestModel;
using FsCheck.Xunit;

namespace Disagg.Tests.Kv;

/// <summary><see cref="IKvBlockStore"/>'s write from segments (its default: joined, then the span write).</summary>
public class BlockStoreSequenceWriteTests
{
    private static readonly KvCacheLayout TwoLayers = new(2, 1, 4, 2, KvDataType.Float32); // 64 bytes per block and layer
    private static readonly int PerBlock = (int)TwoLayers.BytesPerBlockPerLayer;

    [Property(MaxTest = 100)]
    public void A_write_from_segments_stores_what_the_contiguous_write_stores(int seed, int[] cuts)
    {
        var random = new Random(seed);
        int[] ids = [.. Enumerable.Range(0, 6).OrderBy(_ => random.Next()).Take(1 + random.Next(5))];
        var bytes = new byte[ids.Length * PerBlock];
        random.NextBytes(bytes);
        IKvBlockStore contiguous = new SpanOnlyStore(), segmented = new SpanOnlyStore();

        contiguous.WriteLayer(1, ids, bytes);
        segmented.WriteLayer(1, ids, SegmentedSequence.Of(bytes, (cuts ?? []).Select(c => Math.Abs(c % (bytes.Length + 1)))));

        var (expected, actual) = (new byte[6 * PerBlock], new byte[6 * PerBlock]);
        contiguous.ReadLayer(1, [0, 1, 2, 3, 4, 5], expected);
        segmented.ReadLayer(1, [0, 1, 2, 3, 4, 5], actual);
        Assert.Equal(expected, actual);
        Assert.Equal(bytes.AsSpan(0, PerBlock).ToArray(),
            actual.AsSpan(ids[0] * PerBlock, PerBlock).ToArray());
    }

    /// <summary>A store that implements only the span methods, so the sequence write is the interface's own.</summary>
    private sealed class SpanOnlyStore : IKvBlockStore
    {
        private readonly byte[][] _layers = [new byte[6 * PerBlock], new byte[6 * PerBlock]];
        private static int Bytes => PerBlock;

        public KvCacheLayout Layout => TwoLayers;
        public int BlockCount => 6;

        public void ReadLayer(int layer, ReadOnlySpan<int> blockIds, Span<byte> destination)
        {
            for (int i = 0; i < blockIds.Length; i++) _layers[layer].AsSpan(blockIds[i] * Bytes, Bytes).CopyTo(destination[(i * Bytes)..]);
        }

        public void WriteLayer(int layer, ReadOnlySpan<int> blockIds, ReadOnlySpan<byte> source)
        {
            Assert.Equal(blockIds.Length * Bytes, source.Length);
            for (int i = 0; i < blockIds.Length; i++) source.Slice(i * Bytes, Bytes).CopyTo(_layers[layer].AsSpan(blockIds[i] * Bytes));
        }
    }
}
