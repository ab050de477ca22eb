using System.Diagnostics;

namespace Disagg.GpuBench;

/// <summary>What one replayed request saw.</summary>
internal sealed record RequestOutcome(double TtftMs, double MeanItlMs, double EndToEndMs, int Tokens, string? Error);

/// <summary>The serving summary of one configuration under one workload.</summary>
internal sealed record ServingSummary(
    string Configuration, int Requests, int Failed, double DurationSeconds, double OutputTokensPerSecond,
    double TtftP50Ms, double TtftP90Ms, double TtftP99Ms, double ItlP50Ms, double ItlP90Ms, double ItlP99Ms,
    double GoodputRequestsPerSecond, double SloTtftMs, double SloItlMs);

/// <summary>Replays a workload against an engine in real time and summarises latency percentiles, throughput and goodput.</summary>
internal static class ServingRunner
{
    public static async Task<ServingSummary> RunAsync(string name, IInferenceEngine engine, IReadOnlyList<WorkloadRequest> workload,
        double sloTtftMs, double sloItlMs)
    {
        var start = Stopwatch.GetTimestamp();
        var tasks = new List<Task<RequestOutcome>>(workload.Count);
        foreach (var request in workload)
        {
            var wait = TimeSpan.FromSeconds(request.ArrivalSeconds) - Stopwatch.GetElapsedTime(start);
            if (wait > TimeSpan.Zero) await Task.Delay(wait);
            tasks.Add(Task.Run(() => One(engine, request)));
        }
        var outcomes = await Task.WhenAll(tasks);
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return Summarise(name, outcomes, seconds, sloTtftMs, sloItlMs);
    }

    /// <summary>Percentiles (nearest rank), throughput and goodput: requests per second that met both SLOs.</summary>
    public static ServingSummary Summarise(string name, IReadOnlyList<RequestOutcome> outcomes, double seconds, double sloTtftMs, double sloItlMs)
    {
        var ok = outcomes.Where(o => o.Error is null).ToList();
        double[] ttft = [.. ok.Select(o => o.TtftMs).Order()];
        double[] itl = [.. ok.Where(o => o.Tokens > 1).Select(o => o.MeanItlMs).Order()];
        int good = ok.Count(o => o.TtftMs <= sloTtftMs && (o.Tokens <= 1 || o.MeanItlMs <= sloItlMs));
        return new ServingSummary(name, outcomes.Count, outcomes.Count - ok.Count, seconds, ok.Sum(o => o.Tokens) / seconds,
            Percentile(ttft, 50), Percentile(ttft, 90), Percentile(ttft, 99), Percentile(itl, 50), Percentile(itl, 90), Percentile(itl, 99),
            good / seconds, sloTtftMs, sloItlMs);
    }

    public static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Length) - 1, 0, sorted.Length - 1)];

    private static async Task<RequestOutcome> One(IInferenceEngine engine, WorkloadRequest request)
    {
        var sampling = SamplingParameters.Greedy with { MaxTokens = request.OutputTokens, IgnoreEndOfSequence = true };
        long begin = Stopwatch.GetTimestamp(), first = 0, last = 0;
        int tokens = 0;
        try
        {
            await foreach (var _ in engine.GenerateAsync(new InferenceRequest(request.Prompt, sampling)))
            {
                last = Stopwatch.GetTimestamp();
                if (tokens++ == 0) first = last;
            }
            double Ms(long a, long b) => Stopwatch.GetElapsedTime(a, b).TotalMilliseconds;
            return new RequestOutcome(Ms(begin, first), tokens > 1 ? Ms(first, last) / (tokens - 1) : 0, Ms(begin, last), tokens, null);
        }
        catch (Exception e) when (e is DisaggException or OperationCanceledException)
        {
            return new RequestOutcome(0, 0, 0, tokens, e.Message);
        }
    }
}
