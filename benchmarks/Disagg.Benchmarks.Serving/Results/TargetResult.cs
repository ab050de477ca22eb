namespace Disagg.Benchmarks.Serving.Results;

/// <summary>The baseline a target is read against, measured in the same run.</summary>
/// <param name="Name">What was measured (e.g. "HF transformers generate(), batch 1").</param>
/// <param name="Value">Its value, or null when it could not be measured.</param>
/// <param name="Unit">Its unit.</param>
/// <param name="Source">Where the number comes from (a file, a configuration of this run), or why it is missing.</param>
public sealed record TargetBaseline(string Name, double? Value, string Unit, string Source);

/// <summary>One performance target of an issue, as measured: the result files' <c>targets</c> entries.</summary>
/// <param name="Name">The target, in words.</param>
/// <param name="Value">The measured value (null when not measured).</param>
/// <param name="Unit">Its unit.</param>
/// <param name="Target">The bound it must meet, in the same unit (null when it depends on a baseline that is missing).</param>
/// <param name="Comparison">"&gt;=" or "&lt;=": how <paramref name="Value"/> must compare with <paramref name="Target"/>.</param>
/// <param name="Met">Whether it does (null when either number is missing).</param>
/// <param name="Baseline">The baseline measured in the same run.</param>
public sealed record TargetResult(string Name, double? Value, string Unit, double? Target, string Comparison, bool? Met, TargetBaseline Baseline)
{
    /// <summary>A target that <paramref name="value"/> must reach or exceed. A zero (or negative) value never meets one: nothing was achieved.</summary>
    public static TargetResult AtLeast(string name, double? value, string unit, double? target, TargetBaseline baseline) =>
        new(name, value, unit, target, ">=", value is { } v && target is { } t ? v > 0 && v >= t : null, baseline);

    /// <summary>A target that <paramref name="value"/> must not exceed.</summary>
    public static TargetResult AtMost(string name, double? value, string unit, double? target, TargetBaseline baseline) =>
        new(name, value, unit, target, "<=", value is { } v && target is { } t ? v <= t : null, baseline);
}
