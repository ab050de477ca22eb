using System.Globalization;

namespace Disagg.GpuBench;

/// <summary>The command line: a mode, then "--flag value" pairs and bare switches. Bad values throw <see cref="ArgumentException"/> naming the flag.</summary>
internal sealed class BenchArguments(string[] args)
{
    public string Mode => args[0];

    public bool Has(string flag) => Array.IndexOf(args, flag) >= 0;

    public string? Get(string flag)
    {
        int i = Array.IndexOf(args, flag);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    public string Require(string flag) => Get(flag) ?? throw new ArgumentException($"{flag} is required.");

    public int Int(string flag, int fallback) => Get(flag) is not { } s ? fallback
        : int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v
        : throw new ArgumentException($"{flag} expects an integer, got '{s}'.");

    public double Double(string flag, double fallback) => Get(flag) is not { } s ? fallback : ParseDouble(flag, s);

    /// <summary>A comma-separated list of numbers, e.g. "--rates 1,2,4".</summary>
    public double[] Doubles(string flag, double[] fallback) =>
        Get(flag) is not { } s ? fallback : [.. s.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(x => ParseDouble(flag, x))];

    /// <summary>A comma-separated pair of integers, e.g. "--chat-user-tokens 16,256".</summary>
    public (int Min, int Max) IntRange(string flag, (int, int) fallback)
    {
        if (Get(flag) is not { } s) return fallback;
        var parts = s.Split(',');
        if (parts.Length != 2 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out int min) || !int.TryParse(parts[1], CultureInfo.InvariantCulture, out int max))
            throw new ArgumentException($"{flag} expects MIN,MAX (two integers), got '{s}'.");
        return (min, max);
    }

    public string[] List(string flag, string[] fallback) =>
        Get(flag) is not { } s ? fallback : [.. s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    /// <summary>The command as typed, for result files (arguments with spaces quoted).</summary>
    public string CommandLine => "Disagg.GpuBench " + string.Join(' ', args.Select(a => a.Contains(' ') ? $"\"{a}\"" : a));

    private static double ParseDouble(string flag, string s) =>
        double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v) ? v
        : throw new ArgumentException($"{flag} expects a number, got '{s}'.");
}
