using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Disagg.Kv;
using Disagg.PrefixCache;
using Disagg.Scheduling;

namespace Disagg;

/// <summary>
/// A complete engine over any <see cref="IModelExecutor"/>: requests enter here, wait in the <see cref="Scheduler"/>, get
/// KV blocks from the <see cref="KvCacheManager"/>, run through the executor one continuous-batching step at a time, and
/// stream their tokens back. It serves all three roles: colocated (<see cref="GenerateAsync"/>), prefill for another engine
/// (<see cref="PrefillAsync"/>), and decode of a prompt prefilled elsewhere (<see cref="ReserveAsync"/> then <see cref="DecodeAsync"/>).
/// </summary>
/// <remarks>
/// One dedicated thread runs the loop and owns the scheduler, the prefix cache and every sequence; other threads talk to it
/// through a command queue. Every public member is thread-safe. Cancelling a request, or abandoning its token stream, returns
/// its KV blocks at the next step boundary.
/// </remarks>
public sealed class LlmEngine : IInferenceEngine, IPrefillEngine, IDecodeEngine, IPrefixCacheProbe, IAsyncDisposable
{
    private readonly IModelExecutor _executor;
    private readonly Scheduler _scheduler;
    private readonly KvBlockAllocator _allocator;
    private readonly ConcurrentQueue<(CommandKind Kind, Sequence Sequence, int Argument)> _commands = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly ConcurrentDictionary<RequestId, Sequence> _reservations = new();
    private readonly List<Sequence> _pendingReservations = [];
    private readonly HashSet<Sequence> _live = [];
    private readonly Thread _thread;
    private readonly int[] _endOfSequence;
    private int[] _sampled = new int[64];
    // Prefill chunks of the current step whose layers go to a listener as the executor issues them (loop thread only).
    private readonly List<(IKvLayerListener Listener, KvHandle Kv, int Start, int End)> _layerTargets = [];
    private Action<int>? _onLayerIssued;
    private volatile bool _stopping;
    private int _waiting, _running;
    private readonly int _maxWaiting;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    // Guards the scheduler and prefix cache. The loop holds it except while the model runs, so that routers can ask what
    // is cached (CachedPrefixLength) from other threads without waiting for a whole step.
    private readonly Lock _schedulerLock = new();

    private enum CommandKind { Submit, Abort, Reserve, StartDecode, ReleaseRetained }

    /// <summary>Per-sequence plumbing between the loop and the caller.</summary>
    private sealed class SequenceState
    {
        public Channel<GeneratedToken>? Tokens;
        public TaskCompletionSource<PrefillResult>? Prefill;
        public TaskCompletionSource<KvReservation>? Reservation;
        public IKvLayerListener? LayerListener;
        public CancellationToken CancellationToken;
    }

    /// <summary>Creates the engine and starts its loop. The engine takes ownership of <paramref name="executor"/>.</summary>
    public LlmEngine(IModelExecutor executor, LlmEngineOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(executor);
        options ??= new LlmEngineOptions();
        options.Validate();
        _executor = executor;
        Name = options.Name;
        KvLayout = executor.KvLayout;
        MaxContextLength = executor.MaxContextLength;
        _allocator = new KvBlockAllocator(executor.KvBlockCount);
        var cache = options.Scheduler.EnablePrefixCaching ? new RadixPrefixCache(_allocator, KvLayout.BlockSize) : null;
        _scheduler = new Scheduler(options.Scheduler, new KvCacheManager(_allocator, KvLayout.BlockSize, cache), MaxContextLength);
        _endOfSequence = [.. executor.EndOfSequenceTokenIds];
        _maxWaiting = options.Scheduler.MaxWaitingRequests;
        _thread = new Thread(Loop) { IsBackground = true, Name = $"disagg-{Name}" };
        _thread.Start();
    }

    /// <summary>The engine's name.</summary>
    public string Name { get; }

    /// <inheritdoc />
    public KvCacheLayout KvLayout { get; }

    /// <inheritdoc />
    public int MaxContextLength { get; }

    /// <summary>The KV block pool (read its counts from any thread).</summary>
    public KvBlockAllocator Allocator => _allocator;

    /// <summary>Prefix-cache counters, or default when prefix caching is off. Approximate when read while the engine runs.</summary>
    public PrefixCacheStatistics PrefixCacheStatistics => _scheduler.KvCache.PrefixCache?.Statistics ?? default;

    /// <summary>The executor's KV bytes, for host-staged transports (null when the executor offers none).</summary>
    public IKvBlockStore? BlockStore => _executor.BlockStore;

    /// <summary>
    /// Blocks the prefix cache holds: used in <see cref="Allocator"/>'s count, but given back whenever memory is needed.
    /// Approximate while the engine runs; exact when it is idle.
    /// </summary>
    public int PrefixCachedBlockCount => _scheduler.KvCache.PrefixCache?.CachedBlockCount ?? 0;


    /// <inheritdoc />
    public int CachedPrefixLength(ReadOnlySpan<int> promptTokens)
    {
        var cache = _scheduler.KvCache.PrefixCache;
        if (cache is null) return 0;
        lock (_schedulerLock) return cache.PeekPrefixLength(promptTokens);
    }

    /// <inheritdoc />
    public EngineLoad GetLoad() =>
        new(Volatile.Read(ref _waiting), Volatile.Read(ref _running), _allocator.FreeCount, _allocator.Capacity);

    /// <inheritdoc />
    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(
        InferenceRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var seq = NewSequence(request, prefillOnly: false);
        var state = new SequenceState { Tokens = NewTokenChannel(), CancellationToken = cancellationToken };
        seq.EngineState = state;
        await foreach (var token in Stream(seq, state, CommandKind.Submit, 0, cancellationToken).ConfigureAwait(false))
            yield return token;
    }

    /// <inheritdoc />
    public async ValueTask<PrefillResult> PrefillAsync(
        InferenceRequest request, IKvLayerListener? layerListener = null, CancellationToken cancellationToken = default)
    {
        var seq = NewSequence(request, prefillOnly: true);
        var state = new SequenceState
        {
            Prefill = new TaskCompletionSource<PrefillResult>(TaskCreationOptions.RunContinuationsAsynchronously),
            LayerListener = layerListener,
            CancellationToken = cancellationToken,
        };
        seq.EngineState = state;
        using var registration = cancellationToken.Register(() => Post(CommandKind.Abort, seq));
        Post(CommandKind.Submit, seq);
        return await state.Prefill.Task.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<KvReservation> ReserveAsync(InferenceRequest request, CancellationToken cancellationToken = default)
    {
        var seq = NewSequence(request, prefillOnly: false);
        var state = new SequenceState
        {
            Reservation = new TaskCompletionSource<KvReservation>(TaskCreationOptions.RunContinuationsAsynchronously),
            CancellationToken = cancellationToken,
        };
        seq.EngineState = state;
        using var registration = cancellationToken.Register(() => Post(CommandKind.Abort, seq));
        Post(CommandKind.Reserve, seq);
        return await state.Reservation.Task.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<GeneratedToken> DecodeAsync(
        KvReservation reservation, GeneratedToken firstToken, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reservation);
        if (!_reservations.TryRemove(reservation.Request.Id, out var seq) || !reservation.TryClaim())
            throw new InvalidOperationException($"Reservation of {reservation.Request.Id} is not open on engine '{Name}' (released, claimed, or from another engine).");
        bool decoding = false;
        try
        {
            yield return firstToken;
            if (firstToken.IsLast) yield break; // nothing to decode: the finally hands the blocks back
            var state = (SequenceState)seq.EngineState!;
            state.Tokens = NewTokenChannel();
            state.CancellationToken = cancellationToken;
            decoding = true; // from here the stream owns the sequence, and aborts it if abandoned
            await foreach (var token in Stream(seq, state, CommandKind.StartDecode, firstToken.TokenId, cancellationToken).ConfigureAwait(false))
                yield return token;
        }
        finally
        {
            // Also runs when the caller stops after the first token: the claimed blocks must not be stranded.
            if (!decoding) Post(CommandKind.Abort, seq);
        }
    }

    /// <summary>Stops the loop. Requests still in flight fail with <see cref="EngineStoppedException"/>; all blocks are returned.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping) { await _stopped.Task.ConfigureAwait(false); return; }
        _stopping = true;
        _wake.Release();
        await _stopped.Task.ConfigureAwait(false);
        _executor.Dispose();
        _wake.Dispose();
    }

    private async IAsyncEnumerable<GeneratedToken> Stream(
        Sequence seq, SequenceState state, CommandKind start, int argument, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var reader = state.Tokens!.Reader;
        bool finished = false;
        var registration = cancellationToken.Register(() => Post(CommandKind.Abort, seq));
        try
        {
            Post(start, seq, argument);
            while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (reader.TryRead(out var token))
                {
                    cancellationToken.ThrowIfCancellationRequested(); // tokens already buffered are not delivered after cancellation
                    finished = token.IsLast;
                    yield return token;
                    if (finished) yield break;
                }
            }
            finished = true; // completed by the loop without a last token (failure surfaces from WaitToReadAsync)
        }
        finally
        {
            await registration.DisposeAsync().ConfigureAwait(false);
            if (!finished) Post(CommandKind.Abort, seq); // the caller stopped listening: free the blocks
        }
    }

    private Sequence NewSequence(InferenceRequest request, bool prefillOnly)
    {
        ArgumentNullException.ThrowIfNull(request);
        ObjectDisposedException.ThrowIf(_stopping, this);
        request.Validate(_executor.VocabularySize, MaxContextLength);
        // Rejected here, before anything is queued: a prompt the pool can never hold, and any request beyond the queue's bound.
        int promptLength = request.PromptTokens.Length;
        if (KvLayout.BlocksForTokens(promptLength + 1) > _allocator.Capacity)
            throw new PromptTooLongException(request.Id, promptLength, _allocator.Capacity * KvLayout.BlockSize, "the engine's KV pool");
        if (Volatile.Read(ref _waiting) >= _maxWaiting) throw Overloaded(request.Id); // exact check on the loop (DrainCommands)
        var sampling = request.Sampling;
        if (_endOfSequence.Length > 0)
        {
            var stops = new HashSet<int>(sampling.StopTokenIds);
            if (!stops.IsSupersetOf(_endOfSequence))
            {
                stops.UnionWith(_endOfSequence);
                request = request.WithSampling(sampling with { StopTokenIds = [.. stops] });
            }
        }
        return new Sequence(request) { PrefillOnly = prefillOnly };
    }

    private EngineOverloadedException Overloaded(RequestId id) =>
        new($"Engine '{Name}' has {_maxWaiting} requests waiting, its limit (SchedulerOptions.MaxWaitingRequests); request {id} was not admitted.");

    /// <summary>Requests waiting for admission: queued for a prefill or for a reservation (loop thread).</summary>
    private int WaitingNow => _scheduler.WaitingCount + _pendingReservations.Count;

    private static Channel<GeneratedToken> NewTokenChannel() =>
        Channel.CreateUnbounded<GeneratedToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    private void Post(CommandKind kind, Sequence seq, int argument = 0)
    {
        _commands.Enqueue((kind, seq, argument));
        try { _wake.Release(); } catch (ObjectDisposedException) { }
    }

    // ---------------------------------------------------------------- the loop (engine thread only)

    private void Loop()
    {
        try
        {
            while (!_stopping)
            {
                ScheduledBatch? batch = null;
                lock (_schedulerLock)
                {
                    DrainCommands();
                    RetryReservations();
                    if (!_scheduler.IsIdle) batch = _scheduler.Schedule();
                    PublishLoad();
                }
                if (batch is null || batch.IsEmpty)
                {
                    _wake.Wait(); // idle, or waiting for memory that a release or abort will free
                    continue;
                }
                Step(batch);
            }
        }
        catch (Exception ex)
        {
            _stopping = true;
            lock (_schedulerLock) SafeFailAll(new EngineStoppedException($"Engine '{Name}' stopped after an internal error: {ex.Message}", ex));
        }
        lock (_schedulerLock)
        {
            SafeFailAll(new EngineStoppedException($"Engine '{Name}' was stopped."));
            PublishLoad();
        }
        _stopped.TrySetResult();
    }

    /// <summary>The loop thread must never throw: an exception there would end the host process.</summary>
    private void SafeFailAll(Exception error)
    {
        try { FailAll(error); }
        catch (Exception) { /* nothing more can be done for these requests; the host process stays up */ }
    }

    private void Step(ScheduledBatch batch)
    {
        if (_sampled.Length < batch.Count) _sampled = new int[Math.Max(batch.Count, _sampled.Length * 2)];
        var sampled = _sampled.AsSpan(0, batch.Count);
        sampled.Fill(-1);
        bool listening = CollectLayerTargets(batch);
        try
        {
            // The long part, outside the lock. Listeners hear of each layer as it is issued when the executor can say so,
            // else of every layer once the step is done.
            if (listening && _executor.ReportsLayers) _executor.Execute(batch, sampled, _onLayerIssued ??= OnLayerIssued);
            else
            {
                _executor.Execute(batch, sampled);
                if (listening)
                    for (int layer = 0; layer < KvLayout.NumLayers; layer++) OnLayerIssued(layer);
            }
        }
        catch (Exception ex)
        {
            // A failed step fails its sequences, not the engine.
            lock (_schedulerLock)
                foreach (var chunk in batch.Chunks)
                    Fail(chunk.Sequence, new DisaggException($"Model execution failed for request {chunk.Sequence.Id}: {ex.Message}", ex));
            return;
        }
        finally
        {
            _layerTargets.Clear();
        }
        lock (_schedulerLock) CompleteStep(batch, sampled);
    }

    /// <summary>Gathers the step's prefill chunks that have a layer listener.</summary>
    private bool CollectLayerTargets(ScheduledBatch batch)
    {
        foreach (var chunk in batch.Chunks)
        {
            var seq = chunk.Sequence;
            if (seq.PrefillOnly && seq.EngineState is SequenceState { LayerListener: { } listener })
                _layerTargets.Add((listener, new KvHandle(seq.Id, KvLayout, seq.BlockTable.ToArray(), chunk.End), chunk.Start, chunk.End));
        }
        return _layerTargets.Count > 0;
    }

    private void OnLayerIssued(int layer)
    {
        foreach (var (listener, kv, start, end) in _layerTargets)
        {
            try { listener.OnLayerWritten(kv, layer, start, end); }
            catch (Exception) { /* a listener's failure must not stop the engine; the transport reports it itself */ }
        }
    }

    private void CompleteStep(ScheduledBatch batch, Span<int> sampled)
    {
        _scheduler.CompleteStep(batch, sampled);
        long now = Stopwatch.GetTimestamp();
        var chunks = batch.Chunks;
        for (int i = 0; i < chunks.Length; i++)
        {
            var chunk = chunks[i];
            var seq = chunk.Sequence;
            var state = (SequenceState)seq.EngineState!;
            if (seq.PrefillOnly)
            {
                if (seq.Status == SequenceStatus.Retained) CompletePrefill(seq, state, sampled[i], now);
                continue;
            }
            if (!chunk.SamplesToken || seq.FinishReason == FinishReason.Cancelled) continue;
            bool last = seq.Status == SequenceStatus.Finished;
            state.Tokens!.Writer.TryWrite(new GeneratedToken(sampled[i], seq.GeneratedCount - 1, now, last ? seq.FinishReason : null));
            if (last)
            {
                state.Tokens.Writer.TryComplete();
                _live.Remove(seq);
            }
        }
    }

    private void CompletePrefill(Sequence seq, SequenceState state, int token, long now)
    {
        var first = new GeneratedToken(token, 0, now, seq.FinishReason);
        var kv = new KvHandle(seq.Id, KvLayout, seq.BlockTable.ToArray(), seq.PromptLength);
        var result = new PrefillResult(seq.Request, first, kv, seq.CachedTokens, () => Post(CommandKind.ReleaseRetained, seq));
        if (!state.Prefill!.TrySetResult(result)) result.Dispose();
    }

    private void DrainCommands()
    {
        while (_commands.TryDequeue(out var command))
        {
            var (kind, seq, argument) = command;
            var state = (SequenceState)seq.EngineState!;
            try
            {
                switch (kind)
                {
                    case CommandKind.Submit:
                        if (state.CancellationToken.IsCancellationRequested) { Cancel(seq, state); break; }
                        if (WaitingNow >= _maxWaiting) throw Overloaded(seq.Id);
                        _scheduler.Enqueue(seq);
                        _live.Add(seq);
                        break;
                    case CommandKind.Reserve:
                        if (state.CancellationToken.IsCancellationRequested) { Cancel(seq, state); break; }
                        if (WaitingNow >= _maxWaiting) throw Overloaded(seq.Id);
                        _pendingReservations.Add(seq);
                        _live.Add(seq);
                        RetryReservations(); // one that fits now is not waiting, and must not count against the next
                        break;
                    case CommandKind.StartDecode:
                        if (seq.Status != SequenceStatus.Reserved) break; // released meanwhile
                        _scheduler.StartDecode(seq, argument);
                        if (seq.Status == SequenceStatus.Finished)
                        {
                            state.Tokens!.Writer.TryComplete();
                            _live.Remove(seq);
                        }
                        break;
                    case CommandKind.ReleaseRetained:
                        if (seq.Status == SequenceStatus.Retained) _scheduler.ReleaseRetained(seq);
                        _live.Remove(seq);
                        break;
                    case CommandKind.Abort:
                        if (seq.Status == SequenceStatus.Finished && !_live.Contains(seq) && !_pendingReservations.Contains(seq)) break;
                        _pendingReservations.Remove(seq);
                        _reservations.TryRemove(seq.Id, out _);
                        _scheduler.Abort(seq);
                        Cancel(seq, state);
                        break;
                }
            }
            catch (Exception ex)
            {
                Fail(seq, ex);
            }
        }
    }

    private void RetryReservations()
    {
        for (int i = 0; i < _pendingReservations.Count; i++)
        {
            var seq = _pendingReservations[i];
            bool reserved;
            try
            {
                reserved = _scheduler.TryReserve(seq);
            }
            catch (Exception ex) // e.g. a prompt that fits the context but never the pool: fail that request, not the engine
            {
                _pendingReservations.RemoveAt(i--);
                Fail(seq, ex);
                continue;
            }
            if (!reserved) break; // in order: the first that does not fit blocks the rest
            _pendingReservations.RemoveAt(i--);
            var state = (SequenceState)seq.EngineState!;
            var handle = new KvHandle(seq.Id, KvLayout, seq.BlockTable.ToArray(), seq.PromptLength);
            var reservation = new KvReservation(seq.Request, handle, seq.CachedTokens, () => Post(CommandKind.Abort, seq));
            _reservations[seq.Id] = seq;
            if (!state.Reservation!.TrySetResult(reservation)) reservation.Dispose();
        }
    }

    private void Cancel(Sequence seq, SequenceState state)
    {
        _live.Remove(seq);
        var token = state.CancellationToken;
        state.Tokens?.Writer.TryComplete(new OperationCanceledException(token));
        state.Prefill?.TrySetCanceled(token);
        state.Reservation?.TrySetCanceled(token);
    }

    private void Fail(Sequence seq, Exception error)
    {
        try
        {
            if (seq.Status != SequenceStatus.Finished) _scheduler.Abort(seq);
        }
        catch (Exception abortError)
        {
            // Bookkeeping is broken for this sequence; fail it anyway rather than take the host down.
            error = new AggregateException(error, abortError);
        }
        _pendingReservations.Remove(seq);
        _reservations.TryRemove(seq.Id, out _);
        _live.Remove(seq);
        var state = (SequenceState)seq.EngineState!;
        state.Tokens?.Writer.TryComplete(error);
        state.Prefill?.TrySetException(error);
        state.Reservation?.TrySetException(error);
    }

    private void FailAll(Exception error)
    {
        DrainCommands();
        foreach (var seq in _live.ToArray()) Fail(seq, error);
        foreach (var seq in _pendingReservations.ToArray()) Fail(seq, error);
        // Late commands (posted while stopping) fail too.
        while (_commands.TryDequeue(out var command))
        {
            var (kind, seq, _) = command;
            if (kind is CommandKind.Submit or CommandKind.Reserve or CommandKind.StartDecode) Fail(seq, error);
            else if (seq.Status is SequenceStatus.Retained or SequenceStatus.Reserved) _scheduler.Abort(seq);
        }
    }

    private void PublishLoad()
    {
        Volatile.Write(ref _waiting, _scheduler.WaitingCount + _pendingReservations.Count);
        Volatile.Write(ref _running, _scheduler.RunningCount);
    }
}
