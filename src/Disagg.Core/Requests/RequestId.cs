namespace Disagg;

/// <summary>
/// Identifies one inference request across engines, transports and processes.
/// A 128-bit value so that prefill and decode workers in different processes never collide
/// without coordinating.
/// </summary>
/// <param name="Value">The underlying identifier.</param>
public readonly record struct RequestId(Guid Value)
{
    /// <summary>Creates a new, unique request id.</summary>
    public static RequestId New() => new(Guid.NewGuid());

    /// <inheritdoc />
    public override string ToString() => Value.ToString("N")[..12];
}
