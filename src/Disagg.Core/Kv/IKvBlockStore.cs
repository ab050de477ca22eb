using System.Buffers;

namespace Disagg.Kv;

/// <summary>
/// Byte-level access to the memory behind an engine's KV blocks, for transports that stage through host memory
/// (sockets) and for tests. Device-to-device transports use the engine's own tensors instead.
/// </summary>
/// <remarks>
/// Bytes are in the canonical order of <see cref="KvCacheLayout"/>: per block, K then V, each [BlockSize, NumKvHeads, HeadDim].
/// Callers must hold the blocks (through a <see cref="PrefillResult"/> or <see cref="KvReservation"/>) while reading or writing,
/// and must not write a block another sequence shares. Implementations are safe to call from any thread for distinct blocks.
/// </remarks>
public interface IKvBlockStore
{
    /// <summary>Layout of the pool.</summary>
    KvCacheLayout Layout { get; }

    /// <summary>Number of blocks in the pool.</summary>
    int BlockCount { get; }

    /// <summary>Copies one layer of <paramref name="blockIds"/> into <paramref name="destination"/>,
    /// which must be exactly <c>blockIds.Length * Layout.BytesPerBlockPerLayer</c> bytes.</summary>
    void ReadLayer(int layer, ReadOnlySpan<int> blockIds, Span<byte> destination);

    /// <summary>Overwrites one layer of <paramref name="blockIds"/> from <paramref name="source"/>,
    /// which must be exactly <c>blockIds.Length * Layout.BytesPerBlockPerLayer</c> bytes.</summary>
    void WriteLayer(int layer, ReadOnlySpan<int> blockIds, ReadOnlySpan<byte> source);

    /// <summary>
    /// <see cref="WriteLayer(int, ReadOnlySpan{int}, ReadOnlySpan{byte})"/> from bytes that may lie in several buffers (a
    /// socket's receive segments). The default joins them in one pooled buffer first; a store that copies anyway (into
    /// staging memory, or block by block) overrides it to copy straight from the segments, which saves a pass over the data.
    /// </summary>
    void WriteLayer(int layer, ReadOnlySpan<int> blockIds, in ReadOnlySequence<byte> source)
    {
        if (source.IsSingleSegment)
        {
            WriteLayer(layer, blockIds, source.FirstSpan);
            return;
        }
        int length = checked((int)source.Length);
        var joined = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            source.CopyTo(joined);
            WriteLayer(layer, blockIds, joined.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(joined);
        }
    }
}
