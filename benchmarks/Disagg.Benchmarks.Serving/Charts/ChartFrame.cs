namespace Disagg.Benchmarks.Serving.Charts;

/// <summary>The parts every chart shares: title, legend, the plot area's place, the y axis with its grid, an objective line.</summary>
internal static class ChartFrame
{
    public const int LeftMargin = 52, TopMargin = 36, RightMargin = 14, BottomMargin = 30;

    /// <summary>Draws the title and legend and returns the plot area.</summary>
    public static Rect Begin(Canvas canvas, Rect bounds, string title, IReadOnlyList<(string Name, Rgb Color)> legend)
    {
        canvas.DrawText(bounds.X + 8, bounds.Y + 6, title, Rgb.Ink);
        int x = bounds.X + LeftMargin;
        foreach (var (name, color) in legend)
        {
            canvas.FillRect(x, bounds.Y + 19, 8, 8, color);
            canvas.DrawText(x + 11, bounds.Y + 20, name, Rgb.Ink);
            x += 11 + BitmapFont.MeasureWidth(name) + 14;
        }
        return new Rect(bounds.X + LeftMargin, bounds.Y + TopMargin,
            Math.Max(1, bounds.Width - LeftMargin - RightMargin), Math.Max(1, bounds.Height - TopMargin - BottomMargin));
    }

    /// <summary>The y pixel of <paramref name="value"/> on <paramref name="scale"/> in <paramref name="plot"/>.</summary>
    public static int Y(Rect plot, AxisScale scale, double value) =>
        plot.Bottom - 1 - (int)Math.Round(Math.Clamp(value / scale.Top, 0, 1) * (plot.Height - 1));

    /// <summary>Draws horizontal grid lines with labels at the y ticks, then the axes.</summary>
    public static void YAxis(Canvas canvas, Rect plot, AxisScale scale)
    {
        foreach (double tick in scale.Ticks())
        {
            int y = Y(plot, scale, tick);
            canvas.DrawLine(plot.X, y, plot.Right - 1, y, Rgb.Grid);
            string label = AxisScale.Label(tick);
            canvas.DrawText(plot.X - 5 - BitmapFont.MeasureWidth(label), y - BitmapFont.GlyphHeight / 2, label, Rgb.Ink);
        }
        canvas.DrawLine(plot.X, plot.Y, plot.X, plot.Bottom - 1, Rgb.Ink);
        canvas.DrawLine(plot.X, plot.Bottom - 1, plot.Right - 1, plot.Bottom - 1, Rgb.Ink);
    }

    /// <summary>A dashed objective line at <paramref name="value"/> with its label at the right end.</summary>
    public static void Objective(Canvas canvas, Rect plot, AxisScale scale, double value, string label)
    {
        int y = Y(plot, scale, value);
        canvas.DrawLine(plot.X, y, plot.Right - 1, y, Rgb.Objective, thickness: 1, dash: 6);
        canvas.DrawText(plot.Right - 2 - BitmapFont.MeasureWidth(label), y - BitmapFont.GlyphHeight - 3, label, Rgb.Objective);
    }

    /// <summary>Cuts <paramref name="text"/> to fit <paramref name="width"/> pixels.</summary>
    public static string Fit(string text, int width)
    {
        int chars = Math.Max(0, (width + 1) / BitmapFont.Advance);
        return text.Length <= chars ? text : text[..chars];
    }
}
