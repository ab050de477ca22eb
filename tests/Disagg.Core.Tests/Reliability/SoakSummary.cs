using System.Text.Json;

namespace Disagg.Tests.Reliability;

/// <summary>What a soak run saw. <see cref="Lost"/>, <see cref="Diverged"/> and <see cref="LeakedBlocks"/> must be 0.</summary>
internal sealed record SoakSummary
{
    public int Requests { get; init; }
    public int Completed { get; init; }
    public int Cancelled { get; init; }
    /// <summary>Requests that failed with a typed Disagg error (allowed; with recovery on, faults should not produce any).</summary>
    public int FailedTyped { get; init; }
    /// <summary>Requests that ended any other way: an untyped exception, a stream without a finish, or a hang.</summary>
    public int Lost { get; init; }
    /// <summary>Requests that completed with a finish reason but whose tokens are not the reference engine's (checked ones only).</summary>
    public int Diverged { get; init; }
    public int TokensVerified { get; init; }
    public long TokensDelivered { get; init; }
    public IReadOnlyDictionary<string, long> CancelledAt { get; init; } = new Dictionary<string, long>();
    public IReadOnlyDictionary<string, long> FaultsInjected { get; init; } = new Dictionary<string, long>();
    public long Recoveries { get; init; }
    public long ExpiredKvLeases { get; init; }
    public int LeakedBlocks { get; init; }
    public long UnobservedTaskExceptions { get; init; }
    public double Seconds { get; init; }
    public IReadOnlyList<string> LostExamples { get; init; } = [];
    public IReadOnlyList<string> DivergedExamples { get; init; } = [];

    public string ToJson() => JsonSerializer.Serialize(this, new JsonSerializerOptions { WriteIndented = true });

    public override string ToString() =>
        $"requests {Requests}: completed {Completed}, cancelled {Cancelled} ({Join(CancelledAt)}), failed typed {FailedTyped}, lost {Lost}, diverged {Diverged}; " +
        $"faults injected: {Join(FaultsInjected)}; recoveries {Recoveries}, expired KV leases {ExpiredKvLeases}; " +
        $"tokens {TokensDelivered} ({TokensVerified} verified against the reference); leaked blocks {LeakedBlocks}; " +
        $"unobserved task exceptions {UnobservedTaskExceptions}; {Seconds:0.0} s";

    private static string Join(IReadOnlyDictionary<string, long> counts) => string.Join(", ", counts.Select(kv => $"{kv.Key} {kv.Value}"));
}
