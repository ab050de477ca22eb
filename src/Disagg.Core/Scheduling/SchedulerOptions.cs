namespace Disagg.Scheduling;

/// <summary>Limits of one continuous-batching step. Validate with <see cref="Validate"/>.</summary>
public sealed class SchedulerOptions
{
    /// <summary>Token budget of one step: decode tokens plus prefill-chunk tokens. Long prompts are prefilled in chunks of at most this size.</summary>
    public int MaxBatchedTokens { get; set; } = 2048;

    /// <summary>Most sequences holding KV at once (the decode batch size limit).</summary>
    public int MaxRunningSequences { get; set; } = 256;

    /// <summary>
    /// Most requests waiting for admission — prompts queued for a prefill and reservations queued for memory, counted when the
    /// engine takes them in; beyond it, new requests are rejected with <see cref="EngineOverloadedException"/> (at once, before
    /// anything is queued, once the engine has reported a full queue). Admission control: a clear rejection, not unbounded growth.
    /// </summary>
    public int MaxWaitingRequests { get; set; } = 4096;

    /// <summary>Reuse KV of cached prefixes (radix prefix cache).</summary>
    public bool EnablePrefixCaching { get; set; } = true;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (MaxBatchedTokens < 1) throw new ArgumentOutOfRangeException(nameof(MaxBatchedTokens), MaxBatchedTokens, "Must be at least 1.");
        if (MaxRunningSequences < 1) throw new ArgumentOutOfRangeException(nameof(MaxRunningSequences), MaxRunningSequences, "Must be at least 1.");
        if (MaxWaitingRequests < 1) throw new ArgumentOutOfRangeException(nameof(MaxWaitingRequests), MaxWaitingRequests, "Must be at least 1.");
    }
}
