namespace Disagg.Benchmarks.Serving;

/// <summary>Percentiles by the nearest-rank method: the smallest sample such that at least p% of the samples are at or below it.</summary>
public static class Percentiles
{
    /// <summary>The <paramref name="percent"/>-th percentile (0 &lt; p ≤ 100) of <paramref name="sorted"/>, which must be sorted ascending and non-empty.</summary>
    public static double NearestRank(ReadOnlySpan<double> sorted, double percent)
    {
        if (sorted.IsEmpty) throw new ArgumentException("No samples.", nameof(sorted));
        if (!(percent is > 0 and <= 100)) throw new ArgumentOutOfRangeException(nameof(percent), percent, "Must be in (0, 100].");
        // Rank ceil(p * n / 100), 1-based; p * n first, so that whole-number products divide exactly (0.07 * 100 would not).
        int rank = (int)Math.Ceiling(percent * sorted.Length / 100);
        return sorted[Math.Clamp(rank, 1, sorted.Length) - 1];
    }
}
