namespace Disagg.Benchmarks.Serving.Charts;

/// <summary>Lays charts out in a grid of equal panels under an optional header line.</summary>
public static class ChartGrid
{
    /// <summary>Draws <paramref name="charts"/> row by row, <paramref name="columns"/> per row, each in a <paramref name="panelWidth"/> x <paramref name="panelHeight"/> panel.</summary>
    public static Canvas Compose(string? header, IReadOnlyList<IChart> charts, int columns = 2, int panelWidth = 600, int panelHeight = 340)
    {
        ArgumentNullException.ThrowIfNull(charts);
        if (charts.Count == 0) throw new ArgumentException("No charts to lay out.", nameof(charts));
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        int headerHeight = header is null ? 0 : 30;
        int rows = (charts.Count + columns - 1) / columns;
        var canvas = new Canvas(Math.Min(columns, charts.Count) * panelWidth, headerHeight + rows * panelHeight, Rgb.White);
        if (header is not null) canvas.DrawText(8, 8, ChartFrame.Fit(header, canvas.Width / 2 - 8), Rgb.Black, scale: 2);
        for (int i = 0; i < charts.Count; i++)
            charts[i].Render(canvas, new Rect(i % columns * panelWidth, headerHeight + i / columns * panelHeight, panelWidth, panelHeight));
        return canvas;
    }
}
