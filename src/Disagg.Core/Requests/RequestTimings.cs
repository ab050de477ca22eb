using System.Diagnostics;

namespace Disagg;

/// <summary>
/// Per-request latency record: arrival, admission, and the time of every generated token, from which
/// time-to-first-token (TTFT) and inter-token latency (ITL) follow. Fill it with <see cref="Record"/> as tokens stream.
/// Not thread-safe: one consumer per request.
/// </summary>
public sealed class RequestTimings
{
    private long[] _tokenTimestamps;
    private int _count;

    /// <summary>Starts a record for a request that arrived at <paramref name="arrivalTimestamp"/> (a <see cref="Stopwatch"/> timestamp).</summary>
    public RequestTimings(long arrivalTimestamp, int expectedTokens = 16)
    {
        ArrivalTimestamp = arrivalTimestamp;
        _tokenTimestamps = new long[Math.Max(1, expectedTokens)];
    }

    /// <summary>When the request arrived.</summary>
    public long ArrivalTimestamp { get; }

    /// <summary>When the request was first scheduled on an engine (0 if never).</summary>
    public long ScheduledTimestamp { get; set; }

    /// <summary>Number of tokens recorded.</summary>
    public int TokenCount => _count;

    /// <summary>Timestamps of the recorded tokens, in order.</summary>
    public ReadOnlySpan<long> TokenTimestamps => _tokenTimestamps.AsSpan(0, _count);

    /// <summary>Records a generated token's timestamp.</summary>
    public void Record(in GeneratedToken token)
    {
        if (_count == _tokenTimestamps.Length)
            Array.Resize(ref _tokenTimestamps, _tokenTimestamps.Length * 2);
        _tokenTimestamps[_count++] = token.Timestamp;
    }

    /// <summary>Time spent queued before the first scheduling, or null if never scheduled.</summary>
    public TimeSpan? QueueTime => ScheduledTimestamp == 0 ? null : Stopwatch.GetElapsedTime(ArrivalTimestamp, ScheduledTimestamp);

    /// <summary>Time to first token, or null before the first token.</summary>
    public TimeSpan? TimeToFirstToken => _count == 0 ? null : Stopwatch.GetElapsedTime(ArrivalTimestamp, _tokenTimestamps[0]);

    /// <summary>Gap between token <paramref name="index"/> and the one before it (index ≥ 1).</summary>
    public TimeSpan InterTokenLatency(int index)
    {
        if (index < 1 || index >= _count) throw new ArgumentOutOfRangeException(nameof(index));
        return Stopwatch.GetElapsedTime(_tokenTimestamps[index - 1], _tokenTimestamps[index]);
    }

    /// <summary>Mean gap between consecutive tokens after the first (time per output token), or null with fewer than two tokens.</summary>
    public TimeSpan? MeanInterTokenLatency =>
        _count < 2 ? null : Stopwatch.GetElapsedTime(_tokenTimestamps[0], _tokenTimestamps[_count - 1]) / (_count - 1);

    /// <summary>Output tokens per second from the first token to the last (decode speed), or null with fewer than two tokens.</summary>
    public double? DecodeTokensPerSecond =>
        _count < 2 ? null : (_count - 1) / Stopwatch.GetElapsedTime(_tokenTimestamps[0], _tokenTimestamps[_count - 1]).TotalSeconds;

    /// <summary>Time from arrival to the last token, or null before the first token.</summary>
    public TimeSpan? EndToEnd => _count == 0 ? null : Stopwatch.GetElapsedTime(ArrivalTimestamp, _tokenTimestamps[_count - 1]);
}
