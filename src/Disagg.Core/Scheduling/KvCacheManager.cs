using Disagg.Kv;
using Disagg.PrefixCache;

namespace Disagg.Scheduling;

/// <summary>
/// Gives sequences their KV blocks: borrows cached prefixes from the radix cache, allocates the rest from the pool
/// (evicting cold cache entries when it runs low), hands computed blocks to the cache, and returns everything when a
/// sequence is done. Not thread-safe: used from the engine's loop thread only.
/// </summary>
public sealed class KvCacheManager
{
    /// <summary>Creates a manager over <paramref name="allocator"/>, with prefix caching when <paramref name="prefixCache"/> is given.</summary>
    public KvCacheManager(KvBlockAllocator allocator, int blockSize, RadixPrefixCache? prefixCache)
    {
        ArgumentNullException.ThrowIfNull(allocator);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        if (prefixCache is not null && (prefixCache.Allocator != allocator || prefixCache.BlockSize != blockSize))
            throw new ArgumentException("The prefix cache must share the allocator and block size.", nameof(prefixCache));
        Allocator = allocator;
        BlockSize = blockSize;
        PrefixCache = prefixCache;
    }

    /// <summary>The block pool.</summary>
    public KvBlockAllocator Allocator { get; }

    /// <summary>The prefix cache, or null when prefix caching is off.</summary>
    public RadixPrefixCache? PrefixCache { get; }

    /// <summary>Tokens per block.</summary>
    public int BlockSize { get; }

    /// <summary>Blocks that could be had now: free ones plus cached ones nobody uses.</summary>
    public int AvailableBlocks => Allocator.FreeCount + (PrefixCache?.EvictableBlockCount ?? 0);

    /// <summary>Blocks needed for <paramref name="tokens"/> positions.</summary>
    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>
    /// Points a block-less sequence at the longest cached prefix of its first <paramref name="maxTokens"/> tokens:
    /// those positions count as computed, and their blocks are borrowed under a cache lock.
    /// </summary>
    internal void AttachCachedPrefix(Sequence sequence, int maxTokens)
    {
        if (PrefixCache is null || sequence.BlockCount != 0 || maxTokens < BlockSize) return;
        var tokens = sequence.Tokens[..Math.Min(maxTokens, sequence.Length)];
        var dest = sequence.AddBlocks(tokens.Length / BlockSize);
        var match = PrefixCache.MatchAndLock(tokens, dest);
        sequence.TruncateBlocks(match.MatchedBlocks);
        sequence.BorrowedBlocks = match.MatchedBlocks;
        sequence.PrefixLock = match;
        sequence.ComputedTokens = match.MatchedTokens;
        sequence.CachedTokens = match.MatchedTokens;
    }

    /// <summary>Ensures the sequence has blocks for its first <paramref name="tokens"/> positions. False (and nothing allocated) when memory is short.</summary>
    internal bool TryGrow(Sequence sequence, int tokens)
    {
        int need = BlocksFor(tokens) - sequence.BlockCount;
        if (need <= 0) return true;
        if (Allocator.FreeCount < need && PrefixCache is not null)
            PrefixCache.Evict(need - Allocator.FreeCount);
        if (need == 1)
        {
            if (!Allocator.TryAllocate(out int id)) return false;
            sequence.AddBlock(id);
            return true;
        }
        var added = sequence.AddBlocks(need);
        if (Allocator.TryAllocate(added)) return true;
        sequence.TruncateBlocks(sequence.BlockCount - need);
        return false;
    }

    /// <summary>Offers the sequence's fully computed blocks to the prefix cache, so later requests with the same prefix skip them.</summary>
    internal void CacheComputed(Sequence sequence)
    {
        if (PrefixCache is null) return;
        int fullBlocks = Math.Min(sequence.ComputedTokens / BlockSize, sequence.BlockCount);
        if (fullBlocks <= sequence.PrefixLock.MatchedBlocks) return;
        var tokens = sequence.Tokens[..(fullBlocks * BlockSize)];
        PrefixCache.Insert(tokens, sequence.BlockTable[..fullBlocks]);

        // Move the lock down to cover what was just inserted: those blocks stay in the cache while this sequence uses them,
        // so eviction only ever picks blocks whose release really frees memory.
        var relocked = PrefixCache.LockPrefix(tokens);
        PrefixCache.Unlock(sequence.PrefixLock);
        sequence.PrefixLock = relocked;
    }

    /// <summary>
    /// Returns all of the sequence's blocks: owned ones are released, borrowed ones unlocked. With <paramref name="cacheComputed"/>,
    /// its computed blocks are offered to the prefix cache first (never do that for blocks whose contents are not trustworthy,
    /// such as a reservation a transport did not finish filling).
    /// </summary>
    internal void Free(Sequence sequence, bool cacheComputed)
    {
        if (cacheComputed) CacheComputed(sequence);
        var owned = sequence.BlockTable[sequence.BorrowedBlocks..];
        if (!owned.IsEmpty) Allocator.Release(owned);
        PrefixCache?.Unlock(sequence.PrefixLock);
        sequence.ClearBlocks();
    }
}
