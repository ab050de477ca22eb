namespace Disagg.Benchmarks.Serving;

/// <summary>A summary of latency samples in milliseconds: count, mean, nearest-rank p50 / p90 / p99 and the maximum (all null without samples).</summary>
public sealed record LatencyDistribution(int Count, double? Mean, double? P50, double? P90, double? P99, double? Max)
{
    /// <summary>Summarises <paramref name="samples"/> (copied and sorted; the input is not changed).</summary>
    public static LatencyDistribution Of(IEnumerable<double> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        double[] sorted = [.. samples];
        if (sorted.Length == 0) return new LatencyDistribution(0, null, null, null, null, null);
        Array.Sort(sorted);
        double sum = 0;
        foreach (double x in sorted) sum += x;
        return new LatencyDistribution(sorted.Length, sum / sorted.Length,
            Percentiles.NearestRank(sorted, 50), Percentiles.NearestRank(sorted, 90), Percentiles.NearestRank(sorted, 99), sorted[^1]);
    }
}
