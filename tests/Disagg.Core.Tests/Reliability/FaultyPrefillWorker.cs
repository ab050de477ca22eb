using Disagg.Kv;

namespace Disagg.Tests.Reliability;

/// <summary>
/// A prefill worker (an <see cref="LlmEngine"/>) that can be made to disappear for a request (<see cref="Gone"/>: its prefill
/// fails with <see cref="EngineStoppedException"/>, as when the worker process has died), and that tells a test when a
/// prefill has started (<see cref="Started"/>, to cancel it mid-prefill). Whole requests it runs unchanged.
/// </summary>
internal sealed class FaultyPrefillWorker(LlmEngine inner, Func<InferenceRequest, bool> gone) : IPrefillEngine, IInferenceEngine, IPrefixCacheProbe
{
    private long _gone;

    public LlmEngine Inner => inner;

    /// <summary>Runs once a prefill has been submitted to the engine, before it completes.</summary>
    public Action<InferenceRequest>? Started { get; set; }

    /// <summary>Prefills refused because the worker was "gone".</summary>
    public long GoneCount => Interlocked.Read(ref _gone);

    public KvCacheLayout KvLayout => inner.KvLayout;

    public int MaxContextLength => inner.MaxContextLength;

    public EngineLoad GetLoad() => inner.GetLoad();

    public int CachedPrefixLength(ReadOnlySpan<int> promptTokens) => inner.CachedPrefixLength(promptTokens);

    public ValueTask<PrefillResult> PrefillAsync(InferenceRequest request, IKvLayerListener? layerListener = null, CancellationToken cancellationToken = default)
    {
        if (gone(request))
        {
            Interlocked.Increment(ref _gone);
            throw new EngineStoppedException($"Injected fault: the prefill worker is gone (request {request.Id}).");
        }
        var prefill = inner.PrefillAsync(request, layerListener, cancellationToken);
        Started?.Invoke(request);
        return prefill;
    }

    public IAsyncEnumerable<GeneratedToken> GenerateAsync(InferenceRequest request, CancellationToken cancellationToken = default) =>
        inner.GenerateAsync(request, cancellationToken);
}
