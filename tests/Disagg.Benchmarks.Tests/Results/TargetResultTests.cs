using System.Text.Json;
using Disagg.Benchmarks.Serving;
using Disagg.Benchmarks.Serving.Results;

namespace Disagg.Benchmarks.Tests.Results;

public class TargetResultTests
{
    private static readonly TargetBaseline Baseline = new("HF generate, batch 1", 15, "tok/s", "baselines.json");

    [Theory]
    [InlineData(170.0, 160.0, true)]
    [InlineData(160.0, 160.0, true)]
    [InlineData(150.0, 160.0, false)]
    [InlineData(0.0, 0.0, false)] // nothing achieved meets no "at least" target, even one of zero
    public void At_least(double value, double target, bool met) =>
        Assert.Equal(met, TargetResult.AtLeast("t", value, "tok/s", target, Baseline).Met);

    [Theory]
    [InlineData(70.0, 72.27, true)]
    [InlineData(80.0, 72.27, false)]
    public void At_most(double value, double target, bool met) =>
        Assert.Equal(met, TargetResult.AtMost("t", value, "ms", target, Baseline).Met);

    [Fact]
    public void A_missing_number_leaves_the_verdict_open()
    {
        Assert.Null(TargetResult.AtMost("t", 70, "ms", null, Baseline).Met);
        Assert.Null(TargetResult.AtLeast("t", null, "tok/s", 160, Baseline).Met);
    }

    [Fact]
    public void Targets_are_written_with_the_documented_fields()
    {
        var json = JsonDocument.Parse(ResultJson.Serialize(TargetResult.AtLeast("batch-1 decode", 170, "tok/s", 160, Baseline))).RootElement;
        Assert.Equal(["name", "value", "unit", "target", "comparison", "met", "baseline"], json.EnumerateObject().Select(p => p.Name));
        Assert.Equal(">=", json.GetProperty("comparison").GetString());
        Assert.True(json.GetProperty("met").GetBoolean());
        Assert.Equal(["name", "value", "unit", "source"], json.GetProperty("baseline").EnumerateObject().Select(p => p.Name));
        Assert.Equal(15, json.GetProperty("baseline").GetProperty("value").GetDouble());
    }

    [Fact]
    public void Summaries_are_written_in_snake_case_with_percentiles()
    {
        var outcome = new RequestOutcome(0, RequestStatus.Completed, 0, 10, [1, 2], 13, 3);
        var summary = ServingSummary.Of("disaggregated", 2, [outcome], 1, new ServingSlo(100, 10)) with { Engine = new Dictionary<string, double> { ["kv_transfers"] = 1 } };
        var json = JsonDocument.Parse(ResultJson.Serialize(summary)).RootElement;
        Assert.Equal(1, json.GetProperty("goodput").GetDouble());
        Assert.Equal(2, json.GetProperty("itl_ms").GetProperty("p99").GetDouble());
        Assert.Equal(2, json.GetProperty("itl_ms").GetProperty("count").GetInt32());
        Assert.Equal(10, json.GetProperty("ttft_ms").GetProperty("p50").GetDouble());
        Assert.Equal(1, json.GetProperty("engine").GetProperty("kv_transfers").GetDouble());
        Assert.Equal(1, json.GetProperty("output_tokens_per_second").GetDouble() / 3);
    }

    [Fact]
    public void Comparisons_are_written_as_typed()
    {
        string text = ResultJson.Serialize(TargetResult.AtMost("prefill", 60, "ms", 72, Baseline));
        Assert.Contains("\"comparison\": \"<=\"", text, StringComparison.Ordinal); // not \u003C=: the files are read by people
    }
}
