using System.Buffers;
using Disagg.Kv;

namespace Disagg.PrefixCache;

/// <summary>
/// RadixAttention-style prefix cache at block granularity: a radix tree over token sequences whose edges hold whole KV
/// blocks, so that a request whose prompt starts like an earlier one borrows that one's blocks instead of recomputing them.
/// </summary>
/// <remarks>
/// <para>Only whole blocks are cached: an edge holds <c>k * BlockSize</c> tokens and the <c>k</c> block ids that hold their KV.
/// Nodes split at block boundaries when a match or an insert ends inside an edge.</para>
/// <para>The tree holds one allocator reference on every block it caches. <see cref="MatchAndLock"/> locks the matched
/// path (the blocks stay cached however low memory runs) until <see cref="Unlock"/>. <see cref="Evict"/> drops blocks
/// from the least recently used unlocked leaves, tail first, and releases the tree's reference.</para>
/// <para>Children are found through one dictionary keyed by (parent, hash of the child's first block); the hash only
/// finds the candidate, tokens are always compared, so a hash collision can cost a hit but never return wrong KV.</para>
/// <para>Thread-safety: none. The engine calls it from its loop thread only.</para>
/// </remarks>
public sealed class RadixPrefixCache
{
    private readonly Node _root;
    private readonly Dictionary<ChildKey, Node> _children = new();
    private readonly PriorityQueue<Node, long> _evictionCandidates = new(); // lazily pruned: entries are re-checked when popped
    private readonly Stack<Node> _spareNodes = new();
    private int _nextNodeId = 1;
    private long _clock;
    private int _cachedBlocks, _lockedBlocks;
    private long _lookups, _queriedTokens, _hitTokens, _insertedBlocks, _evictedBlocks;

    /// <summary>Creates an empty cache over <paramref name="allocator"/>'s blocks.</summary>
    public RadixPrefixCache(KvBlockAllocator allocator, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(allocator);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        Allocator = allocator;
        BlockSize = blockSize;
        _root = new Node { Id = 0, Tokens = [], Blocks = [] };
    }

    /// <summary>The allocator whose blocks the cache holds references on.</summary>
    public KvBlockAllocator Allocator { get; }

    /// <summary>Tokens per block.</summary>
    public int BlockSize { get; }

    /// <summary>Blocks the cache holds a reference on.</summary>
    public int CachedBlockCount => _cachedBlocks;

    /// <summary>Cached blocks no lock protects (what <see cref="Evict"/> may drop).</summary>
    public int EvictableBlockCount => _cachedBlocks - _lockedBlocks;

    /// <summary>Hit and miss counts.</summary>
    public PrefixCacheStatistics Statistics => new(_lookups, _queriedTokens, _hitTokens, _insertedBlocks, _evictedBlocks);

    /// <summary>
    /// Finds the longest cached whole-block prefix of <paramref name="tokens"/>, writes its block ids to the front of
    /// <paramref name="blockIds"/> and locks them; counts the lookup in <see cref="Statistics"/>.
    /// At most <c>blockIds.Length</c> blocks are matched. Give the result back with <see cref="Unlock"/>.
    /// </summary>
    public PrefixMatch MatchAndLock(ReadOnlySpan<int> tokens, Span<int> blockIds)
    {
        int maxBlocks = Math.Min(tokens.Length / BlockSize, blockIds.Length);
        var match = LockPath(tokens[..(maxBlocks * BlockSize)], blockIds);
        _lookups++;
        _queriedTokens += tokens.Length;
        _hitTokens += match.MatchedTokens;
        return match;
    }

    /// <summary>Locks the longest cached whole-block prefix of <paramref name="tokens"/> without returning its blocks or counting statistics.</summary>
    public PrefixMatch LockPrefix(ReadOnlySpan<int> tokens) =>
        LockPath(tokens[..(tokens.Length / BlockSize * BlockSize)], Span<int>.Empty);

    /// <summary>Length in tokens of the longest cached whole-block prefix, without locking, touching LRU order or counting statistics.</summary>
    public int PeekPrefixLength(ReadOnlySpan<int> tokens)
    {
        tokens = tokens[..(tokens.Length / BlockSize * BlockSize)];
        var node = _root;
        int matched = 0;
        while (matched < tokens.Length && TryGetChild(node, tokens[matched..], out var child))
        {
            int common = CommonBlocks(child, tokens[matched..]);
            matched += common * BlockSize;
            if (common < child.BlockCount) break;
            node = child;
        }
        return matched;
    }

    /// <summary>Undoes one <see cref="MatchAndLock"/> or <see cref="LockPrefix"/>. Unlocking an empty match does nothing.</summary>
    /// <exception cref="InvalidOperationException">The match was already unlocked, or belongs to another cache.</exception>
    public void Unlock(in PrefixMatch match)
    {
        if (match.Node is null) return;
        if (match.Node is not Node node || node.Owner != this || node.LockCount <= 0)
            throw new InvalidOperationException("This prefix match is not locked in this cache (unlocked twice?).");
        for (var n = node; n != _root; n = n.Parent!)
        {
            if (--n.LockCount == 0)
            {
                _lockedBlocks -= n.BlockCount;
                if (n.ChildCount == 0) MarkEvictionCandidate(n);
            }
        }
    }

    /// <summary>
    /// Caches the whole blocks of <paramref name="tokens"/>, whose KV lives in <paramref name="blockIds"/> (one id per whole block).
    /// Blocks for a prefix already cached are not adopted (the caller keeps its own); every adopted block gets one more
    /// allocator reference, held by the cache. Returns the number of tokens newly cached.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer block ids than whole blocks in <paramref name="tokens"/>.</exception>
    public int Insert(ReadOnlySpan<int> tokens, ReadOnlySpan<int> blockIds)
    {
        int blocks = tokens.Length / BlockSize;
        if (blockIds.Length < blocks)
            throw new ArgumentException($"{blocks} whole blocks of tokens need as many block ids; got {blockIds.Length}.", nameof(blockIds));
        tokens = tokens[..(blocks * BlockSize)];
        long stamp = ++_clock;
        var node = _root;
        int matched = 0;
        while (matched < tokens.Length)
        {
            if (!TryGetChild(node, tokens[matched..], out var child))
            {
                if (_children.ContainsKey(new ChildKey(node.Id, BlockHash(tokens.Slice(matched, BlockSize)))))
                    break; // a 64-bit hash collision with a different block: leave the rest uncached rather than shadow it
                var adopted = blockIds[(matched / BlockSize)..blocks];
                Allocator.AddRef(adopted); // first: it throws (changing nothing) for a block that is not allocated
                var leaf = NewNode(node, tokens[matched..], adopted, stamp);
                _cachedBlocks += leaf.BlockCount;
                _insertedBlocks += leaf.BlockCount;
                MarkEvictionCandidate(leaf);
                return leaf.BlockCount * BlockSize;
            }
            int common = CommonBlocks(child, tokens[matched..]);
            if (common < child.BlockCount) child = Split(child, common);
            child.LastAccess = stamp;
            matched += common * BlockSize;
            node = child;
        }
        if (node != _root && node.ChildCount == 0 && node.LockCount == 0) MarkEvictionCandidate(node);
        return 0;
    }

    /// <summary>
    /// Drops up to <paramref name="blockCount"/> blocks, taken from the tails of the least recently used unlocked leaves,
    /// and releases the cache's reference on them. Returns how many of them that freed in the allocator (a block
    /// someone else still holds is dropped from the cache but not freed).
    /// </summary>
    public int Evict(int blockCount)
    {
        int dropped = 0, freed = 0;
        Span<int> one = stackalloc int[1];
        while (dropped < blockCount && _evictionCandidates.TryDequeue(out var node, out long stamp))
        {
            if (!IsEvictableLeaf(node) || node.LastAccess != stamp) continue; // stale entry
            int take = Math.Min(node.BlockCount, blockCount - dropped);
            var tail = node.Blocks.AsSpan(node.BlockCount - take, take);
            freed += Allocator.Release(tail);
            dropped += take;
            _cachedBlocks -= take;
            _evictedBlocks += take;
            if (take < node.BlockCount)
            {
                node.BlockCount -= take;
                _evictionCandidates.Enqueue(node, node.LastAccess);
                continue;
            }
            var parent = node.Parent!;
            RemoveLeaf(node);
            if (parent != _root && parent.ChildCount == 0 && parent.LockCount == 0) MarkEvictionCandidate(parent);
        }
        return freed;
    }

    private PrefixMatch LockPath(ReadOnlySpan<int> tokens, Span<int> blockIds)
    {
        long stamp = ++_clock;
        var node = _root;
        int matched = 0;
        while (matched < tokens.Length && TryGetChild(node, tokens[matched..], out var child))
        {
            int common = CommonBlocks(child, tokens[matched..]);
            if (common < child.BlockCount) child = Split(child, common);
            child.LastAccess = stamp;
            if (!blockIds.IsEmpty) child.Blocks.AsSpan(0, common).CopyTo(blockIds[(matched / BlockSize)..]);
            matched += common * BlockSize;
            node = child;
        }
        if (node == _root) return default;
        for (var n = node; n != _root; n = n.Parent!)
            if (n.LockCount++ == 0) _lockedBlocks += n.BlockCount;
        return new PrefixMatch(matched / BlockSize, BlockSize, node);
    }

    /// <summary>Blocks at the start of <paramref name="node"/>'s edge equal to the start of <paramref name="tokens"/> (at least 1 for a child found by its first block).</summary>
    private int CommonBlocks(Node node, ReadOnlySpan<int> tokens)
    {
        int limit = Math.Min(node.BlockCount, tokens.Length / BlockSize) * BlockSize;
        int common = node.Tokens.AsSpan(0, limit).CommonPrefixLength(tokens[..limit]);
        return common / BlockSize;
    }

    private bool TryGetChild(Node parent, ReadOnlySpan<int> tokens, out Node child)
    {
        var first = tokens[..BlockSize];
        if (_children.TryGetValue(new ChildKey(parent.Id, BlockHash(first)), out child!)
            && child.Tokens.AsSpan(0, BlockSize).SequenceEqual(first))
            return true;
        child = null!;
        return false;
    }

    /// <summary>Cuts <paramref name="node"/>'s edge after <paramref name="blocks"/> blocks; returns the new upper node, which takes the node's place.</summary>
    private Node Split(Node node, int blocks)
    {
        var parent = node.Parent!;
        _children.Remove(new ChildKey(parent.Id, node.FirstBlockHash));
        parent.ChildCount--; // NewNode adds the upper part back in its place
        var upper = NewNode(parent, node.Tokens.AsSpan(0, blocks * BlockSize), node.Blocks.AsSpan(0, blocks), node.LastAccess);
        upper.LockCount = node.LockCount; // every lock on the lower part also covers the upper part

        int restBlocks = node.BlockCount - blocks;
        node.Tokens.AsSpan(blocks * BlockSize, restBlocks * BlockSize).CopyTo(node.Tokens);
        node.Blocks.AsSpan(blocks, restBlocks).CopyTo(node.Blocks);
        node.BlockCount = restBlocks;
        node.Parent = upper;
        node.FirstBlockHash = BlockHash(node.Tokens.AsSpan(0, BlockSize));
        _children.Add(new ChildKey(upper.Id, node.FirstBlockHash), node);
        upper.ChildCount = 1;
        return upper;
    }

    private Node NewNode(Node parent, ReadOnlySpan<int> tokens, ReadOnlySpan<int> blocks, long stamp)
    {
        int blockCount = tokens.Length / BlockSize;
        var node = _spareNodes.TryPop(out var spare) ? spare : new Node { Owner = this, Id = _nextNodeId++ };
        node.Tokens = ArrayPool<int>.Shared.Rent(blockCount * BlockSize);
        node.Blocks = ArrayPool<int>.Shared.Rent(blockCount);
        tokens[..(blockCount * BlockSize)].CopyTo(node.Tokens);
        blocks[..blockCount].CopyTo(node.Blocks);
        node.BlockCount = blockCount;
        node.Parent = parent;
        node.ChildCount = 0;
        node.LockCount = 0;
        node.LastAccess = stamp;
        node.Alive = true;
        node.FirstBlockHash = BlockHash(tokens[..BlockSize]);
        _children.Add(new ChildKey(parent.Id, node.FirstBlockHash), node);
        parent.ChildCount++;
        return node;
    }

    private void RemoveLeaf(Node node)
    {
        var parent = node.Parent!;
        _children.Remove(new ChildKey(parent.Id, node.FirstBlockHash));
        parent.ChildCount--;
        ArrayPool<int>.Shared.Return(node.Tokens);
        ArrayPool<int>.Shared.Return(node.Blocks);
        node.Tokens = node.Blocks = [];
        node.Parent = null;
        node.Alive = false;
        // Fresh id on reuse: a stale heap entry for the old node can never look current (its stamp is older too).
        node.Id = _nextNodeId++;
        _spareNodes.Push(node);
    }

    private bool IsEvictableLeaf(Node node) => node.Alive && node.ChildCount == 0 && node.LockCount == 0 && node.BlockCount > 0;

    private void MarkEvictionCandidate(Node node)
    {
        // Stale entries pile up as nodes are touched; rebuild when they outnumber live nodes, keeping the heap O(nodes).
        if (_evictionCandidates.Count > 2 * _children.Count + 64)
        {
            _evictionCandidates.Clear();
            foreach (var n in _children.Values)
                if (n != node && IsEvictableLeaf(n)) _evictionCandidates.Enqueue(n, n.LastAccess);
        }
        _evictionCandidates.Enqueue(node, node.LastAccess);
    }

    private static ulong BlockHash(ReadOnlySpan<int> block)
    {
        // A multiply-xorshift mix over the tokens; only needs to spread keys, correctness comes from comparing tokens.
        ulong h = 0x9E3779B97F4A7C15UL ^ (ulong)block.Length;
        foreach (int t in block)
        {
            h = (h ^ (uint)t) * 0xBF58476D1CE4E5B9UL;
            h ^= h >> 29;
        }
        return h;
    }

    private readonly record struct ChildKey(int ParentId, ulong FirstBlockHash);

    private sealed class Node
    {
        public RadixPrefixCache? Owner;
        public int Id;
        public Node? Parent;
        public int[] Tokens = [];      // BlockCount * BlockSize tokens (pooled array, may be longer)
        public int[] Blocks = [];      // BlockCount block ids (pooled array, may be longer)
        public int BlockCount;
        public ulong FirstBlockHash;
        public int ChildCount;
        public int LockCount;
        public long LastAccess;
        public bool Alive;
    }
}

/// <summary>The result of <see cref="RadixPrefixCache.MatchAndLock"/>: how much matched, and the lock to give back.</summary>
public readonly struct PrefixMatch
{
    internal PrefixMatch(int matchedBlocks, int blockSize, object? node)
    {
        MatchedBlocks = matchedBlocks;
        MatchedTokens = matchedBlocks * blockSize;
        Node = node;
    }

    /// <summary>Whole blocks matched.</summary>
    public int MatchedBlocks { get; }

    /// <summary>Tokens matched (<see cref="MatchedBlocks"/> times the block size).</summary>
    public int MatchedTokens { get; }

    /// <summary>The deepest locked node, or null when nothing matched.</summary>
    internal object? Node { get; }
}

/// <summary>Prefix-cache counters since the cache was created.</summary>
/// <param name="Lookups">Calls to <see cref="RadixPrefixCache.MatchAndLock"/>.</param>
/// <param name="QueriedTokens">Tokens asked about.</param>
/// <param name="HitTokens">Tokens found cached.</param>
/// <param name="InsertedBlocks">Blocks adopted by the cache.</param>
/// <param name="EvictedBlocks">Blocks dropped by eviction.</param>
public readonly record struct PrefixCacheStatistics(long Lookups, long QueriedTokens, long HitTokens, long InsertedBlocks, long EvictedBlocks)
{
    /// <summary>Fraction of queried tokens that hit, in [0, 1].</summary>
    public double HitRate => QueriedTokens == 0 ? 0 : (double)HitTokens / QueriedTokens;
}
