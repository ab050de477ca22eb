using Disagg.Kv;

namespace Disagg;

/// <summary>What every engine tells about itself: its KV layout, its limits and its current load (for routers and metrics).</summary>
public interface IEngineInfo
{
    /// <summary>Layout of the engine's KV pool. Prefill and decode engines exchange blocks only when their layouts are equal.</summary>
    KvCacheLayout KvLayout { get; }

    /// <summary>Most tokens (prompt plus output) one sequence may hold.</summary>
    int MaxContextLength { get; }

    /// <summary>A snapshot of the engine's load. Cheap; safe from any thread.</summary>
    EngineLoad GetLoad();
}

/// <summary>A point-in-time view of an engine's load.</summary>
/// <param name="WaitingRequests">Requests queued, not yet admitted.</param>
/// <param name="RunningSequences">Sequences admitted and holding KV.</param>
/// <param name="FreeKvBlocks">Blocks free in the KV pool (prefix-cache blocks that could be evicted count as used).</param>
/// <param name="TotalKvBlocks">Blocks in the KV pool.</param>
public readonly record struct EngineLoad(int WaitingRequests, int RunningSequences, int FreeKvBlocks, int TotalKvBlocks)
{
    /// <summary>Fraction of KV blocks in use, in [0, 1].</summary>
    public double KvUsage => TotalKvBlocks == 0 ? 0 : 1.0 - (double)FreeKvBlocks / TotalKvBlocks;
}

/// <summary>
/// An engine that runs prefill and decode itself (colocated): the baseline that disaggregation is compared against,
/// and the local path a router takes when remote prefill would not pay.
/// </summary>
public interface IInferenceEngine : IEngineInfo
{
    /// <summary>
    /// Generates the continuation of <paramref name="request"/>, streaming each token as soon as it is sampled.
    /// The last token carries its <see cref="GeneratedToken.Finish"/> reason.
    /// </summary>
    /// <exception cref="InvalidRequestException">The request cannot be served (empty or oversized prompt, bad token ids).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired; the request's KV is returned to the pool.</exception>
    IAsyncEnumerable<GeneratedToken> GenerateAsync(InferenceRequest request, CancellationToken cancellationToken = default);
}

/// <summary>An engine that can say how much of a prompt its prefix cache holds, for cache-aware routing.</summary>
public interface IPrefixCacheProbe
{
    /// <summary>Leading tokens of <paramref name="promptTokens"/> whose KV is cached (whole blocks). Thread-safe and cheap; a hint, since the cache may change right after.</summary>
    int CachedPrefixLength(ReadOnlySpan<int> promptTokens);
}
