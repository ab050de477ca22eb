using Disagg.Benchmarks.Serving;

namespace Disagg.Benchmarks.Tests.Serving;

public class ServingRunnerTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task Every_request_is_replayed_and_every_token_gap_recorded()
    {
        var engine = new ScriptedEngine();
        WorkloadRequest[] workload = [.. Enumerable.Range(0, 12).Select(i => new WorkloadRequest(0, [i, 1, 2], 1 + i % 5))];
        var run = await ServingRunner.RunAsync(engine, workload, Generous);

        Assert.Equal(12, run.Outcomes.Count);
        Assert.True(run.DurationSeconds > 0);
        for (int i = 0; i < 12; i++)
        {
            var o = run.Outcomes[i];
            Assert.Equal(i, o.Index);
            Assert.Equal(RequestStatus.Completed, o.Status);
            Assert.Equal(workload[i].OutputTokens, o.Tokens);
            Assert.Equal(o.Tokens - 1, o.GapsMs.Length);
            Assert.All(o.GapsMs, g => Assert.True(g >= 0));
            Assert.NotNull(o.TtftMs);
            Assert.True(o.EndToEndMs >= o.TtftMs);
            Assert.Null(o.Error);
        }
    }

    [Fact]
    public async Task Refusals_and_failures_are_told_apart()
    {
        var engine = new ScriptedEngine();
        WorkloadRequest[] workload = [new(0, [5], 3), new(0, [ScriptedEngine.Overloaded], 3), new(0, [ScriptedEngine.Broken], 6)];
        var run = await ServingRunner.RunAsync(engine, workload, Generous);
        Assert.Equal([RequestStatus.Completed, RequestStatus.Rejected, RequestStatus.Failed], run.Outcomes.Select(o => o.Status));
        Assert.Contains("device lost", run.Outcomes[2].Error, StringComparison.Ordinal);
        Assert.Equal(2, run.Outcomes[2].Tokens); // what it streamed before failing still counts
        Assert.Null(run.Outcomes[1].TtftMs);

        var summary = ServingSummary.Of("scripted", 1, run.Outcomes, run.DurationSeconds, new ServingSlo(10_000, 10_000));
        Assert.Equal((1, 1, 1), (summary.Completed, summary.Rejected, summary.Failed));
        Assert.Equal(2, summary.Errors.Count);
    }

    [Fact]
    public async Task The_time_limit_cancels_what_is_still_running()
    {
        var run = await ServingRunner.RunAsync(new ScriptedEngine(), [new(0, [ScriptedEngine.Stuck], 3)], TimeSpan.FromMilliseconds(100));
        Assert.Equal(RequestStatus.TimedOut, run.Outcomes[0].Status);
        Assert.Equal(0, run.Outcomes[0].Tokens);
    }

    [Fact]
    public async Task A_follow_up_turn_waits_for_the_turn_it_answers()
    {
        var engine = new ScriptedEngine();
        // Both due at once; the second answers the first, whose stream yields 40 times before it ends.
        WorkloadRequest[] workload = [new(0, [10], 40), new(0, [11], 3, PreviousTurn: 0), new(0, [12], 3)];
        var run = await ServingRunner.RunAsync(engine, workload, Generous);

        var events = engine.Events.ToList();
        Assert.True(events.IndexOf("start 11") > events.IndexOf("end 10"), string.Join(" | ", events));
        // Its latency is counted from when it could be sent (the first turn's end), not from its scheduled arrival.
        var first = run.Outcomes[0];
        Assert.True(run.Outcomes[1].StartSeconds >= first.StartSeconds + first.EndToEndMs!.Value / 1e3 - 1e-6);
        Assert.Equal(0, run.Outcomes[2].StartSeconds);
    }

    [Fact]
    public async Task A_follow_up_of_a_later_request_is_refused()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => ServingRunner.RunAsync(new ScriptedEngine(), [new(0, [1], 2, PreviousTurn: 0)], Generous));
    }

    [Fact]
    public async Task Warm_up_runs_every_prompt_and_lets_errors_out()
    {
        var engine = new ScriptedEngine();
        await ServingRunner.WarmUpAsync(engine, [[1], [2], [3]], 4);
        Assert.Equal(3, engine.Events.Count(e => e.StartsWith("end", StringComparison.Ordinal)));
        await Assert.ThrowsAsync<EngineOverloadedException>(() => ServingRunner.WarmUpAsync(engine, [[ScriptedEngine.Overloaded]], 4));
    }
}
