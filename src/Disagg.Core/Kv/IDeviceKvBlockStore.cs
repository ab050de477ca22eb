namespace Disagg.Kv;

/// <summary>
/// A block store whose memory lives on a device and can copy blocks straight into another store of the same kind
/// (GPU to GPU, or CPU to CPU), without staging through host byte buffers. In-process transports use it when both ends
/// support it.
/// </summary>
public interface IDeviceKvBlockStore : IKvBlockStore
{
    /// <summary>A name for the device, such as "cuda:0" or "cpu".</summary>
    string DeviceName { get; }

    /// <summary>True when <see cref="CopyLayerTo"/> can write into <paramref name="destination"/>.</summary>
    bool CanCopyTo(IKvBlockStore destination);

    /// <summary>
    /// Copies one layer of <paramref name="sourceBlocks"/> into <paramref name="destinationBlocks"/> of <paramref name="destination"/>
    /// (same count, same layout). The copy is ordered after all work already issued on this store's device, and may still be
    /// in flight when the call returns; <see cref="Synchronize"/> waits for it.
    /// </summary>
    void CopyLayerTo(IKvBlockStore destination, int layer, ReadOnlySpan<int> sourceBlocks, ReadOnlySpan<int> destinationBlocks);

    /// <summary>Like <see cref="CopyLayerTo"/> for every layer at once (one gather, one copy, one scatter where the store allows).</summary>
    void CopyBlocksTo(IKvBlockStore destination, ReadOnlySpan<int> sourceBlocks, ReadOnlySpan<int> destinationBlocks);

    /// <summary>Waits until every copy issued from this store has landed.</summary>
    void Synchronize();

    /// <summary>
    /// True when copies return once queued and run on the device while the caller goes on (ordered after the work already
    /// queued; <see cref="Synchronize"/> waits for them): then copying each layer as soon as it is written pays off.
    /// </summary>
    bool CopiesAsynchronously => false;
}
