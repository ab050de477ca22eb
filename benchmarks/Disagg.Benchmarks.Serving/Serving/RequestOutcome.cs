namespace Disagg.Benchmarks.Serving;

/// <summary>How a replayed request ended.</summary>
public enum RequestStatus
{
    /// <summary>It streamed all its tokens.</summary>
    Completed,

    /// <summary>The engine refused it (<see cref="EngineOverloadedException"/>).</summary>
    Rejected,

    /// <summary>It failed with an error.</summary>
    Failed,

    /// <summary>The run's time limit cancelled it.</summary>
    TimedOut,
}

/// <summary>What one replayed request saw, from the client's side.</summary>
/// <param name="Index">Its index in the workload.</param>
/// <param name="Status">How it ended.</param>
/// <param name="StartSeconds">When it was due, from the start of the replay: its arrival, or for a follow-up turn the later of its arrival and the end of the turn it answers.</param>
/// <param name="TtftMs">Time from <paramref name="StartSeconds"/> to the first token (null without a token).</param>
/// <param name="GapsMs">Every inter-token gap (token i minus token i-1), in milliseconds.</param>
/// <param name="EndToEndMs">Time from <paramref name="StartSeconds"/> to the last token (null without a token).</param>
/// <param name="Tokens">Tokens received.</param>
/// <param name="Error">The error, for a request that did not complete.</param>
public sealed record RequestOutcome(
    int Index, RequestStatus Status, double StartSeconds, double? TtftMs, double[] GapsMs, double? EndToEndMs, int Tokens, string? Error = null);
