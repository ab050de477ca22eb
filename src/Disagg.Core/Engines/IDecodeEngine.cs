using Disagg.Kv;

namespace Disagg;

/// <summary>
/// The memory-bound half of inference: holds sequences' KV and generates token after token, in a continuous batch.
/// A disaggregated request first reserves blocks here, has a transport fill them with the prompt's KV, then decodes.
/// </summary>
public interface IDecodeEngine : IEngineInfo
{
    /// <summary>
    /// Reserves KV blocks for <paramref name="request"/>'s prompt. When this engine's prefix cache already holds part of the
    /// prompt, those blocks are shared and <see cref="KvReservation.CachedTokens"/> says how many tokens need no transfer.
    /// Waits while the pool is full; throws <see cref="PromptTooLongException"/> when the prompt could never fit.
    /// </summary>
    ValueTask<KvReservation> ReserveAsync(InferenceRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// Decodes from a reservation whose blocks now hold the whole prompt's KV, starting after <paramref name="firstToken"/>
    /// (sampled by the prefill engine). The engine takes ownership of the reservation's blocks. The stream repeats
    /// <paramref name="firstToken"/> first, so that a caller sees every generated token from one place.
    /// </summary>
    IAsyncEnumerable<GeneratedToken> DecodeAsync(KvReservation reservation, GeneratedToken firstToken, CancellationToken cancellationToken = default);
}

/// <summary>
/// KV blocks reserved on a decode engine for one request's prompt. Until an engine claims it for decoding, disposing it
/// returns the blocks; after that, the engine owns them. Thread-safe.
/// </summary>
public sealed class KvReservation : IDisposable
{
    private const int Open = 0, Claimed = 1, Released = 2;
    private int _state;
    private readonly Action _release;

    /// <summary>Creates a reservation. <paramref name="release"/> runs at most once, when disposed before being claimed.</summary>
    public KvReservation(InferenceRequest request, KvHandle destination, int cachedTokens, Action release)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(release);
        if (cachedTokens < 0 || cachedTokens > destination.SequenceLength || cachedTokens % destination.Layout.BlockSize != 0)
            throw new ArgumentOutOfRangeException(nameof(cachedTokens), cachedTokens,
                "Cached tokens must be whole blocks within the prompt.");
        Request = request;
        Destination = destination;
        CachedTokens = cachedTokens;
        _release = release;
    }

    /// <summary>The request.</summary>
    public InferenceRequest Request { get; }

    /// <summary>The reserved blocks on the decode engine, sized for the whole prompt.</summary>
    public KvHandle Destination { get; }

    /// <summary>Leading prompt tokens whose KV the decode engine already holds (whole blocks, from its prefix cache).</summary>
    public int CachedTokens { get; }

    /// <summary>Index of the first block a transport must fill; blocks before it are already in place.</summary>
    public int FirstBlockToFill => CachedTokens / Destination.Layout.BlockSize;

    /// <summary>True once disposed without being claimed.</summary>
    public bool IsReleased => Volatile.Read(ref _state) == Released;

    /// <summary>For engine implementations: takes ownership of the blocks. False when already claimed or disposed.</summary>
    public bool TryClaim() => Interlocked.CompareExchange(ref _state, Claimed, Open) == Open;

    /// <summary>Returns the blocks unless an engine has claimed them.</summary>
    public void Dispose()
    {
        if (Interlocked.CompareExchange(ref _state, Released, Open) == Open) _release();
    }
}
