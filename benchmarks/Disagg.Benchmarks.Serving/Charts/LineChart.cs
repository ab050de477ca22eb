namespace Disagg.Benchmarks.Serving.Charts;

/// <summary>One line: points (x, y), joined in order of x, each marked with a square.</summary>
public sealed record LineSeries(string Name, IReadOnlyList<(double X, double Y)> Points, Rgb Color);

/// <summary>Lines over a linear x axis from zero (e.g. goodput against the offered request rate).</summary>
public sealed record LineChart(string Title, string XLabel, IReadOnlyList<LineSeries> Series) : IChart
{
    /// <inheritdoc />
    public Rect Render(Canvas canvas, Rect bounds)
    {
        ArgumentNullException.ThrowIfNull(canvas);
        var plot = ChartFrame.Begin(canvas, bounds, Title, [.. Series.Select(s => (s.Name, s.Color))]);
        var points = Series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
        var yScale = AxisScale.For(points.Select(p => p.Y).DefaultIfEmpty(0).Max());
        var xScale = AxisScale.For(points.Select(p => p.X).DefaultIfEmpty(0).Max());
        ChartFrame.YAxis(canvas, plot, yScale);
        int X(double x) => plot.X + (int)Math.Round(Math.Clamp(x / xScale.Top, 0, 1) * (plot.Width - 1));
        foreach (double tick in xScale.Ticks())
        {
            string label = AxisScale.Label(tick);
            canvas.DrawLine(X(tick), plot.Bottom - 1, X(tick), plot.Bottom + 2, Rgb.Ink);
            canvas.DrawText(X(tick) - BitmapFont.MeasureWidth(label) / 2, plot.Bottom + 5, label, Rgb.Ink);
        }
        canvas.DrawText(plot.X + (plot.Width - BitmapFont.MeasureWidth(XLabel)) / 2, plot.Bottom + 17, XLabel, Rgb.Ink);
        foreach (var series in Series)
        {
            var ordered = series.Points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).OrderBy(p => p.X).ToList();
            for (int i = 1; i < ordered.Count; i++)
                canvas.DrawLine(X(ordered[i - 1].X), ChartFrame.Y(plot, yScale, ordered[i - 1].Y), X(ordered[i].X), ChartFrame.Y(plot, yScale, ordered[i].Y), series.Color, thickness: 2);
            foreach (var p in ordered) canvas.FillRect(X(p.X) - 3, ChartFrame.Y(plot, yScale, p.Y) - 3, 7, 7, series.Color);
        }
        return plot;
    }
}
