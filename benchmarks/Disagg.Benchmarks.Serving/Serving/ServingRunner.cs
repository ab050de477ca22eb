using System.Diagnostics;

namespace Disagg.Benchmarks.Serving;

/// <summary>What a replay returns: every request's outcome and the run's length.</summary>
public sealed record ServingRun(IReadOnlyList<RequestOutcome> Outcomes, double DurationSeconds);

/// <summary>
/// Replays a workload against an engine in real time (open loop: requests are sent at their arrival times whatever the
/// engine's state, except follow-up turns, which wait for the turn they answer) and records what each request saw.
/// </summary>
public static class ServingRunner
{
    /// <summary>Runs <paramref name="workload"/> on <paramref name="engine"/>. Requests still running after <paramref name="timeout"/> are cancelled and counted as timed out.</summary>
    /// <exception cref="ArgumentException">A request names a previous turn that is not an earlier request.</exception>
    public static async Task<ServingRun> RunAsync(IInferenceEngine engine, IReadOnlyList<WorkloadRequest> workload, TimeSpan timeout,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(workload);
        for (int i = 0; i < workload.Count; i++)
            if (workload[i].PreviousTurn is int p && (p < 0 || p >= i))
                throw new ArgumentException($"Request {i} follows request {p}, which is not an earlier request.", nameof(workload));

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        long start = Stopwatch.GetTimestamp();
        var tasks = new Task<RequestOutcome>[workload.Count];
        for (int i = 0; i < workload.Count; i++)
        {
            var request = workload[i];
            var wait = TimeSpan.FromSeconds(request.ArrivalSeconds) - Stopwatch.GetElapsedTime(start);
            if (wait > TimeSpan.Zero)
            {
                try { await Task.Delay(wait, deadline.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) { } // past the deadline: the rest are sent and time out at once
            }
            Task<RequestOutcome>? previous = request.PreviousTurn is int p ? tasks[p] : null;
            int index = i;
            tasks[i] = Task.Run(() => OneAsync(engine, index, request, previous, start, deadline.Token), CancellationToken.None);
        }
        var outcomes = await Task.WhenAll(tasks).ConfigureAwait(false);
        return new ServingRun(outcomes, Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    /// <summary>Runs <paramref name="prompts"/> all at once with <paramref name="outputTokens"/> tokens each (warm-up before measuring); errors propagate.</summary>
    public static Task WarmUpAsync(IInferenceEngine engine, IEnumerable<int[]> prompts, int outputTokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(prompts);
        return Task.WhenAll(prompts.Select(async prompt =>
        {
            await foreach (var _ in engine.GenerateAsync(new InferenceRequest(prompt, Sampling(outputTokens)), cancellationToken).ConfigureAwait(false)) { }
        }));
    }

    private static SamplingParameters Sampling(int tokens) => SamplingParameters.Greedy with { MaxTokens = tokens, IgnoreEndOfSequence = true };

    private static async Task<RequestOutcome> OneAsync(IInferenceEngine engine, int index, WorkloadRequest request, Task<RequestOutcome>? previous,
        long start, CancellationToken deadline)
    {
        double startSeconds = request.ArrivalSeconds;
        if (previous is not null)
        {
            await previous.ConfigureAwait(false); // never faults: outcomes carry their errors
            startSeconds = Math.Max(startSeconds, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        long begin = start + (long)(startSeconds * Stopwatch.Frequency);
        var gaps = new double[Math.Max(0, request.OutputTokens - 1)];
        int tokens = 0;
        long first = 0, last = 0;
        double? Ms(long from, long to) => tokens == 0 ? null : Stopwatch.GetElapsedTime(from, to).TotalMilliseconds;
        RequestOutcome Outcome(RequestStatus status, string? error) =>
            new(index, status, startSeconds, Ms(begin, first), gaps[..Math.Max(0, Math.Min(gaps.Length, tokens - 1))], Ms(begin, last), tokens, error);
        try
        {
            await foreach (var _ in engine.GenerateAsync(new InferenceRequest(request.Prompt, Sampling(request.OutputTokens)), deadline).ConfigureAwait(false))
            {
                long now = Stopwatch.GetTimestamp();
                if (tokens == 0) first = now;
                else if (tokens - 1 < gaps.Length) gaps[tokens - 1] = Stopwatch.GetElapsedTime(last, now).TotalMilliseconds;
                last = now;
                tokens++;
            }
            return Outcome(RequestStatus.Completed, null);
        }
        catch (EngineOverloadedException e)
        {
            return Outcome(RequestStatus.Rejected, e.Message);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            return Outcome(RequestStatus.TimedOut, "cancelled at the run's time limit");
        }
#pragma warning disable CA1031 // a benchmark counts any failure of a request and goes on with the others
        catch (Exception e)
#pragma warning restore CA1031
        {
            return Outcome(RequestStatus.Failed, $"{e.GetType().Name}: {e.Message}");
        }
    }
}
