using System.Diagnostics;
using Disagg.Scheduling;

namespace Disagg.GpuBench;

/// <summary>
/// Wraps the engine's executor to split each decode step's time in two: inside <see cref="IModelExecutor.Execute(ScheduledBatch, Span{int})"/>
/// (inputs uploaded, the step launched, the sampled tokens read back: the device's share) and between two steps (the
/// engine's own host work: completing the step, streaming tokens, scheduling the next). Records only while
/// <see cref="Recording"/> is set, and only steps whose every chunk is one token (decode-only).
/// </summary>
internal sealed class StepTimer(IModelExecutor inner) : DelegatingExecutor(inner)
{
    private readonly List<(double ExecuteMs, double GapMs, int Batch)> _steps = [];
    private long _lastEnd;

    public bool Recording { get; set; }

    public override void Execute(ScheduledBatch batch, Span<int> sampledTokens) => Timed(batch, sampledTokens, null);

    public override void Execute(ScheduledBatch batch, Span<int> sampledTokens, Action<int> layerIssued) => Timed(batch, sampledTokens, layerIssued);

    private void Timed(ScheduledBatch batch, Span<int> sampled, Action<int>? layerIssued)
    {
        long start = Stopwatch.GetTimestamp();
        if (layerIssued is null) Inner.Execute(batch, sampled);
        else Inner.Execute(batch, sampled, layerIssued);
        long end = Stopwatch.GetTimestamp();
        bool decodeOnly = true;
        foreach (var c in batch.Chunks) decodeOnly &= c.Count == 1;
        if (Recording && decodeOnly && _lastEnd != 0)
            lock (_steps) _steps.Add((Stopwatch.GetElapsedTime(start, end).TotalMilliseconds, Stopwatch.GetElapsedTime(_lastEnd, start).TotalMilliseconds, batch.Count));
        _lastEnd = end;
    }

    /// <summary>Forgets what was recorded.</summary>
    public void Clear()
    {
        lock (_steps) _steps.Clear();
        _lastEnd = 0;
    }

    /// <summary>Medians and means of the recorded steps of <paramref name="batch"/> sequences.</summary>
    public Dictionary<string, object?> Summary(int batch)
    {
        List<(double ExecuteMs, double GapMs, int Batch)> steps;
        lock (_steps) steps = [.. _steps.Where(s => s.Batch == batch)];
        if (steps.Count == 0) return new() { ["steps"] = 0 };
        var execute = steps.Select(s => s.ExecuteMs).ToList();
        var gap = steps.Select(s => s.GapMs).ToList();
        return new()
        {
            ["steps"] = steps.Count,
            ["batch"] = batch,
            ["execute_ms_median"] = Median.Of(execute),
            ["execute_ms_mean"] = execute.Average(),
            ["between_steps_ms_median"] = Median.Of(gap),
            ["between_steps_ms_mean"] = gap.Average(),
            ["definition"] = "execute: inside IModelExecutor.Execute (upload, launch, wait for and read the sampled tokens); between steps: " +
                "from the end of one decode step's Execute to the start of the next (the engine's host work, the device idle)",
        };
    }
}
