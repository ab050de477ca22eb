using Disagg.Benchmarks.Serving;
using FsCheck.Xunit;

namespace Disagg.Benchmarks.Tests.Serving;

public class GoodputTests
{
    /// <summary>Builds outcomes from random bytes: each byte picks a status, a TTFT and a number of gaps of random lengths.</summary>
    private static List<RequestOutcome> Outcomes(byte[] script)
    {
        var rng = new Random(script.Length);
        var list = new List<RequestOutcome>();
        for (int i = 0; i < script.Length; i++)
        {
            var status = (script[i] % 7) switch { 0 => RequestStatus.Rejected, 1 => RequestStatus.Failed, 2 => RequestStatus.TimedOut, _ => RequestStatus.Completed };
            int tokens = status == RequestStatus.Rejected ? 0 : script[i] % 13;
            double[] gaps = [.. Enumerable.Range(0, Math.Max(0, tokens - 1)).Select(_ => rng.Next(1, 120) / 2.0)];
            double? ttft = tokens == 0 ? null : rng.Next(10, 3000);
            double? e2e = tokens == 0 ? null : ttft + gaps.Sum();
            list.Add(new RequestOutcome(i, status, i * 0.1, ttft, gaps, e2e, tokens, status == RequestStatus.Completed ? null : $"error {script[i] % 3}"));
        }
        return list;
    }

    /// <summary>The 90th-percentile gap by its definition: the smallest gap that at least 90% of the gaps do not exceed.</summary>
    private static double NaiveP90(double[] gaps) => gaps.Where(g => gaps.Count(x => x <= g) * 10 >= gaps.Length * 9).Min();

    [Property(MaxTest = 300)]
    public void Counts_rates_and_goodput_follow_from_the_outcomes(byte[] script, byte ttftSeed, byte itlSeed, bool useMax)
    {
        if (script.Length == 0) return;
        var outcomes = Outcomes(script);
        var slo = new ServingSlo(100 + ttftSeed * 10, 1 + itlSeed / 4.0, useMax ? ItlStatistic.Max : ItlStatistic.P90);
        const double Seconds = 12.5;
        var s = ServingSummary.Of("c", 3, outcomes, Seconds, slo);

        var completed = outcomes.Where(o => o.Status == RequestStatus.Completed).ToList();
        int good = completed.Count(o => o.TtftMs <= slo.TtftMs && (o.GapsMs.Length == 0 || (useMax ? o.GapsMs.Max() : NaiveP90(o.GapsMs)) <= slo.ItlMs));
        Assert.Equal(outcomes.Count, s.Requests);
        Assert.Equal(completed.Count, s.Completed);
        Assert.Equal(outcomes.Count(o => o.Status == RequestStatus.Rejected), s.Rejected);
        Assert.Equal(outcomes.Count(o => o.Status is RequestStatus.Failed or RequestStatus.TimedOut), s.Failed);
        Assert.Equal(good, s.GoodRequests);
        Assert.Equal(good / Seconds, s.Goodput, 1e-12);
        Assert.Equal((double)good / outcomes.Count, s.SloAttainment, 1e-12);
        Assert.Equal(completed.Count / Seconds, s.RequestThroughput, 1e-12);
        Assert.Equal(outcomes.Sum(o => o.Tokens) / Seconds, s.OutputTokensPerSecond, 1e-9);
        Assert.Equal(completed.Sum(o => o.GapsMs.Length), s.ItlMs.Count); // every gap, not one mean per request
        Assert.Equal(completed.Count(o => o.TtftMs is not null), s.TtftMs.Count);
        Assert.True(s.Errors.Count <= 5);
        Assert.Equal(s.Errors.Count, s.Errors.Distinct().Count());
    }

    [Fact]
    public void P90_forgives_one_slow_step_and_max_does_not()
    {
        double[] gaps = [.. Enumerable.Repeat(10.0, 20), 500.0]; // 21 gaps: rank ceil(0.9 * 21) = 19 is a 10 ms gap
        var outcome = new RequestOutcome(0, RequestStatus.Completed, 0, 50, gaps, 760, 22);
        Assert.True(new ServingSlo(100, 20, ItlStatistic.P90).IsMetBy(outcome));
        Assert.False(new ServingSlo(100, 20, ItlStatistic.Max).IsMetBy(outcome));
        Assert.False(new ServingSlo(40, 20, ItlStatistic.P90).IsMetBy(outcome)); // TTFT 50 ms > 40 ms
    }

    [Fact]
    public void A_request_that_did_not_complete_is_never_good()
    {
        var rejected = new RequestOutcome(0, RequestStatus.TimedOut, 0, 5, [1.0], 6, 2, "late");
        Assert.False(new ServingSlo(1000, 1000).IsMetBy(rejected));
    }

    [Fact]
    public void Objectives_must_be_positive()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ServingSlo(0, 10).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ServingSlo(10, double.NaN).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => ServingSummary.Of("c", 1, [], 0, new ServingSlo(1, 1)));
    }

    [Fact]
    public void The_definition_names_both_bounds_and_the_statistic()
    {
        string d = new ServingSlo(1500, 75, ItlStatistic.Max).Definition;
        Assert.Contains("1500 ms", d, StringComparison.Ordinal);
        Assert.Contains("75 ms", d, StringComparison.Ordinal);
        Assert.Contains("maximum", d, StringComparison.Ordinal);
    }
}
