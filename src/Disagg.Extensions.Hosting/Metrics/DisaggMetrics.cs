using System.Diagnostics;
using System.Diagnostics.Metrics;
using Disagg.PrefixCache;

namespace Disagg.Extensions.Hosting.Metrics;

/// <summary>
/// Disagg's instruments, on one <see cref="Meter"/> named <see cref="MeterName"/>. Request instruments follow the
/// OpenTelemetry gen_ai semantic conventions (<c>gen_ai.server.time_to_first_token</c>,
/// <c>gen_ai.server.time_per_output_token</c>, <c>gen_ai.server.request.duration</c>, <c>gen_ai.client.token.usage</c>);
/// engine state is published as <c>disagg.*</c> observable gauges, and KV transfers as <c>disagg.kv_transfer.*</c>.
/// Registered as a singleton by <c>AddDisaggregatedInference</c>; thread-safe.
/// </summary>
public sealed class DisaggMetrics : IDisposable
{
    /// <summary>The meter's name: <c>"Disagg"</c>. Subscribe to it in OpenTelemetry with <c>AddMeter(DisaggMetrics.MeterName)</c>.</summary>
    public const string MeterName = "Disagg";

    /// <summary>The provider name reported in <c>gen_ai.provider.name</c> and in chat client metadata: <c>"disagg"</c>.</summary>
    public const string ProviderName = "disagg";

    private readonly bool _ownsMeter;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Histogram<double> _timePerOutputToken;
    private readonly Histogram<double> _requestDuration;
    private readonly Histogram<int> _tokenUsage;
    private readonly Counter<long> _transferBytes;
    private readonly Counter<long> _transferBlocks;
    private readonly Histogram<double> _transferDuration;
    private volatile IEngineStateSource? _source;

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/> (the host's, so that its listeners see them),
    /// or on a meter of its own when <paramref name="meterFactory"/> is null.</summary>
    public DisaggMetrics(IMeterFactory? meterFactory = null)
    {
        var options = new MeterOptions(MeterName) { Version = typeof(DisaggMetrics).Assembly.GetName().Version?.ToString() };
        _ownsMeter = meterFactory is null;
        Meter = meterFactory?.Create(options) ?? new Meter(options);

        _timeToFirstToken = Meter.CreateHistogram("gen_ai.server.time_to_first_token", "s",
            "Time from a request's arrival to its first generated token.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] });
        _timePerOutputToken = Meter.CreateHistogram("gen_ai.server.time_per_output_token", "s",
            "Mean time between output tokens after the first one, per request.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5] });
        _requestDuration = Meter.CreateHistogram("gen_ai.server.request.duration", "s",
            "Time from a request's arrival to the end of its generation.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92] });
        _tokenUsage = Meter.CreateHistogram<int>("gen_ai.client.token.usage", "{token}",
            "Tokens per request: prompt (gen_ai.token.type=input) and generated (gen_ai.token.type=output).",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576] });

        Meter.CreateObservableGauge("disagg.requests.waiting", ObserveWaiting, "{request}", "Requests queued, not yet admitted.");
        Meter.CreateObservableGauge("disagg.sequences.running", ObserveRunning, "{sequence}", "Sequences admitted and holding KV.");
        Meter.CreateObservableGauge("disagg.kv_cache.usage", ObserveKvUsage, "1", "Fraction of KV blocks in use (cached prefixes count as used).");
        Meter.CreateObservableGauge("disagg.prefix_cache.hit_rate", ObservePrefixHitRate, "1", "Fraction of prompt tokens found in the prefix cache since start.");

        _transferBytes = Meter.CreateCounter<long>("disagg.kv_transfer.size", "By", "Bytes of KV moved from prefill to decode engines.");
        _transferBlocks = Meter.CreateCounter<long>("disagg.kv_transfer.blocks", "{block}", "KV blocks moved from prefill to decode engines.");
        _transferDuration = Meter.CreateHistogram("disagg.kv_transfer.duration", "s", "Wall time of one KV transfer.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1] });
    }

    /// <summary>The meter every Disagg instrument lives on.</summary>
    public Meter Meter { get; }

    /// <summary>
    /// Records one KV transfer (the disaggregated coordinator calls this through <c>DisaggregationOptions.TransferCompleted</c>;
    /// custom compositions may call it themselves). Cheap; never throws.
    /// </summary>
    /// <param name="result">What the transfer moved and how long it took.</param>
    /// <param name="transport">The transport's name (<see cref="IKvTransport.Name"/>), reported as <c>disagg.transport</c>.</param>
    public void RecordKvTransfer(KvTransferResult result, string? transport = null)
    {
        var tag = new KeyValuePair<string, object?>("disagg.transport", transport ?? "unknown");
        _transferBytes.Add(result.Bytes, tag);
        _transferBlocks.Add(result.Blocks, tag);
        _transferDuration.Record(result.Elapsed.TotalSeconds, tag);
    }

    /// <summary>Records one finished request (completed, failed or cancelled).</summary>
    internal void RecordRequest(in RequestOutcome outcome)
    {
        var tags = new TagList
        {
            { "gen_ai.operation.name", outcome.Operation },
            { "gen_ai.provider.name", ProviderName },
            { "gen_ai.request.model", outcome.Model },
        };
        if (outcome.ErrorType is { } error) tags.Add("error.type", error);
        _requestDuration.Record(Stopwatch.GetElapsedTime(outcome.ArrivalTimestamp, outcome.EndTimestamp).TotalSeconds, tags);
        if (outcome.OutputTokens == 0) return;

        var timingTags = new TagList
        {
            { "gen_ai.operation.name", outcome.Operation },
            { "gen_ai.provider.name", ProviderName },
            { "gen_ai.request.model", outcome.Model },
        };
        _timeToFirstToken.Record(Stopwatch.GetElapsedTime(outcome.ArrivalTimestamp, outcome.FirstTokenTimestamp).TotalSeconds, timingTags);
        if (outcome.OutputTokens >= 2)
        {
            double perToken = Stopwatch.GetElapsedTime(outcome.FirstTokenTimestamp, outcome.LastTokenTimestamp).TotalSeconds / (outcome.OutputTokens - 1);
            _timePerOutputToken.Record(perToken, timingTags);
        }
        var input = timingTags;
        input.Add("gen_ai.token.type", "input");
        _tokenUsage.Record(outcome.InputTokens, input);
        var output = timingTags;
        output.Add("gen_ai.token.type", "output");
        _tokenUsage.Record(outcome.OutputTokens, output);
    }

    /// <summary>Sets what the gauges observe (the hosted engines); null stops them reporting.</summary>
    internal void SetStateSource(IEngineStateSource? source) => _source = source;

    private IEnumerable<Measurement<int>> ObserveWaiting() =>
        _source?.TryGetState() is { } s ? [new Measurement<int>(s.Load.WaitingRequests, ModelTag(s))] : [];

    private IEnumerable<Measurement<int>> ObserveRunning() =>
        _source?.TryGetState() is { } s ? [new Measurement<int>(s.Load.RunningSequences, ModelTag(s))] : [];

    private IEnumerable<Measurement<double>> ObserveKvUsage() =>
        _source?.TryGetState() is { } s ? [new Measurement<double>(s.Load.KvUsage, ModelTag(s))] : [];

    private IEnumerable<Measurement<double>> ObservePrefixHitRate() =>
        _source?.TryGetState() is { } s && s.PrefixCachingEnabled ? [new Measurement<double>(s.PrefixCache.HitRate, ModelTag(s))] : [];

    private static KeyValuePair<string, object?> ModelTag(in EngineState state) => new("gen_ai.request.model", state.Model);

    /// <summary>Disposes the meter when this instance created it (a factory's meters are disposed with the factory).</summary>
    public void Dispose()
    {
        _source = null;
        if (_ownsMeter) Meter.Dispose();
    }
}

/// <summary>What the gauges read: the engines' load and prefix-cache counters.</summary>
internal interface IEngineStateSource
{
    /// <summary>The current state, or null while no engine is loaded.</summary>
    EngineState? TryGetState();
}

/// <summary>A snapshot of the hosted engines.</summary>
internal readonly record struct EngineState(string Model, EngineLoad Load, PrefixCacheStatistics PrefixCache, bool PrefixCachingEnabled);

/// <summary>One request's measurements, recorded when it ends.</summary>
internal readonly record struct RequestOutcome(
    string Operation, string Model, long ArrivalTimestamp, long FirstTokenTimestamp, long LastTokenTimestamp, long EndTimestamp,
    int InputTokens, int OutputTokens, string? ErrorType);
