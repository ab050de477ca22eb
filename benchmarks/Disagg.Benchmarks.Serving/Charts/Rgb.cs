namespace Disagg.Benchmarks.Serving.Charts;

/// <summary>An 8-bit RGB colour.</summary>
public readonly record struct Rgb(byte R, byte G, byte B)
{
    /// <summary>White.</summary>
    public static Rgb White => new(255, 255, 255);

    /// <summary>Black.</summary>
    public static Rgb Black => new(0, 0, 0);

    /// <summary>Mid grey, for grid lines.</summary>
    public static Rgb Grid => new(225, 225, 225);

    /// <summary>Dark grey, for axes and text.</summary>
    public static Rgb Ink => new(40, 40, 40);

    /// <summary>Red, for objective lines.</summary>
    public static Rgb Objective => new(200, 30, 30);

    /// <summary>Distinct colours for series, in order (reused cyclically).</summary>
    public static IReadOnlyList<Rgb> Palette { get; } =
        [new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(148, 103, 189), new(140, 86, 75), new(23, 190, 207)];

    /// <summary>Light to dark blues for ordered series such as p50 / p90 / p99.</summary>
    public static IReadOnlyList<Rgb> Shades { get; } = [new(158, 202, 225), new(66, 146, 198), new(8, 69, 148)];
}
