using BenchmarkDotNet.Attributes;
using Disagg.Kv;
using Disagg.PrefixCache;

namespace Disagg.Benchmarks;

/// <summary>
/// The prefix cache under a realistic load: 100 system prompts of 1,024 tokens, each continued by 100 different
/// 1,024-token conversations, so the tree holds 10,000 cached 2,048-token sequences (16 tokens per block).
/// </summary>
[MemoryDiagnoser]
public class RadixPrefixCacheBenchmarks
{
    private const int BlockSize = 16, SystemPrompts = 100, PerSystemPrompt = 100, Half = 1024;
    private const int Sequences = SystemPrompts * PerSystemPrompt, BlocksPerSequence = 2 * Half / BlockSize;
    private KvBlockAllocator _allocator = null!;
    private RadixPrefixCache _cache = null!;
    private int[] _hit = null!, _halfHit = null!;
    private int[][] _fresh = null!;
    private readonly int[] _blocks = new int[BlocksPerSequence];
    private int _next;

    [GlobalSetup]
    public void Fill()
    {
        // Room for the cached tree plus one sequence: inserting more forces eviction, as in a full engine.
        _allocator = new KvBlockAllocator(SystemPrompts * Half / BlockSize + Sequences * Half / BlockSize + BlocksPerSequence);
        _cache = new RadixPrefixCache(_allocator, BlockSize);
        var random = new Random(42);
        var systems = Enumerable.Range(0, SystemPrompts).Select(_ => Tokens(random, Half)).ToArray();
        for (int s = 0; s < SystemPrompts; s++)
            for (int c = 0; c < PerSystemPrompt; c++)
                InsertFinished([.. systems[s], .. Tokens(random, Half)]);
        if (_cache.CachedBlockCount != _allocator.Capacity - BlocksPerSequence) throw new InvalidOperationException("setup did not fill the tree");

        _hit = [.. systems[7], .. Tokens(random, Half)];
        InsertFinished(_hit);
        _halfHit = [.. systems[7], .. Tokens(random, Half)];
        _fresh = Enumerable.Range(0, 4096).Select(_ => (int[])[.. systems[random.Next(SystemPrompts)], .. Tokens(random, Half)]).ToArray();
    }

    /// <summary>A 2,048-token prompt entirely cached: walk, copy 128 block ids, lock, unlock.</summary>
    [Benchmark]
    public int MatchFullHit2048()
    {
        var match = _cache.MatchAndLock(_hit, _blocks);
        _cache.Unlock(match);
        return match.MatchedBlocks;
    }

    /// <summary>A 2,048-token prompt sharing only its 1,024-token system prompt with the cache.</summary>
    [Benchmark]
    public int MatchHalfHit2048()
    {
        var match = _cache.MatchAndLock(_halfHit, _blocks);
        _cache.Unlock(match);
        return match.MatchedBlocks;
    }

    /// <summary>
    /// What the engine does for a request in a full pool: evict least recently used blocks until its 128 fit, allocate them,
    /// insert its 2,048 tokens when it finishes (usually its system prompt is cached, so 64 blocks are new) and drop the
    /// sequence's own references.
    /// </summary>
    [Benchmark]
    public int EvictAndInsert2048()
    {
        var tokens = _fresh[_next++ & (_fresh.Length - 1)];
        if (_allocator.FreeCount < BlocksPerSequence) _cache.Evict(BlocksPerSequence - _allocator.FreeCount);
        return InsertFinished(tokens);
    }

    private int InsertFinished(int[] tokens)
    {
        var blocks = _blocks.AsSpan(0, tokens.Length / BlockSize);
        if (!_allocator.TryAllocate(blocks)) throw new InvalidOperationException("pool exhausted");
        int inserted = _cache.Insert(tokens, blocks);
        _allocator.Release(blocks);
        return inserted;
    }

    private static int[] Tokens(Random random, int n)
    {
        var t = new int[n];
        for (int i = 0; i < n; i++) t[i] = random.Next(128_000);
        return t;
    }
}
