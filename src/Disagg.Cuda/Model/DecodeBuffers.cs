using Disagg.Cuda.Native;
using Disagg.Scheduling;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Cuda.Model;

/// <summary>
/// The fixed-address inputs and outputs of the fused decode step, shared by every captured batch size (graphs never replay
/// at the same time). The int32 inputs live in one device buffer laid out
/// <c>[tokens | positions | slots | context lengths]</c> (each <see cref="MaxBatch"/> long) then the block tables
/// <c>[MaxBatch, MaxBlocks]</c>, mirrored by one host buffer, so that a step's inputs cross to the device in one copy.
/// Rows past the step's sequences are padding: slot -1 (no KV write) and context 0 (zero attention).
/// </summary>
internal sealed class DecodeBuffers : IDisposable
{
    /// <summary>CTAs a step's attention should keep busy: every SM of current GPUs (an H100 has 132) about twice over.</summary>
    internal const int TargetAttentionCtas = 256;

    /// <summary>Most partitions a sequence's context is split into.</summary>
    internal const int MaxPartitions = 64;

    /// <summary>For checks on the GPU: every batch size splits into this many partitions (null: <see cref="PartitionsFor"/>'s rule).</summary>
    internal static int? PartitionsOverride { get; set; }

    private readonly Tensor _device, _host;
    private readonly int _blockSize, _kvHeads;
    private readonly int? _partitionsOverride;
    private readonly Tensor _argmaxHost; // pinned on CUDA: where a step's argmax lands (see CopyOut)
    private readonly bool _cuda;

    public DecodeBuffers(int maxBatch, int maxContext, int blockSize, int heads, int kvHeads, int headDim, int vocabulary, Device device)
    {
        MaxBatch = maxBatch;
        _blockSize = blockSize;
        _kvHeads = kvHeads;
        _partitionsOverride = PartitionsOverride;
        MaxBlocks = (maxContext + blockSize - 1) / blockSize;
        long length = 4L * maxBatch + (long)maxBatch * MaxBlocks;
        _device = torch.zeros([length], ScalarType.Int32, device);
        using (var pageable = torch.zeros([length], ScalarType.Int32, torch.CPU))
            _host = device.type == DeviceType.CUDA ? pageable.pin_memory() : pageable.clone();
        Logits = torch.zeros([maxBatch, vocabulary], ScalarType.Float32, device);
        Argmax = torch.zeros([maxBatch], ScalarType.Int64, device);
        using (var pageableArgmax = torch.zeros([maxBatch], ScalarType.Int64, torch.CPU))
            _argmaxHost = device.type == DeviceType.CUDA ? pageableArgmax.pin_memory() : pageableArgmax.clone();
        _cuda = device.type == DeviceType.CUDA;
        long rows = 1; // sequence x partition rows of the workspace, for the batch size that needs most
        for (int b = 1; b <= maxBatch; b++)
            if (PartitionsFor(b) is > 1 and int partitions) rows = Math.Max(rows, (long)b * partitions);
        Workspace = torch.zeros([rows > 1 ? NativeCuda.AttentionWorkspaceLength((int)rows, heads, headDim, 1) : 1], ScalarType.Float32, device);
        AttentionCounters = torch.zeros([(long)maxBatch * kvHeads], ScalarType.Int32, device);
    }

    public int MaxBatch { get; }

    /// <summary>Block-table columns: enough blocks for the longest context.</summary>
    public int MaxBlocks { get; }

    /// <summary>
    /// Partitions each sequence's context is split into in a step of <paramref name="batch"/> rows: enough that the step's
    /// attention has about <see cref="TargetAttentionCtas"/> CTAs (one per sequence, kv head and partition), at most
    /// <see cref="MaxPartitions"/>. The kernel divides each sequence's live context among them, so a graph captured for a
    /// batch size serves every context length.
    /// </summary>
    public int PartitionsFor(int batch) =>
        _partitionsOverride ?? Math.Clamp((TargetAttentionCtas + batch * _kvHeads - 1) / (batch * _kvHeads), 1, MaxPartitions);

    /// <summary>float32 [MaxBatch, vocab]: the step's logits.</summary>
    public Tensor Logits { get; }

    /// <summary>int64 [MaxBatch]: the argmax of each row of <see cref="Logits"/>.</summary>
    public Tensor Argmax { get; }

    /// <summary>Scratch of the partitioned attention.</summary>
    public Tensor Workspace { get; }

    /// <summary>int32 [MaxBatch * kv heads]: the partitioned attention's per-(sequence, kv head) counters, zero between calls.</summary>
    public Tensor AttentionCounters { get; }

    public Tensor Tokens(int batch) => _device.narrow(0, 0, batch);
    public Tensor Positions(int batch) => _device.narrow(0, MaxBatch, batch);
    public Tensor Slots(int batch) => _device.narrow(0, 2L * MaxBatch, batch);
    public Tensor ContextLengths(int batch) => _device.narrow(0, 3L * MaxBatch, batch);
    public Tensor BlockTables(int batch) => _device.narrow(0, 4L * MaxBatch, (long)batch * MaxBlocks).view(batch, MaxBlocks);

    /// <summary>True when every one of <paramref name="chunks"/> is one query token and they fit.</summary>
    public bool Fits(ReadOnlySpan<ScheduledChunk> chunks)
    {
        if (chunks.Length == 0 || chunks.Length > MaxBatch) return false;
        foreach (var c in chunks)
            if (c.Count != 1 || c.Sequence.BlockTable.Length > MaxBlocks) return false;
        return true;
    }

    /// <summary>Writes the step's inputs for <paramref name="bucket"/> rows (the chunks, then padding) into the host mirror
    /// and copies them to the device. The caller checked <see cref="Fits"/>.</summary>
    public void Upload(ReadOnlySpan<ScheduledChunk> chunks, int bucket)
    {
        Stage(chunks, bucket);
        CopyIn(bucket);
    }

    /// <summary>
    /// Copies the staged inputs of <paramref name="bucket"/> rows to the device, on the current stream. On CUDA a plain
    /// cudaMemcpyAsync from the pinned mirror, so that a captured step copies its own inputs in: the host then only writes
    /// the mirror (<see cref="Stage"/>) before a replay.
    /// </summary>
    public void CopyIn(int bucket)
    {
        long length = 4L * MaxBatch + (long)bucket * MaxBlocks;
        if (_cuda)
        {
            NativeCuda.CopyAsync(_device, _host, length);
            return;
        }
        using var source = _host.narrow(0, 0, length);
        using var target = _device.narrow(0, 0, length);
        target.copy_(source);
    }

    /// <summary>Copies <see cref="Argmax"/> to its pinned host mirror on the current stream (captured with the step on CUDA);
    /// <see cref="ReadArgmax"/> reads it.</summary>
    public void CopyOut()
    {
        if (_cuda) NativeCuda.CopyAsync(_argmaxHost, Argmax, MaxBatch);
        else _argmaxHost.copy_(Argmax);
    }

    /// <summary>The first <paramref name="rows"/> argmax values that the last <see cref="CopyOut"/> brought back, once the
    /// device has finished it.</summary>
    public long[] ReadArgmax(int rows, Device device)
    {
        if (_cuda) torch.cuda.synchronize(device);
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(_argmaxHost.bytes)[..rows].ToArray();
    }

    /// <summary>Writes the step's inputs for <paramref name="bucket"/> rows (the chunks, then padding) into the host mirror;
    /// <see cref="CopyIn"/> copies them to the device. The caller checked <see cref="Fits"/>.</summary>
    public void Stage(ReadOnlySpan<ScheduledChunk> chunks, int bucket)
    {
        var all = Host;
        var tokens = all.Slice(0, MaxBatch);
        var positions = all.Slice(MaxBatch, MaxBatch);
        var slots = all.Slice(2 * MaxBatch, MaxBatch);
        var contexts = all.Slice(3 * MaxBatch, MaxBatch);
        var tables = all.Slice(4 * MaxBatch);
        for (int i = 0; i < bucket; i++)
        {
            if (i >= chunks.Length)
            {
                tokens[i] = 0;
                positions[i] = 0;
                slots[i] = -1;
                contexts[i] = 0;
                continue;
            }
            var chunk = chunks[i];
            var table = chunk.Sequence.BlockTable;
            tokens[i] = chunk.Sequence.Tokens[chunk.Start];
            positions[i] = chunk.Start;
            slots[i] = (int)PagedKvCache.SlotOf(table, chunk.Start, _blockSize);
            contexts[i] = chunk.End;
            table.CopyTo(tables.Slice(i * MaxBlocks, MaxBlocks));
        }
    }

    /// <summary>The host mirror as ints (for tests: what <see cref="Upload"/> wrote).</summary>
    internal Span<int> Host => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(_host.bytes);

    public void Dispose()
    {
        _device.Dispose();
        _host.Dispose();
        Logits.Dispose();
        Argmax.Dispose();
        Workspace.Dispose();
        AttentionCounters.Dispose();
        _argmaxHost.Dispose();
    }
}
