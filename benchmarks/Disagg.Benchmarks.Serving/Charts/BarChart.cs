namespace Disagg.Benchmarks.Serving.Charts;

/// <summary>One series of a grouped bar chart: a value per group (null leaves a gap).</summary>
public sealed record BarSeries(string Name, IReadOnlyList<double?> Values, Rgb Color);

/// <summary>Grouped vertical bars from zero, each labelled with its value, and an optional dashed objective line.</summary>
public sealed record BarChart(string Title, IReadOnlyList<string> Groups, IReadOnlyList<BarSeries> Series) : IChart
{
    /// <summary>A value to mark with a dashed line (an objective), or null.</summary>
    public double? Objective { get; init; }

    /// <summary>The objective line's label.</summary>
    public string ObjectiveLabel { get; init; } = "SLO";

    /// <inheritdoc />
    public Rect Render(Canvas canvas, Rect bounds)
    {
        ArgumentNullException.ThrowIfNull(canvas);
        foreach (var s in Series)
            if (s.Values.Count != Groups.Count) throw new ArgumentException($"Series '{s.Name}' has {s.Values.Count} values for {Groups.Count} groups.");
        var plot = ChartFrame.Begin(canvas, bounds, Title, [.. Series.Select(s => (s.Name, s.Color))]);
        double max = Series.SelectMany(s => s.Values).OfType<double>().Where(double.IsFinite).DefaultIfEmpty(0).Max();
        if (Objective is { } objective) max = Math.Max(max, objective);
        var scale = AxisScale.For(max);
        ChartFrame.YAxis(canvas, plot, scale);
        if (Groups.Count == 0 || Series.Count == 0) return plot;

        int groupWidth = plot.Width / Groups.Count;
        int barWidth = Math.Max(1, groupWidth * 7 / 10 / Series.Count);
        for (int g = 0; g < Groups.Count; g++)
        {
            int left = plot.X + g * groupWidth + (groupWidth - barWidth * Series.Count) / 2;
            for (int s = 0; s < Series.Count; s++)
            {
                if (Series[s].Values[g] is not { } value || !double.IsFinite(value)) continue;
                int top = ChartFrame.Y(plot, scale, value);
                int x = left + s * barWidth;
                canvas.FillRect(x, top, Math.Max(1, barWidth - 2), plot.Bottom - 1 - top, Series[s].Color);
                string label = AxisScale.Label(value);
                int width = BitmapFont.MeasureWidth(label);
                if (width <= barWidth + 4) canvas.DrawText(x + (barWidth - 2 - width) / 2, top - BitmapFont.GlyphHeight - 2, label, Rgb.Ink);
            }
            string name = ChartFrame.Fit(Groups[g], groupWidth - 4);
            canvas.DrawText(plot.X + g * groupWidth + (groupWidth - BitmapFont.MeasureWidth(name)) / 2, plot.Bottom + 8, name, Rgb.Ink);
        }
        if (Objective is { } line) ChartFrame.Objective(canvas, plot, scale, line, ObjectiveLabel);
        return plot;
    }
}
