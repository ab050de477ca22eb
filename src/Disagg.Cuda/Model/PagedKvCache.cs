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
internal sealed class PagedKvCache : IDeviceKvBlockStore, IDisposable
{
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;

    public PagedKvCache(KvCacheLayout layout, int blocks, Device device)
    {
        Layout = layout;
        BlockCount = blocks;
        var dtype = ToScalarType(layout.DataType);
        long rows = (long)blocks * layout.BlockSize;
        _keys = new Tensor[layout.NumLayers];
        _values = new Tensor[layout.NumLayers];
        for (int l = 0; l < layout.NumLayers; l++)
        {
            _keys[l] = torch.zeros([rows, layout.NumKvHeads, layout.HeadDim], dtype, device);
            _values[l] = torch.zeros([rows, layout.NumKvHeads, layout.HeadDim], dtype, device);
        }
        Device = device;
    }

    /// <summary>A cache over existing per-layer tensors (for example another process's memory opened through CUDA IPC).</summary>
    private PagedKvCache(KvCacheLayout layout, int blocks, Device device, Tensor[] keys, Tensor[] values)
    {
        Layout = layout;
        BlockCount = blocks;
        Device = device;
        _keys = keys;
        _values = values;
    }

    /// <summary>Describes this cache's device memory so that another process on the same host can open it (<see cref="OpenIpc"/>).</summary>
    public KvIpcDescriptor ExportIpc()
    {
        if (Device.type != DeviceType.CUDA) throw new InvalidOperationException("Only a CUDA KV cache can be shared between processes.");
        var handles = new List<(byte[] Handle, long Offset)>(2 * Layout.NumLayers);
        for (int l = 0; l < Layout.NumLayers; l++)
        {
            handles.Add(NativeCuda.ExportIpc(_keys[l]));
            handles.Add(NativeCuda.ExportIpc(_values[l]));
        }
        return new KvIpcDescriptor(Layout, BlockCount, Device.index, handles);
    }

    /// <summary>Opens a cache another process exported, on cuda:<paramref name="deviceIndex"/> as this process numbers devices.</summary>
    public static PagedKvCache OpenIpc(KvIpcDescriptor descriptor, int deviceIndex)
    {
        var layout = descriptor.Layout;
        long[] shape = [(long)descriptor.Blocks * layout.BlockSize, layout.NumKvHeads, layout.HeadDim];
        var keys = new Tensor[layout.NumLayers];
        var values = new Tensor[layout.NumLayers];
        for (int l = 0; l < layout.NumLayers; l++)
        {
            var (kh, ko) = descriptor.Handles[2 * l];
            var (vh, vo) = descriptor.Handles[2 * l + 1];
            keys[l] = NativeCuda.ImportIpc(kh, ko, shape, ToScalarType(layout.DataType), deviceIndex);
            values[l] = NativeCuda.ImportIpc(vh, vo, shape, ToScalarType(layout.DataType), deviceIndex);
        }
        return new PagedKvCache(layout, descriptor.Blocks, torch.device(DeviceType.CUDA, deviceIndex), keys, values);
    }

    public KvCacheLayout Layout { get; }

    public int BlockCount { get; }

    public Device Device { get; }

    public Tensor Keys(int layer) => _keys[layer];

    public Tensor Values(int layer) => _values[layer];

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
        var both = torch.cat([k, v], 1).cpu().contiguous(); // canonical order: per block, K then V
        both.bytes.CopyTo(destination);
    }

    /// <inheritdoc />
    public void WriteLayer(int layer, ReadOnlySpan<int> blockIds, ReadOnlySpan<byte> source)
    {
        long perBlock = Layout.BytesPerBlockPerLayer;
        if (source.Length != blockIds.Length * perBlock)
            throw new ArgumentException($"Expected {blockIds.Length * perBlock} bytes, got {source.Length}.", nameof(source));
        if (blockIds.IsEmpty) return;
        using var scope = torch.NewDisposeScope();
        int elementsPerBlock = Layout.BlockSize * Layout.ElementsPerToken;
        var staged = torch.empty([blockIds.Length, 2 * elementsPerBlock], _keys[layer].dtype, torch.CPU);
        source.CopyTo(staged.bytes);
        var onDevice = staged.to(Device);
        var index = BlockIndex(blockIds);
        _keys[layer].view(BlockCount, elementsPerBlock).index_copy_(0, index, onDevice.narrow(1, 0, elementsPerBlock));
        _values[layer].view(BlockCount, elementsPerBlock).index_copy_(0, index, onDevice.narrow(1, elementsPerBlock, elementsPerBlock));
    }

    /// <inheritdoc />
    public string DeviceName => Device.ToString();

    /// <inheritdoc />
    public bool CanCopyTo(IKvBlockStore destination) => destination is PagedKvCache other && other.Layout.Equals(Layout);

    /// <inheritdoc />
    public void CopyLayerTo(IKvBlockStore destination, int layer, ReadOnlySpan<int> sourceBlocks, ReadOnlySpan<int> destinationBlocks)
    {
        if (destination is not PagedKvCache target) throw new ArgumentException("The destination is not a TorchSharp KV cache.", nameof(destination));
        Layout.EnsureCompatible(target.Layout);
        if (sourceBlocks.Length != destinationBlocks.Length)
            throw new ArgumentException($"{sourceBlocks.Length} source blocks but {destinationBlocks.Length} destination blocks.", nameof(destinationBlocks));
        if (sourceBlocks.IsEmpty) return;
        using var scope = torch.NewDisposeScope();
        int elementsPerBlock = Layout.BlockSize * Layout.ElementsPerToken;
        var from = BlockIndex(sourceBlocks);
        var to = target.BlockIndex(destinationBlocks);
        // Gather on the source device, one device-to-device copy, scatter on the destination device.
        var k = _keys[layer].view(BlockCount, elementsPerBlock).index_select(0, from).to(target.Device);
        var v = _values[layer].view(BlockCount, elementsPerBlock).index_select(0, from).to(target.Device);
        target._keys[layer].view(target.BlockCount, elementsPerBlock).index_copy_(0, to, k);
        target._values[layer].view(target.BlockCount, elementsPerBlock).index_copy_(0, to, v);
    }

    /// <inheritdoc />
    public void Synchronize()
    {
        if (Device.type == DeviceType.CUDA) torch.cuda.synchronize(Device);
    }

    private Tensor BlockIndex(ReadOnlySpan<int> blockIds)
    {
        var ids = new long[blockIds.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)blockIds[i] >= (uint)BlockCount) throw new ArgumentOutOfRangeException(nameof(blockIds), blockIds[i], "No such KV block.");
            ids[i] = blockIds[i];
        }
        return torch.tensor(ids, device: Device);
    }

    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
    }
}

/// <summary>What another process needs to open a KV cache's device memory: the layout, the pool size and per layer the CUDA IPC handles of K and V.</summary>
internal sealed record KvIpcDescriptor(KvCacheLayout Layout, int Blocks, int DeviceIndex, IReadOnlyList<(byte[] Handle, long Offset)> Handles)
{
    /// <summary>Serialises the descriptor (for a control channel or a file).</summary>
    public byte[] ToBytes()
    {
        using var stream = new MemoryStream();
        using var w = new BinaryWriter(stream);
        w.Write(1); // version
        w.Write(Layout.NumLayers); w.Write(Layout.NumKvHeads); w.Write(Layout.HeadDim); w.Write(Layout.BlockSize); w.Write((int)Layout.DataType);
        w.Write(Blocks); w.Write(DeviceIndex); w.Write(Handles.Count);
        foreach (var (h, o) in Handles) { w.Write(h); w.Write(o); }
        w.Flush();
        return stream.ToArray();
    }

    /// <summary>Reads a descriptor written by <see cref="ToBytes"/>; throws <see cref="InvalidDataException"/> on anything else.</summary>
    public static KvIpcDescriptor FromBytes(byte[] bytes)
    {
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes));
            if (r.ReadInt32() != 1) throw new InvalidDataException("Unknown KV IPC descriptor version.");
            var layout = new KvCacheLayout(r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), (KvDataType)r.ReadInt32());
            int blocks = r.ReadInt32(), device = r.ReadInt32(), count = r.ReadInt32();
            if (count != 2 * layout.NumLayers) throw new InvalidDataException($"{count} handles for {layout.NumLayers} layers.");
            var handles = new List<(byte[], long)>(count);
            for (int i = 0; i < count; i++) handles.Add((r.ReadBytes(64), r.ReadInt64()));
            return new KvIpcDescriptor(layout, blocks, device, handles);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("The KV IPC descriptor is truncated.", e);
        }
    }
}
