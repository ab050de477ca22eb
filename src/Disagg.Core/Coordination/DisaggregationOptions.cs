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

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Policy)) throw new ArgumentOutOfRangeException(nameof(Policy), Policy, "Unknown routing policy.");
        if (LocalPrefillMaxUncachedTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(LocalPrefillMaxUncachedTokens), LocalPrefillMaxUncachedTokens, "Must be 0 or more.");
        if (!(CacheWeight >= 0 && double.IsFinite(CacheWeight)))
            throw new ArgumentOutOfRangeException(nameof(CacheWeight), CacheWeight, "Must be a finite number, 0 or more.");
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
