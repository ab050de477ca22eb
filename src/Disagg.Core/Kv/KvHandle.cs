namespace Disagg.Kv;

/// <summary>
/// Names the KV of one sequence inside one engine's block pool: which blocks, in position order, hold how many tokens.
/// A handle is a description, not ownership: whoever produced it (a <see cref="PrefillResult"/>, a <see cref="KvReservation"/>)
/// keeps the blocks alive until it is disposed.
/// </summary>
public sealed class KvHandle
{
    /// <summary>Creates a handle; <paramref name="blockIds"/> must cover <paramref name="sequenceLength"/> tokens.</summary>
    public KvHandle(RequestId requestId, KvCacheLayout layout, ReadOnlyMemory<int> blockIds, int sequenceLength)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentOutOfRangeException.ThrowIfNegative(sequenceLength);
        if (blockIds.Length < layout.BlocksForTokens(sequenceLength))
            throw new ArgumentException(
                $"{blockIds.Length} blocks cannot hold {sequenceLength} tokens at {layout.BlockSize} tokens per block.", nameof(blockIds));
        RequestId = requestId;
        Layout = layout;
        BlockIds = blockIds;
        SequenceLength = sequenceLength;
    }

    /// <summary>The request whose KV this is.</summary>
    public RequestId RequestId { get; }

    /// <summary>Layout of the pool the blocks belong to.</summary>
    public KvCacheLayout Layout { get; }

    /// <summary>Block ids in position order: block i holds positions [i*BlockSize, (i+1)*BlockSize).</summary>
    public ReadOnlyMemory<int> BlockIds { get; }

    /// <summary>Number of token positions whose KV is written.</summary>
    public int SequenceLength { get; }

    /// <summary>Blocks that hold at least one written position.</summary>
    public int UsedBlockCount => Layout.BlocksForTokens(SequenceLength);

    /// <inheritdoc />
    public override string ToString() => $"KV of {RequestId}: {SequenceLength} tokens in {UsedBlockCount} blocks";
}
