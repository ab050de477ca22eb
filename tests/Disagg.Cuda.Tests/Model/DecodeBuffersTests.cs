using Disagg.Cuda.Model;
using Disagg.Cuda.Runtime;
using Disagg.Scheduling;
using TorchSharp;

namespace Disagg.Cuda.Tests.Model;

/// <summary>
/// The host side of the fused decode path, which runs only on CUDA: how a step's chunks are packed into the static input
/// buffer, and which batch sizes get a CUDA graph. (The kernels themselves are checked against the TorchSharp path on the
/// GPU by tests/Disagg.Cuda.DeviceCheck.)
/// </summary>
public sealed class DecodeBuffersTests
{
    public DecodeBuffersTests() => TorchRuntime.Initialize();

    [Theory]
    [InlineData(1, new[] { 1 })]
    [InlineData(6, new[] { 1, 2, 4, 6 })]
    [InlineData(8, new[] { 1, 2, 4, 8 })]
    [InlineData(20, new[] { 1, 2, 4, 8, 16, 20 })]
    [InlineData(64, new[] { 1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64 })]
    public void Graph_batch_sizes_cover_every_batch_up_to_the_maximum(int max, int[] expected)
    {
        var sizes = CudaGraphDecoder.BatchSizes(max);
        Assert.Equal(expected, sizes);
        for (int n = 1; n <= max; n++) Assert.Contains(sizes, s => s >= n); // every step size has a graph to pad into
    }

    [Theory]
    [InlineData(1, 2, 64)]   // Qwen2.5-0.5B alone: 2 kv heads, 128 CTAs wanted, capped at 64 partitions
    [InlineData(1, 8, 32)]   // Llama-3-8B alone: 8 kv heads x 32 partitions = 256 CTAs
    [InlineData(3, 8, 11)]   // rounds up: 3 x 8 x 11 = 264
    [InlineData(64, 8, 1)]   // 512 CTAs without splitting: no merge
    [InlineData(64, 2, 2)]
    public void Attention_partitions_fill_the_gpu_for_each_batch_size(int batch, int kvHeads, int expected)
    {
        using var buffers = new DecodeBuffers(maxBatch: 64, maxContext: 64, blockSize: 16, heads: 2 * kvHeads, kvHeads, headDim: 8, vocabulary: 4, torch.CPU);
        Assert.Equal(expected, buffers.PartitionsFor(batch));
    }

    [Fact]
    public void The_workspace_holds_every_batch_sizes_partitions()
    {
        for (int kvHeads = 1; kvHeads <= 8; kvHeads++)
        for (int maxBatch = 1; maxBatch <= 70; maxBatch += 3)
        {
            const int HeadDim = 8, Groups = 3;
            using var buffers = new DecodeBuffers(maxBatch, maxContext: 32, blockSize: 16, heads: Groups * kvHeads, kvHeads, HeadDim, vocabulary: 4, torch.CPU);
            for (int b = 1; b <= maxBatch; b++)
            {
                int p = buffers.PartitionsFor(b);
                Assert.InRange(p, 1, DecodeBuffers.MaxPartitions);
                Assert.True(p == DecodeBuffers.MaxPartitions || (long)b * kvHeads * p >= DecodeBuffers.TargetAttentionCtas,
                    $"batch {b}, {kvHeads} kv heads: {p} partitions leave the GPU short of CTAs");
                if (p > 1) Assert.True(buffers.Workspace.numel() >= (long)b * Groups * kvHeads * p * (HeadDim + 2), $"workspace too small for batch {b}");
                if (p > 1) Assert.True(buffers.AttentionCounters.numel() >= (long)b * kvHeads, $"too few attention counters for batch {b}");
            }
            Assert.Equal(0, buffers.AttentionCounters.count_nonzero().item<long>()); // the kernel relies on zeroed counters
        }
    }

    [Fact]
    public void ReadArgmax_returns_what_the_last_CopyOut_brought_back_not_what_the_device_holds_since()
    {
        using var buffers = new DecodeBuffers(maxBatch: 4, maxContext: 16, blockSize: 4, heads: 2, kvHeads: 1, headDim: 8, vocabulary: 10, torch.CPU);
        using (var values = torch.tensor(new long[] { 7, 3, 9, 1 })) buffers.Argmax.copy_(values);
        buffers.CopyOut();
        buffers.Argmax.fill_(0); // the next step's work, not copied out yet
        Assert.Equal([7L, 3L, 9L], buffers.ReadArgmax(3, torch.CPU));
    }

    [Fact]
    public void Upload_packs_each_chunk_then_pads_with_rows_that_write_nothing()
    {
        const int BlockSize = 4;
        using var buffers = new DecodeBuffers(maxBatch: 4, maxContext: 16, BlockSize, heads: 2, kvHeads: 1, headDim: 8, vocabulary: 10, torch.CPU);
        var a = Decoding([5, 6, 7, 8, 9, 10], blocks: [3, 1]);         // token at position 5 (block 1 of its table = id 1)
        var b = Decoding([1, 2, 3], blocks: [2]);
        ScheduledChunk[] chunks = [new(a, 5, 1, true), new(b, 2, 1, true)];

        buffers.Upload(chunks, bucket: 3);

        var host = buffers.Host;
        int max = buffers.MaxBatch;
        Assert.Equal(4, buffers.MaxBlocks);
        Assert.Equal([10, 3, 0], host[..3].ToArray());                   // tokens
        Assert.Equal([5, 2, 0], host.Slice(max, 3).ToArray());           // positions
        Assert.Equal([1 * BlockSize + 1, 2 * BlockSize + 2, -1], host.Slice(2 * max, 3).ToArray()); // slots; padding -1
        Assert.Equal([6, 3, 0], host.Slice(3 * max, 3).ToArray());       // context lengths; padding 0
        Assert.Equal([3, 1], host.Slice(4 * max, 2).ToArray());          // block table rows
        Assert.Equal(2, host[4 * max + buffers.MaxBlocks]);
        // The device copy holds what the host wrote.
        Assert.Equal([10L, 3, 0], buffers.Tokens(3).to(torch.ScalarType.Int64).data<long>().ToArray());
        Assert.Equal([6L, 3, 0], buffers.ContextLengths(3).to(torch.ScalarType.Int64).data<long>().ToArray());
    }

    [Fact]
    public void Only_single_token_chunks_that_fit_take_the_fused_path()
    {
        using var buffers = new DecodeBuffers(maxBatch: 2, maxContext: 8, blockSize: 4, heads: 2, kvHeads: 1, headDim: 8, vocabulary: 10, torch.CPU);
        var seq = Decoding([1, 2, 3], blocks: [0]);
        Assert.True(buffers.Fits(Batch(new ScheduledChunk(seq, 2, 1, true))));
        Assert.False(buffers.Fits(Batch(new ScheduledChunk(seq, 0, 3, true))));                          // a prompt chunk
        Assert.False(buffers.Fits(Batch(new(seq, 2, 1, true), new(seq, 2, 1, true), new(seq, 2, 1, true)))); // more than MaxBatch
        var longer = Decoding([.. Enumerable.Range(0, 12)], blocks: [0, 1, 2]);
        Assert.False(buffers.Fits(Batch(new ScheduledChunk(longer, 11, 1, true))));                      // table wider than MaxBlocks
    }

    private static Sequence Decoding(int[] tokens, int[] blocks)
    {
        var seq = new Sequence(new InferenceRequest(tokens, SamplingParameters.Greedy with { MaxTokens = 4 }));
        foreach (int block in blocks) seq.AddBlock(block);
        return seq;
    }

    private static ScheduledChunk[] Batch(params ScheduledChunk[] chunks) => chunks;
}
