using System.Runtime.CompilerServices;

namespace Disagg.Coordination;

/// <summary>
/// Runs each request with prefill on one engine and decode on another, moving the prompt's KV through an <see cref="IKvTransport"/>
/// — or, when that would not pay, entirely on the decode engine. It is itself an <see cref="IInferenceEngine"/>, so hosts use it
/// exactly like a colocated engine.
/// </summary>
/// <remarks>
/// <para>Per request: a decode worker is picked (cache-aware by default) and asked how much of the prompt it already caches. If
/// what is left to compute is small (<see cref="DisaggregationOptions.LocalPrefillMaxUncachedTokens"/>) and the decode worker can
/// run whole requests, it does. Otherwise the decode worker reserves blocks (sharing its cached prefix), a prefill worker computes
/// the prompt and the first token while a streaming transport copies finished chunks; the first token goes to the caller at once,
/// then only the blocks the decode side lacks cross, the prefill blocks are released, and decoding continues on the decode worker.</para>
/// <para>Cancellation or failure at any point releases the blocks on both sides.</para>
/// </remarks>
public sealed class DisaggregatedEngine : IInferenceEngine
{
    private readonly WorkerRouter<IPrefillEngine> _prefill;
    private readonly WorkerRouter<IDecodeEngine> _decode;
    private readonly Func<IPrefillEngine, IDecodeEngine, IKvTransport> _transports;
    private readonly DisaggregationOptions _options;
    private long _local, _remote;

    /// <summary>Creates the coordinator.</summary>
    /// <param name="prefillWorkers">Engines that prefill.</param>
    /// <param name="decodeWorkers">Engines that decode (and, when they are also <see cref="IInferenceEngine"/>, may prefill locally).</param>
    /// <param name="transports">The transport between a prefill and a decode worker (called per request; return a shared instance per pair).</param>
    /// <param name="options">Routing options.</param>
    public DisaggregatedEngine(IReadOnlyList<IPrefillEngine> prefillWorkers, IReadOnlyList<IDecodeEngine> decodeWorkers,
        Func<IPrefillEngine, IDecodeEngine, IKvTransport> transports, DisaggregationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(transports);
        options ??= new DisaggregationOptions();
        options.Validate();
        _prefill = new WorkerRouter<IPrefillEngine>(prefillWorkers, options.Policy, options.CacheWeight);
        _decode = new WorkerRouter<IDecodeEngine>(decodeWorkers, options.Policy, options.CacheWeight);
        foreach (var p in _prefill.Workers)
            foreach (var d in _decode.Workers)
                p.KvLayout.EnsureCompatible(d.KvLayout);
        _transports = transports;
        _options = options;
        KvLayout = _decode.Workers[0].KvLayout;
        MaxContextLength = Math.Min(_prefill.Workers.Min(w => w.MaxContextLength), _decode.Workers.Min(w => w.MaxContextLength));
    }

    /// <inheritdoc />
    public Kv.KvCacheLayout KvLayout { get; }

    /// <inheritdoc />
    public int MaxContextLength { get; }

    /// <summary>Requests run entirely on a decode worker because remote prefill would not pay.</summary>
    public long LocalPrefillCount => Interlocked.Read(ref _local);

    /// <summary>Requests prefilled on a prefill worker and moved.</summary>
    public long DisaggregatedCount => Interlocked.Read(ref _remote);

    /// <inheritdoc />
    public EngineLoad GetLoad()
    {
        int waiting = 0, running = 0, free = 0, total = 0;
        foreach (var d in _decode.Workers)
        {
            var l = d.GetLoad();
            waiting += l.WaitingRequests;
            running += l.RunningSequences;
            free += l.FreeKvBlocks;
            total += l.TotalKvBlocks;
        }
        foreach (var p in _prefill.Workers) waiting += p.GetLoad().WaitingRequests;
        return new EngineLoad(waiting, running, free, total);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(InferenceRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var prompt = request.PromptTokens.Span;
        var decode = _decode.Pick(prompt, out int cachedOnDecode);
        if (decode is IInferenceEngine local && prompt.Length - cachedOnDecode <= _options.LocalPrefillMaxUncachedTokens)
        {
            Interlocked.Increment(ref _local);
            await foreach (var token in local.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
                yield return token;
            yield break;
        }

        Interlocked.Increment(ref _remote);
        var prefill = _prefill.Pick(prompt, out _);
        var transport = _transports(prefill, decode);
        var reservation = await decode.ReserveAsync(request, cancellationToken).ConfigureAwait(false);
        PrefillResult? prefilled = null;
        IKvTransferStream? stream = null;
        try
        {
            // The first token is streamed as soon as prefill has it (that is the time to first token); the KV moves after.
            stream = (transport as IStreamingKvTransport)?.BeginTransfer(reservation);
            prefilled = await prefill.PrefillAsync(request, stream, cancellationToken).ConfigureAwait(false);
            var first = prefilled.FirstToken;
            yield return first;
            if (first.IsLast) yield break; // finished with its first token: nothing to decode, nothing to move

            var moved = stream is not null
                ? await stream.CompleteAsync(prefilled.Kv, cancellationToken).ConfigureAwait(false)
                : await transport.TransferAsync(prefilled.Kv, reservation, cancellationToken).ConfigureAwait(false);
            _options.TransferCompleted?.Invoke(moved);
            prefilled.Dispose(); // the decode side has its copy: free the prefill blocks now, not when decoding ends

            bool repeated = true;
            await foreach (var token in decode.DecodeAsync(reservation, first, cancellationToken).ConfigureAwait(false))
            {
                if (repeated) // DecodeAsync repeats the first token, which the caller already has
                {
                    repeated = false;
                    continue;
                }
                yield return token;
            }
        }
        finally
        {
            stream?.Dispose();
            prefilled?.Dispose();
            reservation.Dispose(); // no-op once the decode engine has claimed it
        }
    }
}
