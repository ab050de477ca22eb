using System.Buffers;
using Disagg.Cuda.Native;
using Disagg.Kv;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Cuda.Model;

/// <summary>
/// The KV memory of one engine: per layer, a K and a V tensor of [blocks * blockSize, kvHeads, headDim] on the model's device.
/// Row <c>block * blockSize + offset</c> holds position <c>offset</c> of that block, so a block is a contiguous slab and a
/// token's slot is a single index. Block ids are handed out by the engine's allocator; this class only holds the memory.
/// </summary>
public sealed class PagedKvCache : IDeviceKvBlockStore, IDisposable
{
    // One allocation for the whole pool, so that moving blocks of every layer is one gather, one copy and one scatter;
    // per-layer K and V are views into it.
    private readonly Tensor _storage;
    private readonly Lock _stagingLock = new();
    private Tensor? _staging; // page-locked host memory for ReadLayer/WriteLayer on a GPU (socket transports stage through it)
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;

    /// <summary>
    /// Experimental, off by default: move blocks between two CUDA pools with libdisagg_cuda's single copy kernel on a copy
    /// stream (no gather/scatter temporaries; overlaps the compute queued after it) instead of a gather, a device-to-device
    /// copy and a scatter. On one H100 it moved scattered Llama-3-8B blocks at 1,341 GB/s (93% of a plain copy within the
    /// device) against 266-292 for the default path, with the same bytes (benchmarks/results/h100-rehearsal-transfer.json);
    /// it stays off until it is validated and measured across two GPUs, where it needs peer access.
    /// </summary>
    public static bool UseNativeBlockCopies { get; set; }

    /// <summary>The row of the pool that holds <paramref name="position"/> of a sequence with <paramref name="blockTable"/>.</summary>
    internal static long SlotOf(ReadOnlySpan<int> blockTable, int position, int blockSize) =>
        (long)blockTable[position / blockSize] * blockSize + position % blockSize;

    /// <summary>Allocates a zeroed pool of <paramref name="blocks"/> blocks on <paramref name="device"/>.</summary>
    public PagedKvCache(KvCacheLayout layout, int blocks, Device device)
        : this(layout, blocks, device, torch.zeros([layout.NumLayers, 2, (long)blocks * layout.BlockSize, layout.NumKvHeads, layout.HeadDim],
            ToScalarType(layout.DataType), device))
    {
    }

    /// <summary>A cache over one storage tensor [layers, 2 (K, V), blocks * blockSize, kvHeads, headDim] (ours, or another process's opened through CUDA IPC).</summary>
    private PagedKvCache(KvCacheLayout layout, int blocks, Device device, Tensor storage)
    {
        Layout = layout;
        BlockCount = blocks;
        Device = device;
        _storage = storage;
        _keys = new Tensor[layout.NumLayers];
        _values = new Tensor[layout.NumLayers];
        for (int l = 0; l < layout.NumLayers; l++)
        {
            _keys[l] = storage.select(0, l).select(0, 0);
            _values[l] = storage.select(0, l).select(0, 1);
        }
    }

    /// <summary>Describes this cache's device memory so that another process on the same host can open it (<see cref="OpenIpc"/>).</summary>
    internal KvIpcDescriptor ExportIpc()
    {
        if (Device.type != DeviceType.CUDA) throw new InvalidOperationException("Only a CUDA KV cache can be shared between processes.");
        var (handle, offset) = NativeCuda.ExportIpc(_storage);
        return new KvIpcDescriptor(Layout, BlockCount, Device.index, handle, offset);
    }

    /// <summary>Opens a cache another process exported, on cuda:<paramref name="deviceIndex"/> as this process numbers devices.</summary>
    internal static PagedKvCache OpenIpc(KvIpcDescriptor descriptor, int deviceIndex)
    {
        var layout = descriptor.Layout;
        long[] shape = [layout.NumLayers, 2, (long)descriptor.Blocks * layout.BlockSize, layout.NumKvHeads, layout.HeadDim];
        var storage = NativeCuda.ImportIpc(descriptor.Handle, descriptor.Offset, shape, ToScalarType(layout.DataType), deviceIndex);
        return new PagedKvCache(layout, descriptor.Blocks, torch.device(DeviceType.CUDA, deviceIndex), storage);
    }

    /// <inheritdoc />
    public KvCacheLayout Layout { get; }

    /// <inheritdoc />
    public int BlockCount { get; }

    /// <summary>The device the pool lives on.</summary>
    public Device Device { get; }

    /// <summary>Layer <paramref name="layer"/>'s keys: [blocks * blockSize, kvHeads, headDim]; row block * blockSize + offset.</summary>
    public Tensor Keys(int layer) => _keys[layer];

    /// <summary>Layer <paramref name="layer"/>'s values, laid out like <see cref="Keys"/>.</summary>
    public Tensor Values(int layer) => _values[layer];

    /// <summary>The TorchSharp element type of <paramref name="type"/>.</summary>
    public static ScalarType ToScalarType(KvDataType type) => type switch
    {
        KvDataType.Float32 => ScalarType.Float32,
        KvDataType.Float16 => ScalarType.Float16,
        KvDataType.BFloat16 => ScalarType.BFloat16,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    /// <inheritdoc />
    public void ReadLayer(int layer, ReadOnlySpan<int> blockIds, Span<byte> destination)
    {
        long perBlock = Layout.BytesPerBlockPerLayer;
        if (destination.Length != blockIds.Length * perBlock)
            throw new ArgumentException($"Expected {blockIds.Length * perBlock} bytes, got {destination.Length}.", nameof(destination));
        if (blockIds.IsEmpty) return;
        using var scope = torch.NewDisposeScope();
        var index = BlockIndex(blockIds);
        int elementsPerBlock = Layout.BlockSize * Layout.ElementsPerToken;
        var k = _keys[layer].view(BlockCount, elementsPerBlock).index_select(0, index);
        var v = _values[layer].view(BlockCount, elementsPerBlock).index_select(0, index);
        var both = torch.cat([k, v], 1); // canonical order: per block, K then V
        if (Device.type == DeviceType.CPU)
        {
            both.bytes.CopyTo(destination);
            return;
        }
        lock (_stagingLock) // device to pinned host memory (a DMA, no pageable bounce), then into the caller's buffer
        {
            var staged = Staging(both.numel()).view(both.shape);
            staged.copy_(both);
            staged.bytes.CopyTo(destination);
        }
    }

    /// <inheritdoc />
    public void WriteLayer(int layer, ReadOnlySpan<int> blockIds, ReadOnlySpan<byte> source) => WriteLayer(layer, blockIds, new Bytes(source));

    /// <inheritdoc />
    /// <remarks>Copies straight from the segments into the staging buffer (or the CPU tensor): the socket transport's frames
    /// need no joining first.</remarks>
    public void WriteLayer(int layer, ReadOnlySpan<int> blockIds, in ReadOnlySequence<byte> source) => WriteLayer(layer, blockIds, new Bytes(source));

    private void WriteLayer(int layer, ReadOnlySpan<int> blockIds, Bytes source)
    {
        long perBlock = Layout.BytesPerBlockPerLayer;
        if (source.Length != blockIds.Length * perBlock)
            throw new ArgumentException($"Expected {blockIds.Length * perBlock} bytes, got {source.Length}.", nameof(source));
        if (blockIds.IsEmpty) return;
        using var scope = torch.NewDisposeScope();
        int elementsPerBlock = Layout.BlockSize * Layout.ElementsPerToken;
        var index = BlockIndex(blockIds);
        Tensor onDevice;
        if (Device.type == DeviceType.CPU)
        {
            onDevice = torch.empty([blockIds.Length, 2 * elementsPerBlock], _keys[layer].dtype, torch.CPU);
            source.CopyTo(onDevice.bytes);
        }
        else
        {
            lock (_stagingLock)
            {
                var staged = Staging((long)blockIds.Length * 2 * elementsPerBlock).view(blockIds.Length, 2 * elementsPerBlock);
                source.CopyTo(staged.bytes);
                onDevice = staged.to(Device); // from pinned memory; complete before the staging buffer is reused
            }
        }
        _keys[layer].view(BlockCount, elementsPerBlock).index_copy_(0, index, onDevice.narrow(1, 0, elementsPerBlock));
        _values[layer].view(BlockCount, elementsPerBlock).index_copy_(0, index, onDevice.narrow(1, elementsPerBlock, elementsPerBlock));
    }

    /// <summary>The bytes of a write: one span, or a sequence of segments.</summary>
    private readonly ref struct Bytes
    {
        private readonly ReadOnlySpan<byte> _span;
        private readonly ReadOnlySequence<byte> _sequence;
        private readonly bool _segmented;

        public Bytes(ReadOnlySpan<byte> span) => _span = span;

        public Bytes(in ReadOnlySequence<byte> sequence)
        {
            _sequence = sequence;
            _segmented = true;
        }

        public long Length => _segmented ? _sequence.Length : _span.Length;

        public void CopyTo(Span<byte> destination)
        {
            if (_segmented) _sequence.CopyTo(destination);
            else _span.CopyTo(destination);
        }
    }

    /// <summary>The first <paramref name="elements"/> of a reused page-locked host buffer (grown on demand, never shrunk).</summary>
    private Tensor Staging(long elements)
    {
        if (_staging is null || _staging.numel() < elements)
        {
            _staging?.Dispose();
            using var pageable = torch.empty([Math.Max(elements, 1L << 20)], _storage.dtype, torch.CPU);
            _staging = pageable.pin_memory().DetachFromDisposeScope(); // lives with the cache, not with the caller's scope
        }
        return _staging.narrow(0, 0, elements);
    }

    /// <inheritdoc />
    public string DeviceName => Device.ToString();

    /// <inheritdoc />
    public bool CanCopyTo(IKvBlockStore destination) => destination is PagedKvCache other && other.Layout.Equals(Layout);

    /// <inheritdoc />
    public void CopyLayerTo(IKvBlockStore destination, int layer, ReadOnlySpan<int> sourceBlocks, ReadOnlySpan<int> destinationBlocks) =>
        CopyBlocks(destination, sourceBlocks, destinationBlocks, layer);

    /// <inheritdoc />
    public void CopyBlocksTo(IKvBlockStore destination, ReadOnlySpan<int> sourceBlocks, ReadOnlySpan<int> destinationBlocks) =>
        CopyBlocks(destination, sourceBlocks, destinationBlocks, layer: null);

    /// <summary>Gather on the source device, one device-to-device copy, scatter on the destination device: of one layer, or of all.</summary>
    private void CopyBlocks(IKvBlockStore destination, ReadOnlySpan<int> sourceBlocks, ReadOnlySpan<int> destinationBlocks, int? layer)
    {
        if (destination is not PagedKvCache target) throw new ArgumentException("The destination is not a TorchSharp KV cache.", nameof(destination));
        Layout.EnsureCompatible(target.Layout);
        if (sourceBlocks.Length != destinationBlocks.Length)
            throw new ArgumentException($"{sourceBlocks.Length} source blocks but {destinationBlocks.Length} destination blocks.", nameof(destinationBlocks));
        if (sourceBlocks.IsEmpty) return;
        if (UseNativeBlockCopies && Device.type == DeviceType.CUDA && target.Device.type == DeviceType.CUDA && NativeCuda.IsAvailable)
        {
            // One kernel moves every slab straight across, on the source device's copy stream: it starts once the work
            // already queued (the prefill that wrote these blocks) is done, and overlaps what is queued next.
            // Synchronize() waits for it.
            CheckBlockIds(sourceBlocks);
            target.CheckBlockIds(destinationBlocks);
            NativeCuda.CopyBlocks(_storage, target._storage, sourceBlocks, destinationBlocks, layer ?? 0, layer + 1 ?? Layout.NumLayers,
                Layout.BlockSize, onCopyStream: true);
            return;
        }
        using var scope = torch.NewDisposeScope();
        long perBlock = (long)Layout.BlockSize * Layout.ElementsPerToken; // K (or V) of one block in one layer
        var from = BlockIndex(sourceBlocks);
        var to = target.BlockIndex(destinationBlocks);
        // Storage viewed as [layers, K/V, blocks, perBlock]; one layer drops the first dimension.
        Tensor Blocks(PagedKvCache cache)
        {
            var all = cache._storage.view(Layout.NumLayers, 2, cache.BlockCount, perBlock);
            return layer is { } l ? all.select(0, l) : all;
        }
        int blockDimension = layer is null ? 2 : 1;
        var moved = Blocks(this).index_select(blockDimension, from).to(target.Device);
        Blocks(target).index_copy_(blockDimension, to, moved);
    }

    /// <inheritdoc />
    /// <remarks>True with <see cref="UseNativeBlockCopies"/> on CUDA: copies are queued on the copy stream.</remarks>
    public bool CopiesAsynchronously => UseNativeBlockCopies && Device.type == DeviceType.CUDA && NativeCuda.IsAvailable;

    /// <remarks>Waits for every stream of the device, the copy stream of native block copies included.</remarks>
    public void Synchronize()
    {
        if (Device.type == DeviceType.CUDA) torch.cuda.synchronize(Device);
    }

    private Tensor BlockIndex(ReadOnlySpan<int> blockIds)
    {
        CheckBlockIds(blockIds);
        var ids = new long[blockIds.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = blockIds[i];
        return torch.tensor(ids, device: Device);
    }

    private void CheckBlockIds(ReadOnlySpan<int> blockIds)
    {
        foreach (int id in blockIds)
            if ((uint)id >= (uint)BlockCount) throw new ArgumentOutOfRangeException(nameof(blockIds), id, "No such KV block.");
    }

    /// <summary>Frees the pool's memory (or closes the mapping of another process's pool).</summary>
    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
        _storage.Dispose();
        _staging?.Dispose();
    }
}

/// <summary>What another process needs to open a KV cache's device memory: the layout, the pool size and the CUDA IPC handle of its storage.</summary>
internal sealed record KvIpcDescriptor(KvCacheLayout Layout, int Blocks, int DeviceIndex, byte[] Handle, long Offset)
{
    /// <summary>Serialises the descriptor (for a control channel or a file).</summary>
    public byte[] ToBytes()
    {
        using var stream = new MemoryStream();
        using var w = new BinaryWriter(stream);
        w.Write(2); // version
        w.Write(Layout.NumLayers);
        w.Write(Layout.NumKvHeads);
        w.Write(Layout.HeadDim);
        w.Write(Layout.BlockSize);
        w.Write((int)Layout.DataType);
        w.Write(Blocks);
        w.Write(DeviceIndex);
        w.Write(Handle);
        w.Write(Offset);
        w.Flush();
        return stream.ToArray();
    }

    /// <summary>Reads a descriptor written by <see cref="ToBytes"/>; throws <see cref="InvalidDataException"/> on anything else.</summary>
    public static KvIpcDescriptor FromBytes(byte[] bytes)
    {
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes));
            if (r.ReadInt32() != 2) throw new InvalidDataException("Unknown KV IPC descriptor version.");
            var layout = new KvCacheLayout(r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), (KvDataType)r.ReadInt32());
            int blocks = r.ReadInt32(), device = r.ReadInt32();
            byte[] handle = r.ReadBytes(64);
            long offset = r.ReadInt64();
            if (handle.Length != 64 || blocks <= 0 || offset < 0) throw new InvalidDataException("The KV IPC descriptor is malformed.");
            return new KvIpcDescriptor(layout, blocks, device, handle, offset);
        }
        catch (Exception e) when (e is EndOfStreamException or ArgumentOutOfRangeException)
        {
            throw new InvalidDataException("The KV IPC descriptor is truncated or malformed.", e);
        }
    }
}
