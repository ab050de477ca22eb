using Disagg.Benchmarks.Serving;
using Disagg.Benchmarks.Serving.Charts;
using FsCheck.Xunit;

namespace Disagg.Benchmarks.Tests.Charts;

public class ChartTests
{
    /// <summary>Heights of the runs of columns inside <paramref name="plot"/> that hold <paramref name="color"/>, left to right.</summary>
    private static List<int> BarHeights(Canvas canvas, Rect plot, Rgb color)
    {
        var heights = new List<int>();
        bool inBar = false;
        for (int x = plot.X; x < plot.Right; x++)
        {
            int h = 0;
            for (int y = plot.Y; y < plot.Bottom; y++) if (canvas.GetPixel(x, y) == color) h++;
            if (h > 0 && !inBar) heights.Add(h);
            else if (h > 0) heights[^1] = Math.Max(heights[^1], h);
            inBar = h > 0;
        }
        return heights;
    }

    [Property(MaxTest = 60)]
    public void Bar_heights_are_proportional_to_the_values(ushort aSeed, ushort bSeed)
    {
        double a = 1 + aSeed % 5000, b = 1 + bSeed % 5000;
        var color = Rgb.Palette[0];
        var canvas = new Canvas(600, 340, Rgb.White);
        var plot = new BarChart("T", ["A", "B"], [new BarSeries("S", [a, b], color)]).Render(canvas, new Rect(0, 0, 600, 340));
        var heights = BarHeights(canvas, plot, color);
        Assert.Equal(2, heights.Count);
        // h = v * k + e with |e| <= 1 pixel, so h_a * b - h_b * a = e_a * b - e_b * a.
        Assert.True(Math.Abs(heights[0] * b - heights[1] * a) <= a + b, $"{a} -> {heights[0]} px, {b} -> {heights[1]} px");
        Assert.True(Math.Max(heights[0], heights[1]) >= plot.Height / 2); // the axis is scaled to the data
    }

    [Property(MaxTest = 200)]
    public void Axis_scales_are_nice_and_tight(int maxSeed)
    {
        double max = Math.Abs(maxSeed % 1_000_000) / 100.0 + 0.01;
        var scale = AxisScale.For(max);
        Assert.True(scale.Top >= max);
        Assert.True(scale.Top - scale.Step < max);
        double mantissa = scale.Step / Math.Pow(10, Math.Floor(Math.Log10(scale.Step)));
        Assert.Contains(Math.Round(mantissa, 6), new[] { 1.0, 2.0, 5.0 });
        Assert.InRange(scale.Ticks().Count(), 2, 12);
    }

    [Fact]
    public void Labels_are_short()
    {
        Assert.Equal(["0", "2.5", "12.5", "250", "12K", "3.2M"], new[] { 0, 2.5, 12.5, 250, 12_000, 3_200_000 }.Select(AxisScale.Label));
    }

    [Fact]
    public void The_serving_figure_has_four_panels_and_marks_the_objective()
    {
        var slo = new ServingSlo(500, 40);
        LatencyDistribution D(double x) => new(10, x, x, 2 * x, 3 * x, 3 * x);
        var runs = new List<ServingSummary>();
        foreach (double rate in new[] { 1.0, 2.0, 4.0 })
            foreach (string name in new[] { "colocated, 1 GPU", "colocated, 2 replicas", "disaggregated" })
                runs.Add(new ServingSummary(name, rate, 10, 10, 0, 0, 10, 1, 300, 8, 0.8, 0.8, D(100 * rate), D(10 * rate), D(12), D(2000), []));

        var canvas = ServingCharts.Render("TEST", runs, slo);
        Assert.Equal((1200, 30 + 2 * 340), (canvas.Width, canvas.Height));
        int objective = 0, seriesColours = 0;
        for (int y = 0; y < canvas.Height; y++)
            for (int x = 0; x < canvas.Width; x++)
            {
                var p = canvas.GetPixel(x, y);
                if (p == Rgb.Objective) objective++;
                if (p == Rgb.Palette[2]) seriesColours++;
            }
        Assert.True(objective > 200, "the dashed objective lines are drawn"); // two panels, about 270 pixels each
        Assert.True(seriesColours > 0, "the third configuration has a line");
        var image = PngReader.Read(canvas.ToPng());
        Assert.Equal((1200, 710), (image.Width, image.Height));
    }
}
