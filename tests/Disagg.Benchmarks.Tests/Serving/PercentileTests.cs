using Disagg.Benchmarks.Serving;
using FsCheck.Xunit;

namespace Disagg.Benchmarks.Tests.Serving;

public class PercentileTests
{
    /// <summary>
    /// Checks a nearest-rank percentile against its definition rather than another formula: the result is a sample, at
    /// least p% of the samples are at or below it, and fewer than p% are strictly below it (so no smaller sample would do).
    /// </summary>
    internal static void AssertNearestRank(IReadOnlyList<double> samples, int percent, double? result)
    {
        Assert.NotNull(result);
        double v = result.Value;
        Assert.Contains(v, samples);
        int n = samples.Count;
        Assert.True(samples.Count(x => x <= v) * 100 >= percent * n, $"fewer than {percent}% of {n} samples are <= {v}");
        Assert.True(samples.Count(x => x < v) * 100 < percent * n, $"a smaller sample than {v} already covers {percent}% of {n}");
    }

    [Property(MaxTest = 300)]
    public void Nearest_rank_meets_its_definition(int[] values, byte percentSeed)
    {
        if (values.Length == 0) return;
        double[] samples = [.. values.Select(v => v / 7.0)]; // repeats and negatives included
        int percent = 1 + percentSeed % 100;
        double[] sorted = [.. samples.Order()];
        AssertNearestRank(samples, percent, Percentiles.NearestRank(sorted, percent));
    }

    [Property(MaxTest = 200)]
    public void A_distribution_holds_count_mean_max_and_the_three_percentiles(int[] values)
    {
        if (values.Length == 0) return;
        double[] samples = [.. values.Select(v => (double)v)];
        double[] before = [.. samples];
        var d = LatencyDistribution.Of(samples);
        Assert.Equal(samples, before); // the input is not sorted in place
        Assert.Equal(samples.Length, d.Count);
        Assert.Equal(samples.Max(), d.Max);
        Assert.Equal(samples.Sum() / samples.Length, d.Mean!.Value, 1e-9 * (1 + Math.Abs(samples.Sum())));
        AssertNearestRank(samples, 50, d.P50);
        AssertNearestRank(samples, 90, d.P90);
        AssertNearestRank(samples, 99, d.P99);
    }

    [Fact]
    public void No_samples_give_no_statistics()
    {
        var d = LatencyDistribution.Of([]);
        Assert.Equal(0, d.Count);
        Assert.Null(d.Mean);
        Assert.Null(d.P50);
        Assert.Null(d.P99);
        Assert.Null(d.Max);
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        Assert.Throws<ArgumentException>(() => Percentiles.NearestRank([], 50));
        Assert.Throws<ArgumentOutOfRangeException>(() => Percentiles.NearestRank([1.0], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Percentiles.NearestRank([1.0], 101));
    }
}
