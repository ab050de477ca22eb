using System.Globalization;

namespace Disagg.Benchmarks.Serving.Charts;

/// <summary>A linear axis from 0 to <see cref="Top"/> with ticks every <see cref="Step"/>, both "nice" (1, 2 or 5 times a power of ten).</summary>
public readonly record struct AxisScale(double Step, double Top)
{
    /// <summary>The scale for data up to <paramref name="max"/>, with about <paramref name="ticks"/> intervals. Non-positive or non-finite maxima give 0..1.</summary>
    public static AxisScale For(double max, int ticks = 5)
    {
        if (!(max > 0 && double.IsFinite(max))) max = 1;
        double raw = max / Math.Max(1, ticks);
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double fraction = raw / magnitude;
        double step = (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * magnitude;
        double top = Math.Ceiling(max / step - 1e-9) * step;
        return new AxisScale(step, top < max ? top + step : top); // the epsilon can land a rounding error below max
    }

    /// <summary>The tick values 0, Step, ..., Top.</summary>
    public IEnumerable<double> Ticks()
    {
        int count = (int)Math.Round(Top / Step);
        for (int i = 0; i <= count; i++) yield return i * Step;
    }

    /// <summary>A short label: "1.5", "250", "12K", "3.2M".</summary>
    public static string Label(double value)
    {
        double a = Math.Abs(value);
        if (a >= 1e6) return (value / 1e6).ToString("0.#", CultureInfo.InvariantCulture) + "M";
        if (a >= 1e4) return (value / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + "K";
        return value.ToString(a >= 100 ? "0" : a >= 10 ? "0.#" : "0.##", CultureInfo.InvariantCulture);
    }
}
