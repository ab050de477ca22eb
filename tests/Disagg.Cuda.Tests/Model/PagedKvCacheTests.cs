using Disagg.Cuda.Model;
using Disagg.Cuda.Runtime;
using Disagg.Kv;
using FsCheck.Xunit;
using TorchSharp;

namespace Disagg.Cuda.Tests.Model;

/// <summary>The KV pool's byte access and block copies (CPU here; the same code runs device to device on CUDA).</summary>
public class PagedKvCacheTests
{
    private static readonly KvCacheLayout Layout = new(3, 2, 4, 4, KvDataType.Float32);

    public PagedKvCacheTests() => TorchRuntime.Initialize();

    /// <summary>Random blocks copied with the all-layers copy, the per-layer copy and through host bytes all agree with a naive byte model.</summary>
    [Property(MaxTest = 60)]
    public void Block_copies_move_exactly_the_named_blocks(int seed)
    {
        var random = new Random(seed);
        using var source = new PagedKvCache(Layout, 12, torch.CPU);
        using var bulk = new PagedKvCache(Layout, 12, torch.CPU);
        using var layered = new PagedKvCache(Layout, 12, torch.CPU);
        int perLayer = (int)Layout.BytesPerBlockPerLayer;
        var all = Enumerable.Range(0, 12).ToArray();
        var model = new byte[Layout.NumLayers][];
        for (int l = 0; l < Layout.NumLayers; l++)
        {
            var bytes = new byte[12 * perLayer];
            for (int i = 0; i < bytes.Length; i += 4) BitConverter.TryWriteBytes(bytes.AsSpan(i), (float)random.Next(1000));
            source.WriteLayer(l, all, bytes);
            model[l] = bytes;
        }

        int n = random.Next(0, 8);
        int[] from = [.. all.OrderBy(_ => random.Next()).Take(n)];
        int[] to = [.. all.OrderBy(_ => random.Next()).Take(n)];
        source.CopyBlocksTo(bulk, from, to);
        for (int l = 0; l < Layout.NumLayers; l++) source.CopyLayerTo(layered, l, from, to);

        for (int l = 0; l < Layout.NumLayers; l++)
        {
            var expected = new byte[12 * perLayer];
            for (int i = 0; i < n; i++) model[l].AsSpan(from[i] * perLayer, perLayer).CopyTo(expected.AsSpan(to[i] * perLayer));
            var actualBulk = new byte[12 * perLayer];
            var actualLayered = new byte[12 * perLayer];
            bulk.ReadLayer(l, all, actualBulk);
            layered.ReadLayer(l, all, actualLayered);
            Assert.Equal(expected, actualBulk);
            Assert.Equal(expected, actualLayered);
        }
    }

    /// <summary>A layer written from bytes split across segments (a socket frame read in place) holds what the span write stores.</summary>
    [Property(MaxTest = 60)]
    public void A_layer_written_from_segments_equals_the_span_write(int seed, int[] cuts)
    {
        var random = new Random(seed);
        using var viaSpan = new PagedKvCache(Layout, 8, torch.CPU);
        using var viaSegments = new PagedKvCache(Layout, 8, torch.CPU);
        int[] ids = [.. Enumerable.Range(0, 8).OrderBy(_ => random.Next()).Take(1 + random.Next(8))];
        var bytes = new byte[ids.Length * Layout.BytesPerBlockPerLayer];
        for (int i = 0; i < bytes.Length; i += 4) BitConverter.TryWriteBytes(bytes.AsSpan(i), (float)random.Next(1000));

        viaSpan.WriteLayer(2, ids, bytes);
        viaSegments.WriteLayer(2, ids, Disagg.Tests.TestModel.SegmentedSequence.Of(bytes, (cuts ?? []).Select(c => Math.Abs(c % (bytes.Length + 1)))));

        var all = Enumerable.Range(0, 8).ToArray();
        var (expected, actual) = (new byte[8 * Layout.BytesPerBlockPerLayer], new byte[8 * Layout.BytesPerBlockPerLayer]);
        viaSpan.ReadLayer(2, all, expected);
        viaSegments.ReadLayer(2, all, actual);
        Assert.Equal(expected, actual);
        var back = new byte[bytes.Length];
        viaSegments.ReadLayer(2, ids, back);
        Assert.Equal(bytes, back);
    }

    [Fact]
    public void Mismatched_copies_are_refused()
    {
        using var a = new PagedKvCache(Layout, 4, torch.CPU);
        using var b = new PagedKvCache(new KvCacheLayout(3, 2, 4, 8, KvDataType.Float32), 4, torch.CPU);
        Assert.Throws<KvLayoutMismatchException>(() => a.CopyBlocksTo(b, [0], [0]));
        Assert.Throws<ArgumentException>(() => a.CopyBlocksTo(a, [0, 1], [0]));
        Assert.Throws<ArgumentOutOfRangeException>(() => a.CopyBlocksTo(a, [9], [0]));
        Assert.False(a.CanCopyTo(b));
    }
}
