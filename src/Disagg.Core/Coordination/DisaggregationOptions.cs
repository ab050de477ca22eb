namespace Disagg.Coordination;

/// <summary>How <see cref="DisaggregatedEngine"/> places requests. Validate with <see cref="Validate"/>.</summary>
public sealed class DisaggregationOptions
{
    /// <summary>How prefill and decode workers are chosen.</summary>
    public RoutingPolicy Policy { get; set; } = RoutingPolicy.CacheAware;

    /// <summary>
    /// A request whose prompt has at most this many tokens not already cached on its decode worker is prefilled there, locally:
    /// moving KV costs more than computing so little. 0 always disaggregates (except when the whole prompt is cached).
    /// </summary>
    public int LocalPrefillMaxUncachedTokens { get; set; } = 64;

    /// <summary>Cache-aware policy: how much a fully cached prompt is worth against a fully loaded worker (both scaled to [0, 1]).</summary>
    public double CacheWeight { get; set; } = 1.0;

    /// <summary>Called after every KV transfer (for metrics). Must be cheap and must not throw.</summary>
    public Action<KvTransferResult>? TransferCompleted { get; set; }

    /// <summary>
    /// Longest time a prompt's KV may stay held on the prefill worker after its prefill, waiting for the transfer to the decode
    /// worker to complete (30 s by default; <see cref="Timeout.InfiniteTimeSpan"/> for no bound). When it expires the transfer
    /// is cancelled, the prefill blocks are released, <see cref="DisaggregatedEngine.ExpiredKvLeaseCount"/> counts it, and
    /// the request is recovered (<see cref="RecoverLocally"/>) or fails with <see cref="DisaggTimeoutException"/>.
    /// </summary>
    public TimeSpan KvLease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// When a request's remote path fails — the transfer failed or timed out, a worker stopped, the connection to a remote
    /// decode worker broke, before or during decoding — run it again where possible: on the decode worker alone (local
    /// re-prefill, when it is an <see cref="IInferenceEngine"/>), else on the prefill worker alone. Tokens the caller already
    /// has are regenerated, checked and not repeated (sampling is deterministic per seed and token index), so the caller sees
    /// one uninterrupted stream. On by default; when off, or when no local path is left, the failure reaches the caller.
    /// </summary>
    public bool RecoverLocally { get; set; } = true;

    /// <summary>The clock of <see cref="KvLease"/> (tests pass a manual one).</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Policy)) throw new ArgumentOutOfRangeException(nameof(Policy), Policy, "Unknown routing policy.");
        if (LocalPrefillMaxUncachedTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(LocalPrefillMaxUncachedTokens), LocalPrefillMaxUncachedTokens, "Must be 0 or more.");
        if (!(CacheWeight >= 0 && double.IsFinite(CacheWeight)))
            throw new ArgumentOutOfRangeException(nameof(CacheWeight), CacheWeight, "Must be a finite number, 0 or more.");
        if (KvLease <= TimeSpan.Zero && KvLease != Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(nameof(KvLease), KvLease, "Must be positive, or Timeout.InfiniteTimeSpan.");
        ArgumentNullException.ThrowIfNull(TimeProvider);
    }
}

/// <summary>How a worker is chosen for a request.</summary>
public enum RoutingPolicy
{
    /// <summary>Each worker in turn.</summary>
    RoundRobin,

    /// <summary>The worker with the fewest waiting and running requests, then the most free KV blocks.</summary>
    LeastLoaded,

    /// <summary>The best balance of prefix-cache overlap (tokens the worker already holds) against load, as SGLang's and Dynamo's KV routers do.</summary>
    CacheAware,
}
