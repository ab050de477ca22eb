using Disagg.Kv;

namespace Disagg;

/// <summary>
/// The compute-bound half of inference: runs the prompt through the model, samples the first token and keeps the
/// prompt's KV in its own block pool until the caller has moved it (see <see cref="IKvTransport"/>) and disposes the result.
/// </summary>
public interface IPrefillEngine : IEngineInfo
{
    /// <summary>
    /// Prefills <paramref name="request"/>'s prompt. On a prefix-cache hit only the uncached suffix is computed.
    /// </summary>
    /// <param name="request">The request.</param>
    /// <param name="layerListener">Told as each layer's KV is written, so that a transport can start moving it while later
    /// layers compute. Optional.</param>
    /// <param name="cancellationToken">Cancels the prefill; blocks are returned to the pool.</param>
    /// <returns>The first token and a handle to the prompt's KV. The caller must dispose it to release the blocks.</returns>
    /// <exception cref="InvalidRequestException">The request cannot be served.</exception>
    ValueTask<PrefillResult> PrefillAsync(InferenceRequest request, IKvLayerListener? layerListener = null, CancellationToken cancellationToken = default);
}

/// <summary>Told as prefill writes each layer's KV; lets a transport overlap copying with the prefill compute.</summary>
public interface IKvLayerListener
{
    /// <summary>
    /// Layer <paramref name="layer"/> now holds KV for positions [<paramref name="startPosition"/>, <paramref name="endPosition"/>)
    /// of <paramref name="kv"/>. Called on the engine's thread, in layer order, possibly several times per layer when the
    /// prompt is prefilled in chunks. Must return quickly. On a GPU the data may still be in flight on the engine's stream:
    /// device transports order their copy after it.
    /// </summary>
    void OnLayerWritten(KvHandle kv, int layer, int startPosition, int endPosition);
}

/// <summary>
/// The outcome of a prefill: the first token, and ownership of the prompt's KV blocks on the prefill engine until
/// <see cref="Dispose"/>. Thread-safe; disposing twice is harmless.
/// </summary>
public sealed class PrefillResult : IDisposable
{
    private Action? _release;

    /// <summary>Creates a result. <paramref name="release"/> runs exactly once, on the first <see cref="Dispose"/>.</summary>
    public PrefillResult(InferenceRequest request, GeneratedToken firstToken, KvHandle kv, int cachedTokens, Action release)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(kv);
        ArgumentNullException.ThrowIfNull(release);
        Request = request;
        FirstToken = firstToken;
        Kv = kv;
        CachedTokens = cachedTokens;
        _release = release;
    }

    /// <summary>The request.</summary>
    public InferenceRequest Request { get; }

    /// <summary>The first generated token. When its <see cref="GeneratedToken.Finish"/> is set the sequence is already complete.</summary>
    public GeneratedToken FirstToken { get; }

    /// <summary>The prompt's KV on the prefill engine.</summary>
    public KvHandle Kv { get; }

    /// <summary>Prompt tokens whose KV came from the prefill engine's prefix cache rather than being computed.</summary>
    public int CachedTokens { get; }

    /// <summary>True once the blocks have been released.</summary>
    public bool IsReleased => Volatile.Read(ref _release) is null;

    /// <summary>Releases the KV blocks on the prefill engine.</summary>
    public void Dispose() => Interlocked.Exchange(ref _release, null)?.Invoke();
}
