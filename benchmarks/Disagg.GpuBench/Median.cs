namespace Disagg.GpuBench;

/// <summary>The middle of repeated measurements (the upper middle for an even count).</summary>
internal static class Median
{
    public static double Of(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) throw new InvalidOperationException("No measurements to take the median of.");
        return sorted[sorted.Length / 2];
    }
}
