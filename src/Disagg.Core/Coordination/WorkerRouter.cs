namespace Disagg.Coordination;

/// <summary>Picks one worker out of several for a request, by <see cref="RoutingPolicy"/>. Thread-safe.</summary>
/// <typeparam name="TWorker">The worker type (prefill or decode engines).</typeparam>
public sealed class WorkerRouter<TWorker> where TWorker : IEngineInfo
{
    private readonly TWorker[] _workers;
    private readonly RoutingPolicy _policy;
    private readonly double _cacheWeight;
    private int _next = -1;

    /// <summary>Creates a router over <paramref name="workers"/> (at least one).</summary>
    public WorkerRouter(IReadOnlyList<TWorker> workers, RoutingPolicy policy, double cacheWeight = 1.0)
    {
        ArgumentNullException.ThrowIfNull(workers);
        if (workers.Count == 0) throw new ArgumentException("At least one worker is needed.", nameof(workers));
        _workers = [.. workers];
        _policy = policy;
        _cacheWeight = cacheWeight;
    }

    /// <summary>The workers.</summary>
    public IReadOnlyList<TWorker> Workers => _workers;

    /// <summary>Picks a worker for <paramref name="prompt"/>; <paramref name="cachedTokens"/> says how much of it that worker caches (0 when unknown).</summary>
    public TWorker Pick(ReadOnlySpan<int> prompt, out int cachedTokens)
    {
        cachedTokens = 0;
        if (_workers.Length == 1 || _policy == RoutingPolicy.RoundRobin)
        {
            var chosen = _workers[(int)((uint)Interlocked.Increment(ref _next) % (uint)_workers.Length)];
            cachedTokens = Cached(chosen, prompt);
            return chosen;
        }
        int best = 0;
        double bestScore = double.NegativeInfinity;
        for (int i = 0; i < _workers.Length; i++)
        {
            var load = _workers[i].GetLoad();
            // Load in [0, 1]: queue pressure and KV pressure, equally weighted.
            double busy = 0.5 * Math.Min(1.0, (load.WaitingRequests + load.RunningSequences) / 64.0) + 0.5 * load.KvUsage;
            int cached = _policy == RoutingPolicy.CacheAware ? Cached(_workers[i], prompt) : 0;
            double overlap = prompt.Length == 0 ? 0 : (double)cached / prompt.Length;
            double score = _cacheWeight * overlap - busy;
            if (score > bestScore)
            {
                bestScore = score;
                best = i;
                cachedTokens = cached;
            }
        }
        return _workers[best];
    }

    private static int Cached(TWorker worker, ReadOnlySpan<int> prompt) =>
        worker is IPrefixCacheProbe probe ? probe.CachedPrefixLength(prompt) : 0;
}
