namespace Disagg.Tests.Reliability;

/// <summary>Where a soak request is cancelled, if at all.</summary>
internal enum CancelPoint { None, BeforeStart, MidPrefill, MidTransfer, MidDecode }

/// <summary>What happens to one soak request: where it is cancelled and which fault hits it (drawn from the request's own seed).</summary>
internal sealed record SoakPlan(CancelPoint Cancel, int CancelAfterTokens, TransferFault Transfer, bool PrefillGone)
{
    public static SoakPlan Draw(Random random, SoakOptions options)
    {
        double roll = random.NextDouble();
        var cancel = CancelPoint.None;
        foreach (var point in new[] { CancelPoint.BeforeStart, CancelPoint.MidPrefill, CancelPoint.MidTransfer, CancelPoint.MidDecode })
        {
            if (roll < options.CancelRatePerPoint) { cancel = point; break; }
            roll -= options.CancelRatePerPoint;
        }
        double fault = random.NextDouble();
        var transfer = fault < options.DropRate ? TransferFault.Drop
            : fault < options.DropRate + options.StallRate ? TransferFault.Stall
            : TransferFault.None;
        bool gone = transfer == TransferFault.None && fault < options.DropRate + options.StallRate + options.PrefillGoneRate;
        return new SoakPlan(cancel, random.Next(1, 5), transfer, gone);
    }
}

/// <summary>Knobs of a soak run.</summary>
internal sealed class SoakOptions
{
    public int Concurrency { get; init; } = 32;
    public int Seed { get; init; } = 1;
    /// <summary>Chance of each cancellation point (four of them).</summary>
    public double CancelRatePerPoint { get; init; } = 0.05;
    public double DropRate { get; init; } = 0.01;
    public double StallRate { get; init; } = 0.002;
    public double PrefillGoneRate { get; init; } = 0.01;
    /// <summary>The prefill side's KV lease; stalled transfers end when it expires.</summary>
    public TimeSpan KvLease { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Prompts with at most this many tokens uncached on the decode worker run there alone.</summary>
    public int LocalPrefillMaxUncachedTokens { get; init; } = 4;
    /// <summary>A request not done in this long is counted lost (a hang), not waited for.</summary>
    public TimeSpan RequestBound { get; init; } = TimeSpan.FromSeconds(120);
}
