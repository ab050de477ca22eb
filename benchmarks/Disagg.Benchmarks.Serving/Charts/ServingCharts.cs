using System.Globalization;

namespace Disagg.Benchmarks.Serving.Charts;

/// <summary>
/// The serving benchmark's figure: TTFT and ITL p50 / p90 / p99 per configuration at the highest offered rate (grouped bars,
/// with the objective dashed), then goodput and output throughput against the offered rate (a line per configuration).
/// </summary>
public static class ServingCharts
{
    /// <summary>Draws the figure for <paramref name="runs"/> (one summary per configuration and rate).</summary>
    public static Canvas Render(string header, IReadOnlyList<ServingSummary> runs, ServingSlo slo)
    {
        ArgumentNullException.ThrowIfNull(runs);
        ArgumentNullException.ThrowIfNull(slo);
        if (runs.Count == 0) throw new ArgumentException("No runs to chart.", nameof(runs));
        string[] configurations = [.. runs.Select(r => r.Configuration).Distinct()];
        double top = runs.Max(r => r.OfferedRate);
        var atTop = configurations.Select(c => runs.LastOrDefault(r => r.Configuration == c && r.OfferedRate == top)).ToList();
        string rate = AxisScale.Label(top);
        string[] percentiles = ["P50", "P90", "P99"];

        BarChart Bars(string title, Func<ServingSummary, LatencyDistribution> pick, double objective) =>
            new(title, configurations, [.. percentiles.Select((name, i) => new BarSeries(name,
                [.. atTop.Select(r => r is null ? null : Percentile(pick(r), i))], Rgb.Shades[i]))])
            {
                Objective = objective,
                ObjectiveLabel = "SLO " + objective.ToString("0.#", CultureInfo.InvariantCulture),
            };

        LineChart Lines(string title, Func<ServingSummary, double> pick) =>
            new(title, "OFFERED RATE (REQ/S)", [.. configurations.Select((c, i) => new LineSeries(c,
                [.. runs.Where(r => r.Configuration == c).Select(r => (r.OfferedRate, pick(r)))], Rgb.Palette[i % Rgb.Palette.Count]))]);

        return ChartGrid.Compose(header,
        [
            Bars($"TTFT (MS) AT {rate} REQ/S", r => r.TtftMs, slo.TtftMs),
            Bars($"ITL, EVERY GAP (MS) AT {rate} REQ/S", r => r.ItlMs, slo.ItlMs),
            Lines("GOODPUT (REQ/S MEETING THE SLO)", r => r.Goodput),
            Lines("OUTPUT THROUGHPUT (TOK/S)", r => r.OutputTokensPerSecond),
        ]);
    }

    private static double? Percentile(LatencyDistribution d, int i) => i switch { 0 => d.P50, 1 => d.P90, _ => d.P99 };
}
