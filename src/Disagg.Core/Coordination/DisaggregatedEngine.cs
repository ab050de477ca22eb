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
/// <para>Cancellation or failure at any point releases the blocks on both sides. The prefill side holds a request's KV for at most
/// <see cref="DisaggregationOptions.KvLease"/>. A failed transfer, a stopped worker or a broken connection is recovered by running
/// the request locally when <see cref="DisaggregationOptions.RecoverLocally"/> allows; otherwise it reaches the caller typed
/// (<see cref="KvTransferException"/>, <see cref="DisaggTimeoutException"/>, <see cref="EngineStoppedException"/>).</para>
/// </remarks>
public sealed class DisaggregatedEngine : IInferenceEngine
{
    private readonly WorkerRouter<IPrefillEngine> _prefill;
    private readonly WorkerRouter<IDecodeEngine> _decode;
    private readonly Func<IPrefillEngine, IDecodeEngine, IKvTransport> _transports;
    private readonly DisaggregationOptions _options;
    private long _local, _remote, _recovered, _expiredLeases;

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

    /// <summary>Recovery attempts: requests whose path failed and that ran again locally (<see cref="DisaggregationOptions.RecoverLocally"/>).</summary>
    public long RecoveryCount => Interlocked.Read(ref _recovered);

    /// <summary>KV leases that expired: transfers that did not complete within <see cref="DisaggregationOptions.KvLease"/>, whose prefill blocks were released.</summary>
    public long ExpiredKvLeaseCount => Interlocked.Read(ref _expiredLeases);

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
    /// <exception cref="KvTransferException">The remote path failed and could not be recovered (see <see cref="DisaggregationOptions.RecoverLocally"/>);
    /// a <see cref="DisaggTimeoutException"/> when a bound ran out.</exception>
    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(InferenceRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var decode = _decode.Pick(request.PromptTokens.Span, out int cachedOnDecode);
        IPrefillEngine? prefill = null;
        IInferenceEngine? ranLocally = null;
        IAsyncEnumerable<GeneratedToken> attempt;
        if (decode is IInferenceEngine local && request.PromptTokens.Length - cachedOnDecode <= _options.LocalPrefillMaxUncachedTokens)
        {
            Interlocked.Increment(ref _local);
            attempt = local.GenerateAsync(request, cancellationToken);
            ranLocally = local;
        }
        else
        {
            Interlocked.Increment(ref _remote);
            prefill = _prefill.Pick(request.PromptTokens.Span, out _);
            attempt = Disaggregate(request, prefill, decode, cancellationToken);
        }

        // Each attempt regenerates from the first token; tokens the caller already has are checked and skipped.
        var delivered = new List<int>();
        List<IInferenceEngine>? fallbacks = null;
        int nextFallback = 0;
        while (true)
        {
            Exception? failure = null;
            int index = 0;
            var tokens = attempt.GetAsyncEnumerator(cancellationToken);
            try
            {
                while (true)
                {
                    try
                    {
                        if (!await tokens.MoveNextAsync().ConfigureAwait(false)) break;
                    }
                    catch (Exception ex) when (IsRecoverable(ex, cancellationToken))
                    {
                        fallbacks ??= _options.RecoverLocally
                            ? LocalEngines(decode, prefill ?? _prefill.Pick(request.PromptTokens.Span, out _), ranLocally)
                            : [];
                        if (nextFallback == fallbacks.Count && ex is ObjectDisposedException)
                            throw new EngineStoppedException($"Request {request.Id} failed: a worker was disposed ({ex.Message}).", ex);
                        if (nextFallback == fallbacks.Count) throw;
                        failure = ex;
                        break;
                    }
                    var token = tokens.Current;
                    if (index < delivered.Count)
                    {
                        if (token.TokenId != delivered[index])
                            throw new DisaggException($"Recovering request {request.Id} produced token {token.TokenId} at index {index}, " +
                                $"where {delivered[index]} was already delivered; the request cannot continue.");
                        index++;
                        continue;
                    }
                    delivered.Add(token.TokenId);
                    index++;
                    yield return token;
                }
            }
            finally
            {
                await tokens.DisposeAsync().ConfigureAwait(false); // releases that attempt's blocks on every engine it touched
            }
            if (failure is null)
            {
                if (index < delivered.Count)
                    throw new DisaggException($"Recovering request {request.Id} ended after {index} tokens; {delivered.Count} were already delivered.");
                yield break;
            }
            Interlocked.Increment(ref _recovered);
            attempt = fallbacks![nextFallback++].GenerateAsync(request, cancellationToken);
        }
    }

    /// <summary>Prefill on one worker, decode on another, the KV moved between them.</summary>
    private async IAsyncEnumerable<GeneratedToken> Disaggregate(InferenceRequest request, IPrefillEngine prefill, IDecodeEngine decode,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var transport = _transports(prefill, decode);
        var reservation = await decode.ReserveAsync(request, cancellationToken).ConfigureAwait(false);
        using var moveCancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Task? moving = null;
        try
        {
            // The first token is streamed as soon as prefill has it (that is the time to first token); the KV moves meanwhile.
            var stream = (transport as IStreamingKvTransport)?.BeginTransfer(reservation);
            PrefillResult prefilled;
            try
            {
                prefilled = await prefill.PrefillAsync(request, stream, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                stream?.Dispose();
                throw;
            }
            var first = prefilled.FirstToken;
            if (first.IsLast) // finished with its first token: nothing to decode, nothing to move
            {
                stream?.Dispose();
                prefilled.Dispose();
                yield return first;
                yield break;
            }
            // On the pool, so that neither the first token nor a caller that stops reading holds the prefill blocks.
            moving = Task.Run(() => MoveKvAsync(transport, stream, prefilled, reservation, moveCancel.Token), CancellationToken.None);
            yield return first;
            await moving.ConfigureAwait(false);

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
            if (moving is not null)
            {
                // The caller may have left while the KV was moving: stop the transfer before its destination blocks go back.
                if (!moving.IsCompleted) await moveCancel.CancelAsync().ConfigureAwait(false);
                try { await moving.ConfigureAwait(false); }
                catch (Exception) { /* observed; when the caller left, the request is over and this failure no longer matters */ }
            }
            reservation.Dispose(); // no-op once the decode engine has claimed it
        }
    }

    /// <summary>
    /// Moves the prefilled KV into the reservation within the KV lease, then releases the prefill blocks, whatever happened.
    /// </summary>
    private async Task MoveKvAsync(IKvTransport transport, IKvTransferStream? stream, PrefillResult prefilled, KvReservation reservation,
        CancellationToken cancellationToken)
    {
        using var lease = new CancellationTokenSource(_options.KvLease, _options.TimeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lease.Token);
        try
        {
            var moved = stream is not null
                ? await stream.CompleteAsync(prefilled.Kv, linked.Token).ConfigureAwait(false)
                : await transport.TransferAsync(prefilled.Kv, reservation, linked.Token).ConfigureAwait(false);
            _options.TransferCompleted?.Invoke(moved);
        }
        catch (OperationCanceledException ex) when (lease.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            Interlocked.Increment(ref _expiredLeases);
            throw new DisaggTimeoutException(
                $"moving the KV of request {prefilled.Request.Id} to the decode worker ({transport.Name}) within its KV lease", _options.KvLease, ex);
        }
        finally
        {
            stream?.Dispose();
            prefilled.Dispose(); // the decode side has its copy, or will never get it: the prefill blocks go back now
        }
    }

    /// <summary>Failures of a worker or of the path between workers, which another attempt may avoid. The caller's cancellation,
    /// invalid requests and overload are final.</summary>
    private static bool IsRecoverable(Exception error, CancellationToken cancellationToken) =>
        !cancellationToken.IsCancellationRequested && error is KvTransferException or EngineStoppedException or ObjectDisposedException;

    /// <summary>Where a failed request may run alone: the decode worker (it may cache the prompt), then the prefill worker.</summary>
    private static List<IInferenceEngine> LocalEngines(IDecodeEngine decode, IPrefillEngine prefill, IInferenceEngine? alreadyTried)
    {
        var engines = new List<IInferenceEngine>(2);
        foreach (var candidate in new object[] { decode, prefill })
            if (candidate is IInferenceEngine engine && engine != alreadyTried && !engines.Contains(engine)) engines.Add(engine);
        return engines;
    }
}
