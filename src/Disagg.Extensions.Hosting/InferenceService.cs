using System.Diagnostics;
using System.Runtime.CompilerServices;
using Disagg.Extensions.Hosting.Metrics;
using Disagg.Kv;
using Disagg.PrefixCache;
using Disagg.Tokenization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Disagg.Extensions.Hosting;

/// <summary>
/// The hosted model: loads the engine(s) when the host starts, serves requests, and drains them when it stops. It is itself an
/// <see cref="IInferenceEngine"/> (registered as one), so callers never hold a null or half-built engine: a request that arrives
/// before the model is loaded waits for it, and fails with <see cref="ModelLoadFailedException"/> if loading failed or with
/// <see cref="EngineStoppedException"/> once the host is stopping.
/// </summary>
/// <remarks>
/// Registered as a singleton by <c>AddDisaggregatedInference</c>; its lifetime is driven by a hosted service. Thread-safe.
/// </remarks>
public sealed partial class InferenceService : IInferenceEngine, IEngineStateSource, IAsyncDisposable, IDisposable
{
    private readonly DisaggregatedInferenceOptions _options;
    private readonly EngineFactory _factory;
    private readonly DisaggMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource<LoadedModel> _model = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _admissionClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _abort = new();
    private readonly Lock _gate = new();
    private Task? _loading;
    private Task? _stopping;
    private LoadedModel? _loaded;
    private MeteredInferenceEngine? _metered;
    private int _inFlight;
    private bool _admitting = true;
    private volatile InferenceStatus _status = InferenceStatus.NotStarted;

    /// <summary>Creates the service (the container does this); nothing is loaded until <see cref="StartAsync"/>.</summary>
    public InferenceService(IOptions<DisaggregatedInferenceOptions> options, DisaggMetrics metrics, ILogger<InferenceService>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(metrics);
        _options = options.Value;
        _metrics = metrics;
        _factory = new EngineFactory(metrics);
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        ModelId = _options.ModelId ?? ModelIdOf(_options.ModelPath);
        metrics.SetStateSource(this);
    }

    /// <summary>The model's name: <see cref="DisaggregatedInferenceOptions.ModelId"/>, or the model directory's name.</summary>
    public string ModelId { get; }

    /// <summary>Where the service is in its lifecycle.</summary>
    public InferenceStatus Status => _status;

    /// <summary>Why loading failed (<see cref="InferenceStatus.Failed"/>), or null.</summary>
    public Exception? LoadError { get; private set; }

    /// <summary>True while requests are served: loaded and not stopping.</summary>
    public bool IsReady => _status == InferenceStatus.Ready;

    /// <summary>How the engines were composed (device, dtype, KV blocks), once loaded; null before.</summary>
    public string? Description => _loaded?.Description;

    /// <summary>The model's tokenizer.</summary>
    /// <exception cref="InvalidOperationException">The model is not loaded.</exception>
    public ModelTokenizer Tokenizer => Loaded.Tokenizer;

    /// <summary>The sampling a chat request starts from: <see cref="DisaggregatedInferenceOptions.DefaultMaxOutputTokens"/> and,
    /// with <see cref="DisaggregatedInferenceOptions.UseModelSamplingDefaults"/>, the model's generation_config.json.
    /// Throws <see cref="InvalidOperationException"/> until the model is loaded.</summary>
    public SamplingParameters SamplingDefaults => Loaded.SamplingDefaults;

    /// <summary>
    /// The <see cref="LlmEngine"/>s the service runs (one when colocated; prefill then decode when disaggregated), for inspection
    /// (load, prefix-cache statistics). Empty until loaded. Send requests through the service, not to these directly, so that they
    /// are measured and drained.
    /// </summary>
    public IReadOnlyList<LlmEngine> Engines => _loaded?.Workers ?? [];

    /// <summary>Requests admitted and not yet finished.</summary>
    public int InFlightRequests { get { lock (_gate) return _inFlight; } }

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">The model is not loaded.</exception>
    public KvCacheLayout KvLayout => Loaded.Engine.KvLayout;

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">The model is not loaded.</exception>
    public int MaxContextLength => Loaded.Engine.MaxContextLength;

    /// <summary>The engines' load, summed; all zero until loaded.</summary>
    public EngineLoad GetLoad() => _loaded?.Engine.GetLoad() ?? default;

    /// <summary>Prefix-cache counters summed over the engines; zero when prefix caching is off or nothing is loaded.</summary>
    public PrefixCacheStatistics PrefixCacheStatistics
    {
        get
        {
            long lookups = 0, queried = 0, hits = 0, inserted = 0, evicted = 0;
            foreach (var engine in Engines)
            {
                var s = engine.PrefixCacheStatistics;
                lookups += s.Lookups;
                queried += s.QueriedTokens;
                hits += s.HitTokens;
                inserted += s.InsertedBlocks;
                evicted += s.EvictedBlocks;
            }
            return new PrefixCacheStatistics(lookups, queried, hits, inserted, evicted);
        }
    }

    /// <summary>The options the service runs with.</summary>
    internal DisaggregatedInferenceOptions Options => _options;

    /// <summary>Completes when the service stops admitting requests (for tests of the drain).</summary>
    internal Task AdmissionClosed => _admissionClosed.Task;

    private LoadedModel Loaded => _loaded ?? throw new InvalidOperationException(
        $"The model '{ModelId}' is not loaded (status {_status}{(LoadError is null ? "" : $": {LoadError.Message}")}). Await WaitUntilReadyAsync first.");

    /// <summary>Waits until the model is loaded.</summary>
    /// <exception cref="ModelLoadFailedException">Loading failed.</exception>
    /// <exception cref="EngineStoppedException">The service stopped before the model was loaded.</exception>
    public async Task WaitUntilReadyAsync(CancellationToken cancellationToken = default) =>
        await _model.Task.WaitAsync(cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Generates the continuation of <paramref name="request"/>. Waits for the model if it is still loading.
    /// </summary>
    /// <exception cref="ModelLoadFailedException">The model failed to load.</exception>
    /// <exception cref="EngineStoppedException">The host is stopping (no new requests are admitted), or stopped this request after
    /// <see cref="DisaggregatedInferenceOptions.DrainTimeout"/>.</exception>
    /// <exception cref="EngineOverloadedException">The engine's waiting queue is full.</exception>
    /// <exception cref="InvalidRequestException">The request cannot be served (empty or oversized prompt, bad token ids).</exception>
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(InferenceRequest request, CancellationToken cancellationToken = default) =>
        GenerateAsync(request, MeteredInferenceEngine.TextCompletion, cancellationToken);

    /// <summary>Generates with <paramref name="operation"/> as the requests' gen_ai.operation.name.</summary>
    internal async IAsyncEnumerable<GeneratedToken> GenerateAsync(
        InferenceRequest request, string operation, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        await WaitUntilReadyAsync(cancellationToken).ConfigureAwait(false);
        var engine = _metered!;
        lock (_gate)
        {
            if (!_admitting) throw new EngineStoppedException($"The inference service for '{ModelId}' is stopping and admits no new requests.");
            _inFlight++;
        }
        try
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _abort.Token);
            var tokens = engine.GenerateAsync(request, operation, linked.Token).GetAsyncEnumerator(linked.Token);
            try
            {
                while (true)
                {
                    try
                    {
                        if (!await tokens.MoveNextAsync().ConfigureAwait(false)) break;
                    }
                    catch (OperationCanceledException ex) when (_abort.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                    {
                        throw new EngineStoppedException(
                            $"Request {request.Id} was cancelled because the host stopped and it did not finish within the drain timeout ({_options.DrainTimeout}).", ex);
                    }
                    yield return tokens.Current;
                }
            }
            finally
            {
                await tokens.DisposeAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            lock (_gate)
            {
                if (--_inFlight == 0 && !_admitting) _drained.TrySetResult();
            }
        }
    }

    /// <summary>The model and tokenizer, waiting for the load (for the chat client).</summary>
    internal async Task<LoadedModel> GetModelAsync(CancellationToken cancellationToken)
    {
        await WaitUntilReadyAsync(cancellationToken).ConfigureAwait(false);
        return _loaded!;
    }

    /// <summary>Starts loading the model on a thread-pool thread (once). The hosted service calls this.</summary>
    internal Task BeginLoading()
    {
        lock (_gate)
        {
            if (_loading is not null) return _loading;
            if (!_admitting)
            {
                return _loading = Task.CompletedTask; // stopped before it started: nothing to load
            }
            _status = InferenceStatus.Loading;
            return _loading = Task.Run(LoadAsync);
        }
    }

    /// <summary>Starts loading and, when <see cref="DisaggregatedInferenceOptions.WaitForModelOnStart"/>, waits for it.</summary>
    /// <exception cref="ModelLoadFailedException">Loading failed (only when waiting for it).</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        var loading = BeginLoading();
        if (!_options.WaitForModelOnStart) return;
        await loading.WaitAsync(cancellationToken).ConfigureAwait(false);
        await WaitUntilReadyAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task LoadAsync()
    {
        long started = Stopwatch.GetTimestamp();
        LogLoading(_logger, ModelId, _options.ModelPath, _options.Mode);
        LoadedModel loaded;
        try
        {
            // Reading weights blocks for a long time: give it a thread of its own rather than a pool thread.
            loaded = await Task.Factory.StartNew(() => _factory.Create(_options), CancellationToken.None,
                TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            FailLoad(ex);
            return;
        }
        try
        {
            if (_options.WarmUp) await WarmUpAsync(loaded).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await DisposeQuietlyAsync(loaded).ConfigureAwait(false);
            FailLoad(new DisaggException($"The warm-up generation failed: {ex.Message}", ex));
            return;
        }
        lock (_gate)
        {
            if (_admitting)
            {
                _loaded = loaded;
                _metered = new MeteredInferenceEngine(loaded.Engine, _metrics, ModelId);
                _status = InferenceStatus.Ready;
            }
        }
        if (_loaded is null)
        {
            // Stopped while loading: nobody will use these engines.
            await DisposeQuietlyAsync(loaded).ConfigureAwait(false);
            _model.TrySetException(new EngineStoppedException($"The inference service for '{ModelId}' stopped while the model was loading."));
            return;
        }
        LogLoaded(_logger, ModelId, loaded.Description, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        _model.TrySetResult(loaded);
    }

    private void FailLoad(Exception ex)
    {
        LoadError = ex;
        _status = InferenceStatus.Failed;
        LogLoadFailed(_logger, ex, ModelId, _options.ModelPath);
        _model.TrySetException(new ModelLoadFailedException(ModelId, _options.ModelPath, ex));
    }

    /// <summary>One tiny generation (a prefill and a decode step) on every engine, so that each device's first-use costs are paid now.</summary>
    private static async Task WarmUpAsync(LoadedModel loaded)
    {
        int[] prompt = [.. loaded.Tokenizer.Encode("Hello")];
        if (prompt.Length == 0) prompt = [0];
        foreach (var worker in loaded.Workers)
        {
            var request = new InferenceRequest(prompt, SamplingParameters.Greedy with { MaxTokens = 2 });
            await foreach (var _ in worker.GenerateAsync(request).ConfigureAwait(false))
            {
            }
        }
    }

    /// <summary>Stops admitting requests: from now on new ones fail with <see cref="EngineStoppedException"/>; those in flight go on.</summary>
    public void StopAdmitting()
    {
        lock (_gate)
        {
            if (!_admitting) return;
            _admitting = false;
            if (_status is InferenceStatus.Ready or InferenceStatus.Loading) _status = InferenceStatus.Stopping;
            if (_inFlight == 0) _drained.TrySetResult();
        }
        _admissionClosed.TrySetResult();
    }

    /// <summary>
    /// Drains and stops: stops admitting, waits up to <see cref="DisaggregatedInferenceOptions.DrainTimeout"/> (or until
    /// <paramref name="cancellationToken"/> fires) for requests in flight, cancels the rest (they fail with
    /// <see cref="EngineStoppedException"/>), and disposes the engines. Idempotent.
    /// </summary>
    public Task StopAsync(CancellationToken cancellationToken = default)
    {
        lock (_gate) _stopping ??= StopCoreAsync(cancellationToken);
        return _stopping;
    }

    private async Task StopCoreAsync(CancellationToken cancellationToken)
    {
        await Task.Yield(); // run outside the caller's lock
        StopAdmitting();
        Task? loading;
        lock (_gate) loading = _loading ??= Task.CompletedTask;
        if (loading.IsCompleted && !_model.Task.IsCompleted)
            _model.TrySetException(new EngineStoppedException($"The inference service for '{ModelId}' was stopped before it started."));
        try
        {
            // A load cannot be interrupted; LoadAsync disposes what it made if it finishes after this gives up.
            await loading.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        var loaded = _loaded;
        if (loaded is not null)
        {
            int inFlight = InFlightRequests;
            if (inFlight > 0) LogDraining(_logger, ModelId, inFlight, _options.DrainTimeout);
            bool drained;
            try
            {
                var drain = _drained.Task;
                if (_options.DrainTimeout == Timeout.InfiniteTimeSpan || _options.DrainTimeout.TotalMilliseconds > int.MaxValue)
                    await drain.WaitAsync(cancellationToken).ConfigureAwait(false);
                else
                    await drain.WaitAsync(_options.DrainTimeout, cancellationToken).ConfigureAwait(false);
                drained = true;
            }
            catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
            {
                drained = false;
            }
            if (!drained)
            {
                LogDrainTimedOut(_logger, ModelId, InFlightRequests);
                await _abort.CancelAsync().ConfigureAwait(false);
            }
            _metrics.SetStateSource(null);
            await DisposeQuietlyAsync(loaded).ConfigureAwait(false);
            LogStopped(_logger, ModelId);
        }
        if (_status != InferenceStatus.Failed) _status = InferenceStatus.Stopped;
    }

    private async Task DisposeQuietlyAsync(LoadedModel loaded)
    {
        try
        {
            await loaded.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogDisposeFailed(_logger, ex, ModelId);
        }
    }

    /// <summary>Stops the service as <see cref="StopAsync"/> would, without a drain deadline other than <see cref="DisaggregatedInferenceOptions.DrainTimeout"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _abort.Dispose();
    }

    /// <summary>Stops the service synchronously (for containers disposed with <see cref="IDisposable.Dispose"/>); prefer <see cref="DisposeAsync"/>.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    EngineState? IEngineStateSource.TryGetState()
    {
        if (_loaded is null || _status != InferenceStatus.Ready && _status != InferenceStatus.Stopping) return null;
        return new EngineState(ModelId, GetLoad(), PrefixCacheStatistics, _options.Scheduler.EnablePrefixCaching);
    }

    private static string ModelIdOf(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) return "model";
        string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(path));
        return string.IsNullOrEmpty(name) ? "model" : name;
    }

    [LoggerMessage(1, LogLevel.Information, "Loading model '{ModelId}' from {ModelPath} ({Mode}).")]
    private static partial void LogLoading(ILogger logger, string modelId, string modelPath, InferenceMode mode);

    [LoggerMessage(2, LogLevel.Information, "Model '{ModelId}' is ready: {Description}; loaded in {ElapsedMs:F0} ms.")]
    private static partial void LogLoaded(ILogger logger, string modelId, string description, double elapsedMs);

    [LoggerMessage(3, LogLevel.Error, "Model '{ModelId}' failed to load from {ModelPath}.")]
    private static partial void LogLoadFailed(ILogger logger, Exception error, string modelId, string modelPath);

    [LoggerMessage(4, LogLevel.Information, "Draining '{ModelId}': waiting up to {DrainTimeout} for {InFlight} request(s) in flight.")]
    private static partial void LogDraining(ILogger logger, string modelId, int inFlight, TimeSpan drainTimeout);

    [LoggerMessage(5, LogLevel.Warning, "Drain of '{ModelId}' did not finish in time: cancelling {InFlight} request(s).")]
    private static partial void LogDrainTimedOut(ILogger logger, string modelId, int inFlight);

    [LoggerMessage(6, LogLevel.Information, "Model '{ModelId}' stopped.")]
    private static partial void LogStopped(ILogger logger, string modelId);

    [LoggerMessage(7, LogLevel.Warning, "Disposing the engines of '{ModelId}' failed.")]
    private static partial void LogDisposeFailed(ILogger logger, Exception error, string modelId);
}

/// <summary>Where an <see cref="InferenceService"/> is in its lifecycle.</summary>
public enum InferenceStatus
{
    /// <summary>The host has not started it yet; requests wait.</summary>
    NotStarted,

    /// <summary>The model is loading; requests wait.</summary>
    Loading,

    /// <summary>Serving requests.</summary>
    Ready,

    /// <summary>Loading failed (see <see cref="InferenceService.LoadError"/>); requests fail with <see cref="ModelLoadFailedException"/>.</summary>
    Failed,

    /// <summary>The host is stopping: no new requests; those in flight are draining.</summary>
    Stopping,

    /// <summary>Stopped; the engines are disposed.</summary>
    Stopped,
}

/// <summary>The hosted model could not be loaded (bad path, unreadable checkpoint, unsupported model, device unavailable...).</summary>
public sealed class ModelLoadFailedException : DisaggException
{
    /// <summary>Creates the exception.</summary>
    public ModelLoadFailedException(string modelId, string modelPath, Exception inner)
        : base($"The model '{modelId}' at '{modelPath}' failed to load: {inner?.Message}", inner)
    {
        ModelId = modelId;
        ModelPath = modelPath;
    }

    /// <summary>The model's id.</summary>
    public string ModelId { get; }

    /// <summary>The configured model directory.</summary>
    public string ModelPath { get; }
}
