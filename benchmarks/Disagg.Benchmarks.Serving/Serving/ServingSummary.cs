namespace Disagg.Benchmarks.Serving;

/// <summary>The result of replaying one workload at one rate against one configuration.</summary>
/// <param name="Configuration">The configuration's name.</param>
/// <param name="OfferedRate">The workload's mean arrival rate (requests per second).</param>
/// <param name="Requests">Requests in the workload.</param>
/// <param name="Completed">Requests that streamed all their tokens.</param>
/// <param name="Rejected">Requests the engine refused as overloaded.</param>
/// <param name="Failed">Requests that failed with an error or ran out of time.</param>
/// <param name="DurationSeconds">From the start of the replay to the last request's end.</param>
/// <param name="RequestThroughput">Completed requests per second.</param>
/// <param name="OutputTokensPerSecond">Tokens received (all requests) per second.</param>
/// <param name="GoodRequests">Requests that met the objective.</param>
/// <param name="SloAttainment">Good requests over all requests.</param>
/// <param name="Goodput">Good requests per second.</param>
/// <param name="TtftMs">Time to first token over completed requests.</param>
/// <param name="ItlMs">Every inter-token gap of every completed request (not per-request means).</param>
/// <param name="RequestItlMs">The objective's per-request ITL statistic over completed requests.</param>
/// <param name="EndToEndMs">End-to-end latency over completed requests.</param>
/// <param name="Errors">Up to five distinct error messages.</param>
public sealed record ServingSummary(
    string Configuration, double OfferedRate, int Requests, int Completed, int Rejected, int Failed, double DurationSeconds,
    double RequestThroughput, double OutputTokensPerSecond, int GoodRequests, double SloAttainment, double Goodput,
    LatencyDistribution TtftMs, LatencyDistribution ItlMs, LatencyDistribution RequestItlMs, LatencyDistribution EndToEndMs,
    IReadOnlyList<string> Errors)
{
    /// <summary>Engine counters read after the run (prefix-cache hits, KV transfers, ...), by name.</summary>
    public IReadOnlyDictionary<string, double>? Engine { get; init; }

    /// <summary>Summarises <paramref name="outcomes"/> of a run that lasted <paramref name="durationSeconds"/>.</summary>
    public static ServingSummary Of(string configuration, double offeredRate, IReadOnlyList<RequestOutcome> outcomes, double durationSeconds, ServingSlo slo)
    {
        ArgumentNullException.ThrowIfNull(outcomes);
        ArgumentNullException.ThrowIfNull(slo);
        if (!(durationSeconds > 0)) throw new ArgumentOutOfRangeException(nameof(durationSeconds), durationSeconds, "Must be positive.");
        var completed = outcomes.Where(o => o.Status == RequestStatus.Completed).ToList();
        int good = completed.Count(slo.IsMetBy);
        return new ServingSummary(configuration, offeredRate, outcomes.Count, completed.Count,
            outcomes.Count(o => o.Status == RequestStatus.Rejected),
            outcomes.Count(o => o.Status is RequestStatus.Failed or RequestStatus.TimedOut),
            durationSeconds, completed.Count / durationSeconds, outcomes.Sum(o => (long)o.Tokens) / durationSeconds, good, outcomes.Count == 0 ? 0 : (double)good / outcomes.Count, good / durationSeconds,
            LatencyDistribution.Of(completed.Where(o => o.TtftMs is not null).Select(o => o.TtftMs!.Value)),
            LatencyDistribution.Of(completed.SelectMany(o => o.GapsMs)),
            LatencyDistribution.Of(completed.Select(slo.RequestItl).OfType<double>()),
            LatencyDistribution.Of(completed.Where(o => o.EndToEndMs is not null).Select(o => o.EndToEndMs!.Value)),
            [.. outcomes.Select(o => o.Error).OfType<string>().Distinct().Take(5)]);
    }
}
