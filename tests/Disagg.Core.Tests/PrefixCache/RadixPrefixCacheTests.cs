using Disagg.Kv;
using Disagg.PrefixCache;
using FsCheck.Xunit;

namespace Disagg.Tests.PrefixCache;

public class RadixPrefixCacheTests
{
    /// <summary>
    /// Drives the tree and a naive reference (a plain map from every cached whole-block prefix to its block, stamp and lock count)
    /// with the same random script, and checks after every step that they agree: longest matches and their block ids,
    /// tokens newly cached, what eviction drops (least recently used unlocked leaf blocks) and frees, counts; locked blocks
    /// are never evicted; the pool is never over-committed; and at the end every block comes back.
    /// </summary>
    [Property(MaxTest = 300, EndSize = 200)]
    public void Agrees_with_a_naive_reference_under_random_operations(int seed, byte[] script, byte shape)
    {
        int blockSize = 1 + shape % 4, capacity = 12 + shape % 40;
        var allocator = new KvBlockAllocator(capacity);
        var tree = new RadixPrefixCache(allocator, blockSize);
        var reference = new NaiveCache(blockSize);
        var random = new Random(seed);
        var bases = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, 48).Select(_ => random.Next(2)).ToArray()).ToArray();
        var locks = new List<(PrefixMatch Tree, int[] Tokens, int Blocks)>();

        int[] Prompt()
        {
            var b = bases[random.Next(bases.Length)];
            var p = b[..random.Next(b.Length + 1)];
            if (p.Length > 0 && random.Next(2) == 0) p[random.Next(p.Length)] ^= 1 + random.Next(2); // diverge somewhere
            return p;
        }

        foreach (byte step in script)
        {
            switch (step % 6)
            {
                case 0:
                case 1: // a sequence finishes and offers its blocks
                {
                    var tokens = Prompt();
                    var ids = new int[tokens.Length / blockSize];
                    if (allocator.FreeCount < ids.Length)
                    {
                        int want = ids.Length - allocator.FreeCount;
                        Assert.Equal(reference.Evict(want, allocator), tree.Evict(want));
                    }
                    if (!allocator.TryAllocate(ids)) break;
                    Assert.Equal(reference.Insert(tokens, ids), tree.Insert(tokens, ids));
                    allocator.Release(ids); // the sequence is done; only the cache's references remain
                    break;
                }
                case 2: // a request arrives and borrows its cached prefix
                {
                    var tokens = Prompt();
                    var ids = new int[random.Next(tokens.Length / blockSize + 1)];
                    var match = tree.MatchAndLock(tokens, ids);
                    var expected = reference.MatchAndLock(tokens, ids.Length);
                    Assert.Equal(expected.Length, match.MatchedBlocks);
                    Assert.Equal(match.MatchedBlocks * blockSize, match.MatchedTokens);
                    Assert.Equal(expected, ids[..match.MatchedBlocks]);
                    locks.Add((match, tokens, match.MatchedBlocks));
                    break;
                }
                case 3: // a request finishes and gives its lock back
                {
                    if (locks.Count == 0) break;
                    int at = random.Next(locks.Count);
                    tree.Unlock(locks[at].Tree);
                    reference.Unlock(locks[at].Tokens, locks[at].Blocks);
                    locks.RemoveAt(at);
                    break;
                }
                case 4: // memory runs low
                {
                    int want = random.Next(capacity / 2);
                    Assert.Equal(reference.Evict(want, allocator), tree.Evict(want));
                    break;
                }
                default:
                {
                    var tokens = Prompt();
                    Assert.Equal(reference.PeekBlocks(tokens) * blockSize, tree.PeekPrefixLength(tokens));
                    break;
                }
            }

            Assert.Equal(reference.Count, tree.CachedBlockCount);
            Assert.Equal(reference.UnlockedCount, tree.EvictableBlockCount);
            Assert.Equal(tree.CachedBlockCount, allocator.UsedCount); // the cache is the only holder, so nothing leaks
            Assert.True(allocator.UsedCount <= capacity);
            foreach (var (_, tokens, blocks) in locks) // locked prefixes are still whole
                Assert.True(tree.PeekPrefixLength(tokens) >= blocks * blockSize);
        }

        foreach (var held in locks) tree.Unlock(held.Tree);
        tree.Evict(int.MaxValue);
        Assert.Equal(0, tree.CachedBlockCount);
        Assert.Equal(capacity, allocator.FreeCount);
    }

    [Fact]
    public void Empty_and_sub_block_prompts_match_and_cache_nothing()
    {
        var (allocator, cache) = Create(capacity: 8, blockSize: 4);
        Assert.Equal(0, cache.MatchAndLock([], []).MatchedTokens);
        Assert.Equal(0, cache.Insert([], []));
        Assert.Equal(0, cache.Insert([1, 2, 3], []));
        cache.Unlock(cache.MatchAndLock([1, 2, 3], new int[1])); // an empty match unlocks as a no-op
        Assert.Equal(0, cache.CachedBlockCount);
        Assert.Equal(8, allocator.FreeCount);
    }

    [Fact]
    public void Matches_stop_at_whole_blocks_and_respect_the_destination_length()
    {
        var (allocator, cache) = Create(capacity: 8, blockSize: 4);
        var ids = Allocate(allocator, 2);
        Assert.Equal(8, cache.Insert([1, 2, 3, 4, 5, 6, 7, 8, 9], ids)); // the 9th token is not a whole block

        var dest = new int[3];
        var exact = cache.MatchAndLock([1, 2, 3, 4, 5, 6, 7, 8], dest);
        Assert.Equal(2, exact.MatchedBlocks);
        Assert.Equal(ids, dest[..2]);
        var partial = cache.MatchAndLock([1, 2, 3, 4, 5, 6, 7], dest);  // 7 tokens: one whole block
        Assert.Equal(1, partial.MatchedBlocks);
        var capped = cache.MatchAndLock([1, 2, 3, 4, 5, 6, 7, 8], dest.AsSpan(0, 1));
        Assert.Equal(1, capped.MatchedBlocks);
        Assert.Equal(0, cache.MatchAndLock([1, 2, 3, 5, 5, 6, 7, 8], dest).MatchedBlocks); // differs inside the first block
        foreach (var m in new[] { exact, partial, capped }) cache.Unlock(m);
    }

    [Fact]
    public void A_partial_match_splits_the_edge_and_both_branches_keep_their_blocks()
    {
        var (allocator, cache) = Create(capacity: 16, blockSize: 2);
        var a = Allocate(allocator, 4);
        Assert.Equal(8, cache.Insert([1, 1, 2, 2, 3, 3, 4, 4], a));
        var b = Allocate(allocator, 4);
        Assert.Equal(4, cache.Insert([1, 1, 2, 2, 9, 9, 9, 9], b)); // shares two blocks, adopts only its last two
        Assert.Equal(6, cache.CachedBlockCount);
        Assert.Equal(1, allocator.RefCount(b[0]));                   // not adopted: the caller's reference only
        Assert.Equal(2, allocator.RefCount(b[2]));

        var dest = new int[4];
        cache.Unlock(cache.MatchAndLock([1, 1, 2, 2, 3, 3, 4, 4], dest));
        Assert.Equal(a, dest);
        cache.Unlock(cache.MatchAndLock([1, 1, 2, 2, 9, 9, 9, 9], dest));
        Assert.Equal(new[] { a[0], a[1], b[2], b[3] }, dest);
        Assert.Equal(4, cache.PeekPrefixLength([1, 1, 2, 2, 7, 7]));

        allocator.Release(a);
        allocator.Release(b);
        Assert.Equal(6, cache.Evict(100));
        Assert.Equal(16, allocator.FreeCount);
    }

    [Fact]
    public void Locked_blocks_survive_eviction_until_unlocked()
    {
        var (allocator, cache) = Create(capacity: 8, blockSize: 2);
        InsertAndDrop(allocator, cache, [1, 1, 2, 2, 3, 3]);
        InsertAndDrop(allocator, cache, [5, 5, 6, 6]);
        var match = cache.MatchAndLock([1, 1, 2, 2], new int[2]);  // splits [1 1 2 2 | 3 3] and locks the upper part
        Assert.Equal(5, cache.CachedBlockCount);
        Assert.Equal(3, cache.EvictableBlockCount);

        Assert.Equal(3, cache.Evict(100));
        Assert.Equal(2, cache.CachedBlockCount);
        Assert.Equal(4, cache.PeekPrefixLength([1, 1, 2, 2, 3, 3]));

        cache.Unlock(match);
        Assert.Equal(2, cache.EvictableBlockCount);
        Assert.Equal(2, cache.Evict(100));
        Assert.Equal(8, allocator.FreeCount);
    }

    [Fact]
    public void Eviction_takes_least_recently_used_leaves_tail_first()
    {
        var (allocator, cache) = Create(capacity: 16, blockSize: 1);
        InsertAndDrop(allocator, cache, [1, 2, 3]);
        InsertAndDrop(allocator, cache, [4, 5, 6]);
        InsertAndDrop(allocator, cache, [7, 8, 9]);
        cache.Unlock(cache.MatchAndLock([1, 2, 3], new int[3])); // [1 2 3] is now the most recent

        Assert.Equal(2, cache.Evict(2));                          // the tail of the oldest: 6 and 5
        Assert.Equal(1, cache.PeekPrefixLength([4, 5, 6]));
        Assert.Equal(2, cache.Evict(2));                          // 4, then the next oldest leaf's tail: 9
        Assert.Equal(0, cache.PeekPrefixLength([4]));
        Assert.Equal(2, cache.PeekPrefixLength([7, 8, 9]));
        Assert.Equal(3, cache.PeekPrefixLength([1, 2, 3]));
    }

    [Fact]
    public void Eviction_reports_only_blocks_it_really_freed()
    {
        var (allocator, cache) = Create(capacity: 4, blockSize: 1);
        var ids = Allocate(allocator, 2);
        cache.Insert([1, 2], ids);          // the caller still holds its references
        Assert.Equal(0, cache.Evict(2));     // dropped from the cache, but not freed
        Assert.Equal(0, cache.CachedBlockCount);
        Assert.Equal(2, allocator.Release(ids));
        Assert.Equal(2, cache.Statistics.EvictedBlocks);
    }

    [Fact]
    public void A_100k_token_prompt_is_cached_matched_split_and_evicted()
    {
        const int blockSize = 16, tokens = 100_000, blocks = tokens / blockSize;
        var (allocator, cache) = Create(capacity: 2 * blocks, blockSize);
        var prompt = Enumerable.Range(0, tokens).Select(i => i * 7 % 50_000).ToArray();
        Assert.Equal(blocks * blockSize, InsertAndDrop(allocator, cache, prompt));

        var dest = new int[blocks];
        var full = cache.MatchAndLock(prompt, dest);
        Assert.Equal(blocks, full.MatchedBlocks);
        Assert.Equal(dest.Length, dest.Distinct().Count());

        var other = (int[])prompt.Clone();
        other[50_000] = -1;                                      // diverge inside block 3125
        var half = cache.MatchAndLock(other, dest);
        Assert.Equal(50_000 / blockSize, half.MatchedBlocks);
        Assert.Equal(blocks - 50_000 / blockSize, InsertAndDrop(allocator, cache, other) / blockSize);

        cache.Unlock(full);
        cache.Unlock(half);
        Assert.Equal(cache.CachedBlockCount, cache.Evict(int.MaxValue));
        Assert.Equal(allocator.Capacity, allocator.FreeCount);
    }

    [Fact]
    public void Misuse_gets_typed_errors_and_changes_nothing()
    {
        var (allocator, cache) = Create(capacity: 4, blockSize: 2);
        Assert.Throws<ArgumentException>(() => cache.Insert([1, 2, 3, 4], [0]));
        Assert.Throws<InvalidOperationException>(() => cache.Insert([1, 2], [3])); // block 3 is not allocated
        Assert.Equal(0, cache.CachedBlockCount);
        Assert.Equal(0, cache.PeekPrefixLength([1, 2]));

        InsertAndDrop(allocator, cache, [1, 2]);
        var match = cache.MatchAndLock([1, 2], new int[1]);
        cache.Unlock(match);
        Assert.Throws<InvalidOperationException>(() => cache.Unlock(match));
        var elsewhere = Create(capacity: 4, blockSize: 2).Cache;
        InsertAndDrop(elsewhere.Allocator, elsewhere, [1, 2]);
        var foreign = elsewhere.MatchAndLock([1, 2], new int[1]);
        Assert.Throws<InvalidOperationException>(() => cache.Unlock(foreign));
    }

    [Fact]
    public void Statistics_count_lookups_hits_inserts_and_evictions()
    {
        var (allocator, cache) = Create(capacity: 8, blockSize: 2);
        InsertAndDrop(allocator, cache, [1, 2, 3, 4]);
        cache.Unlock(cache.MatchAndLock([1, 2, 3, 4, 5, 6], new int[3]));
        cache.Unlock(cache.MatchAndLock([9, 9], new int[1]));
        cache.LockPrefix([1, 2]);                             // not a lookup
        Assert.Equal(0, cache.PeekPrefixLength([7, 7]));           // not a lookup either
        Assert.Equal(new PrefixCacheStatistics(Lookups: 2, QueriedTokens: 8, HitTokens: 4, InsertedBlocks: 2, EvictedBlocks: 0),
            cache.Statistics);
        Assert.Equal(0.5, cache.Statistics.HitRate);
    }

    private static (KvBlockAllocator Allocator, RadixPrefixCache Cache) Create(int capacity, int blockSize)
    {
        var allocator = new KvBlockAllocator(capacity);
        return (allocator, new RadixPrefixCache(allocator, blockSize));
    }

    private static int[] Allocate(KvBlockAllocator allocator, int n)
    {
        var ids = new int[n];
        Assert.True(allocator.TryAllocate(ids));
        return ids;
    }

    /// <summary>What a finished sequence does: offer its blocks, then drop its own references.</summary>
    private static int InsertAndDrop(KvBlockAllocator allocator, RadixPrefixCache cache, int[] tokens)
    {
        var ids = Allocate(allocator, tokens.Length / cache.BlockSize);
        int inserted = cache.Insert(tokens, ids);
        allocator.Release(ids);
        return inserted;
    }

    /// <summary>The reference: every cached whole-block prefix, keyed by its tokens, with its block id, last use and lock count.</summary>
    private sealed class NaiveCache(int blockSize)
    {
        private sealed class Entry
        {
            public int Block;
            public long Stamp;
            public int Locks;
        }

        private readonly Dictionary<string, Entry> _entries = new();
        private long _clock;

        public int Count => _entries.Count;

        public int UnlockedCount => _entries.Values.Count(e => e.Locks == 0);

        private string Key(int[] tokens, int blocks) => string.Join(',', tokens[..(blocks * blockSize)]);

        public int PeekBlocks(int[] tokens)
        {
            int n = 0;
            while (n < tokens.Length / blockSize && _entries.ContainsKey(Key(tokens, n + 1))) n++;
            return n;
        }

        public int[] MatchAndLock(int[] tokens, int maxBlocks)
        {
            int n = Math.Min(PeekBlocks(tokens), maxBlocks);
            long stamp = ++_clock;
            var ids = new int[n];
            for (int i = 0; i < n; i++)
            {
                var e = _entries[Key(tokens, i + 1)];
                e.Stamp = stamp;
                e.Locks++;
                ids[i] = e.Block;
            }
            return ids;
        }

        public void Unlock(int[] tokens, int blocks)
        {
            for (int i = 0; i < blocks; i++) _entries[Key(tokens, i + 1)].Locks--;
        }

        public int Insert(int[] tokens, int[] ids)
        {
            long stamp = ++_clock;
            int added = 0;
            for (int i = 0; i < tokens.Length / blockSize; i++)
            {
                if (_entries.TryGetValue(Key(tokens, i + 1), out var e))
                {
                    e.Stamp = stamp;
                    continue;
                }
                _entries.Add(Key(tokens, i + 1), new Entry { Block = ids[i], Stamp = stamp });
                added += blockSize;
            }
            return added;
        }

        /// <summary>Drops up to n blocks, one least recently used unlocked leaf block at a time; returns how many the allocator would free.</summary>
        public int Evict(int n, KvBlockAllocator allocator)
        {
            int freed = 0;
            for (int i = 0; i < n; i++)
            {
                var leaves = _entries.Where(kv => kv.Value.Locks == 0 && !_entries.Keys.Any(k => IsChild(kv.Key, k))).ToList();
                if (leaves.Count == 0) break;
                long oldest = leaves.Min(kv => kv.Value.Stamp);
                var victims = leaves.Where(kv => kv.Value.Stamp == oldest).ToList();
                Assert.Single(victims); // the tree's LRU order must be unambiguous for this reference to apply
                if (allocator.RefCount(victims[0].Value.Block) == 1) freed++;
                _entries.Remove(victims[0].Key);
            }
            return freed;
        }

        private bool IsChild(string parent, string candidate) =>
            candidate.Length > parent.Length && candidate.StartsWith(parent + ",", StringComparison.Ordinal)
            && candidate.Count(c => c == ',') == parent.Count(c => c == ',') + blockSize;
    }
}
