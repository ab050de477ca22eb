namespace Disagg.Benchmarks.Serving;

/// <summary>Which per-request statistic of the inter-token gaps the ITL objective bounds.</summary>
public enum ItlStatistic
{
    /// <summary>The request's 90th-percentile gap (nearest rank): a few slow steps are forgiven.</summary>
    P90,

    /// <summary>The request's longest gap: every step must be fast.</summary>
    Max,
}

/// <summary>
/// A serving latency objective. A request is good when it completed, its time to first token is at most <see cref="TtftMs"/>
/// and its <see cref="ItlStatistic"/> inter-token gap is at most <see cref="ItlMs"/> (vacuous with a single token).
/// Goodput is good requests per second of the run.
/// </summary>
public sealed record ServingSlo(double TtftMs, double ItlMs, ItlStatistic ItlStatistic = ItlStatistic.P90)
{
    /// <summary>The definition, in words, for result files.</summary>
    public string Definition =>
        $"a request is good when it completes, its TTFT (from its arrival, or for a follow-up turn from when it could be sent) is <= {TtftMs} ms " +
        $"and the {(ItlStatistic == ItlStatistic.P90 ? "90th percentile (nearest rank)" : "maximum")} of its inter-token gaps is <= {ItlMs} ms; " +
        "goodput = good requests / seconds from the start of the replay to the last request's end";

    /// <summary>The statistic of <paramref name="outcome"/>'s gaps that the ITL objective bounds, or null without gaps.</summary>
    public double? RequestItl(RequestOutcome outcome)
    {
        ArgumentNullException.ThrowIfNull(outcome);
        if (outcome.GapsMs.Length == 0) return null;
        if (ItlStatistic == ItlStatistic.Max) return outcome.GapsMs.Max();
        double[] sorted = [.. outcome.GapsMs];
        Array.Sort(sorted);
        return Percentiles.NearestRank(sorted, 90);
    }

    /// <summary>Whether <paramref name="outcome"/> meets the objective.</summary>
    public bool IsMetBy(RequestOutcome outcome)
    {
        ArgumentNullException.ThrowIfNull(outcome);
        return outcome.Status == RequestStatus.Completed && outcome.TtftMs <= TtftMs && !(RequestItl(outcome) > ItlMs);
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> when a bound is not a positive number.</summary>
    public void Validate()
    {
        if (!(TtftMs > 0 && double.IsFinite(TtftMs))) throw new ArgumentOutOfRangeException(nameof(TtftMs), TtftMs, "The TTFT objective must be a positive number of milliseconds.");
        if (!(ItlMs > 0 && double.IsFinite(ItlMs))) throw new ArgumentOutOfRangeException(nameof(ItlMs), ItlMs, "The ITL objective must be a positive number of milliseconds.");
        if (!Enum.IsDefined(ItlStatistic)) throw new ArgumentOutOfRangeException(nameof(ItlStatistic), ItlStatistic, "Unknown ITL statistic.");
    }
}
