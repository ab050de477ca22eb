namespace Disagg.Benchmarks.Serving.Charts;

/// <summary>A chart that draws itself into a rectangle of a canvas.</summary>
public interface IChart
{
    /// <summary>Draws the chart inside <paramref name="bounds"/> and returns its plot area (inside the axes).</summary>
    Rect Render(Canvas canvas, Rect bounds);
}
