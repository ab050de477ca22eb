namespace Disagg.Kv;

/// <summary>
/// Shape of a paged KV cache. The cache is a pool of blocks; each block holds the keys and values of
/// <see cref="BlockSize"/> consecutive token positions for every layer.
/// </summary>
/// <remarks>
/// Canonical byte order of one block of one layer, used by host-staged transports and the wire protocol:
/// K as [BlockSize, NumKvHeads, HeadDim], then V in the same shape, row-major, little-endian elements.
/// Two engines can exchange blocks only when their layouts are equal.
/// </remarks>
public sealed record KvCacheLayout
{
    /// <summary>Creates a layout; every dimension must be positive.</summary>
    public KvCacheLayout(int numLayers, int numKvHeads, int headDim, int blockSize, KvDataType dataType)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numLayers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numKvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        _ = dataType.SizeInBytes(); // rejects undefined enum values
        NumLayers = numLayers;
        NumKvHeads = numKvHeads;
        HeadDim = headDim;
        BlockSize = blockSize;
        DataType = dataType;
    }

    /// <summary>Transformer layers.</summary>
    public int NumLayers { get; }

    /// <summary>Key/value heads per layer (fewer than query heads under grouped-query attention).</summary>
    public int NumKvHeads { get; }

    /// <summary>Size of one head.</summary>
    public int HeadDim { get; }

    /// <summary>Token positions per block.</summary>
    public int BlockSize { get; }

    /// <summary>Element type.</summary>
    public KvDataType DataType { get; }

    /// <summary>Elements of K (or of V) for one token in one layer.</summary>
    public int ElementsPerToken => NumKvHeads * HeadDim;

    /// <summary>Bytes of K plus V of one block in one layer.</summary>
    public long BytesPerBlockPerLayer => 2L * BlockSize * ElementsPerToken * DataType.SizeInBytes();

    /// <summary>Bytes of one block across all layers.</summary>
    public long BytesPerBlock => BytesPerBlockPerLayer * NumLayers;

    /// <summary>Bytes of KV per token across all layers.</summary>
    public long BytesPerToken => 2L * ElementsPerToken * DataType.SizeInBytes() * NumLayers;

    /// <summary>Blocks needed to hold <paramref name="tokens"/> positions.</summary>
    public int BlocksForTokens(int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        return (int)(((long)tokens + BlockSize - 1) / BlockSize);
    }

    /// <summary>Throws <see cref="KvLayoutMismatchException"/> unless <paramref name="other"/> equals this layout.</summary>
    public void EnsureCompatible(KvCacheLayout other)
    {
        if (!Equals(other)) throw new KvLayoutMismatchException(this, other);
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"{NumLayers} layers x {NumKvHeads} kv heads x {HeadDim} dims, {BlockSize} tokens/block, {DataType}";
}
