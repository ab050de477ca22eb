using System.Diagnostics;
using Disagg.Kv;

namespace Disagg.Scheduling;

/// <summary>
/// Engine-independent continuous batching. Each <see cref="Schedule"/> builds one step within a token budget: first every
/// running sequence (a decode token, or the next chunk of a long prompt), then waiting sequences in arrival order (FCFS),
/// their prompts chunked to the budget that is left. When a running sequence needs a block and none can be had, the most
/// recently admitted sequence is preempted: its KV is dropped (its computed blocks stay in the prefix cache if they survive)
/// and it waits at the front of the queue to be recomputed. After the model ran, <see cref="CompleteStep"/> appends the
/// sampled tokens and finishes sequences.
/// </summary>
/// <remarks>
/// Not thread-safe: one engine loop thread owns the scheduler and its sequences. <see cref="Schedule"/> and
/// <see cref="CompleteStep"/> allocate nothing in steady state.
/// </remarks>
public sealed class Scheduler
{
    private readonly SchedulerOptions _options;
    private readonly KvCacheManager _kv;
    private readonly SequenceQueue _waiting = new();
    private readonly List<Sequence> _running;
    private readonly ScheduledBatch _batch;
    private int _reserved;
    private readonly int _poolTokens;

    /// <summary>Creates a scheduler over <paramref name="kvCache"/> for a model of <paramref name="maxContextLength"/> tokens.</summary>
    public Scheduler(SchedulerOptions options, KvCacheManager kvCache, int maxContextLength)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(kvCache);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxContextLength, 2);
        options.Validate();
        _options = options;
        _kv = kvCache;
        MaxContextLength = maxContextLength;
        _poolTokens = kvCache.Allocator.Capacity * kvCache.BlockSize;
        _running = new List<Sequence>(options.MaxRunningSequences);
        _batch = new ScheduledBatch(options.MaxRunningSequences + 1);
    }

    /// <summary>The KV block manager.</summary>
    public KvCacheManager KvCache => _kv;

    /// <summary>Most tokens a sequence may hold.</summary>
    public int MaxContextLength { get; }

    /// <summary>Sequences waiting for admission.</summary>
    public int WaitingCount => _waiting.Count;

    /// <summary>Sequences admitted and scheduled every step.</summary>
    public int RunningCount => _running.Count;

    /// <summary>Reservations holding blocks for a transfer (disaggregated decode).</summary>
    public int ReservedCount => _reserved;

    /// <summary>Running sequences, in admission order.</summary>
    public IReadOnlyList<Sequence> Running => _running;

    /// <summary>True when no sequence waits or runs.</summary>
    public bool IsIdle => _waiting.Count == 0 && _running.Count == 0;

    /// <summary>
    /// Queues a new sequence. Throws <see cref="PromptTooLongException"/> when its prompt could never fit the context or the
    /// whole KV pool, and <see cref="EngineOverloadedException"/> when the waiting queue is full.
    /// </summary>
    public void Enqueue(Sequence sequence)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        if (sequence.Status != SequenceStatus.Waiting || sequence.BlockCount != 0)
            throw new ArgumentException("Only a new sequence can be queued.", nameof(sequence));
        CheckFits(sequence);
        if (_waiting.Count >= _options.MaxWaitingRequests)
            throw new EngineOverloadedException(
                $"The engine's queue is full ({_options.MaxWaitingRequests} requests waiting); request {sequence.Id} was not admitted.");
        _waiting.AddLast(sequence);
    }

    /// <summary>Builds the next step. The batch is reused: it is valid until the next call.</summary>
    public ScheduledBatch Schedule()
    {
        var batch = _batch;
        batch.Clear();
        int budget = _options.MaxBatchedTokens;

        // 1. Running sequences: a decode token each, or the next chunk of a prompt being prefilled.
        for (int i = 0; i < _running.Count && budget > 0; i++)
        {
            var seq = _running[i];
            if (seq.Status != SequenceStatus.Running) continue; // preempted earlier in this pass
            int n = Math.Min(seq.Length - seq.ComputedTokens, budget);
            while (!_kv.TryGrow(seq, seq.ComputedTokens + n))
            {
                var victim = LastRunning();
                if (ReferenceEquals(victim, seq))
                {
                    // Nothing younger to take from: wait for memory held elsewhere (reservations, retained KV). A sequence
                    // alone always fits, because generation stops at the pool's size (see StopReason).
                    Preempt(seq);
                    batch.PreemptedCount++;
                    break;
                }
                Preempt(victim);
                batch.PreemptedCount++;
            }
            if (seq.Status != SequenceStatus.Running) continue;
            batch.Add(new ScheduledChunk(seq, seq.ComputedTokens, n, seq.ComputedTokens + n == seq.Length));
            budget -= n;
        }
        if (batch.PreemptedCount > 0) RemoveInactiveRunning();

        // 2. Admissions, first come first served, unless this step already had to preempt (memory is short).
        while (batch.PreemptedCount == 0 && budget > 0 && _waiting.Count > 0 && _running.Count + _reserved < _options.MaxRunningSequences)
        {
            var seq = _waiting.PeekFirst();
            // Recompute at least the last token: its logits pick the next one.
            if (_options.EnablePrefixCaching) _kv.AttachCachedPrefix(seq, seq.Length - 1);
            int n = Math.Min(seq.Length - seq.ComputedTokens, budget);
            if (!_kv.TryGrow(seq, seq.ComputedTokens + n))
            {
                _kv.Free(seq, cacheComputed: false);
                seq.ComputedTokens = 0;
                seq.CachedTokens = 0;
                break; // head-of-line waits for memory, in order
            }
            _waiting.RemoveFirst();
            if (seq.FirstScheduledTimestamp == 0) seq.FirstScheduledTimestamp = Stopwatch.GetTimestamp();
            seq.Status = SequenceStatus.Running;
            _running.Add(seq);
            batch.Add(new ScheduledChunk(seq, seq.ComputedTokens, n, seq.ComputedTokens + n == seq.Length));
            budget -= n;
        }
        return batch;
    }

    /// <summary>
    /// Applies a step's results: positions of every chunk now have KV; each chunk that samples gets its token
    /// (<paramref name="sampledTokens"/>[i] for chunk i), and sequences that hit a stop condition finish and free their blocks.
    /// Prefill-only sequences become <see cref="SequenceStatus.Retained"/> after their first token.
    /// </summary>
    public void CompleteStep(ScheduledBatch batch, ReadOnlySpan<int> sampledTokens)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (!ReferenceEquals(batch, _batch)) throw new ArgumentException("Not this scheduler's batch.", nameof(batch));
        if (sampledTokens.Length < batch.Count) throw new ArgumentException("One sampled token per chunk is needed.", nameof(sampledTokens));
        var chunks = batch.Chunks;
        bool anyLeft = false;
        for (int i = 0; i < chunks.Length; i++)
        {
            var chunk = chunks[i];
            var seq = chunk.Sequence;
            if (seq.Status != SequenceStatus.Running) continue; // aborted while the step ran
            seq.ComputedTokens = chunk.End;
            bool prefillDone = chunk.Start < seq.PromptLength && chunk.End >= seq.PromptLength;
            if (prefillDone && _options.EnablePrefixCaching) _kv.CacheComputed(seq);
            if (!chunk.SamplesToken) continue;

            seq.Append(sampledTokens[i]);
            var reason = StopReason(seq, sampledTokens[i]);
            if (seq.PrefillOnly)
            {
                seq.FinishReason = reason;
                seq.Status = SequenceStatus.Retained;
                anyLeft = true;
            }
            else if (reason is { } r)
            {
                Finish(seq, r);
                anyLeft = true;
            }
        }
        if (anyLeft) RemoveInactiveRunning();
    }

    /// <summary>Cancels a sequence wherever it is, returning its blocks. Its <see cref="Sequence.FinishReason"/> becomes Cancelled.</summary>
    public void Abort(Sequence sequence)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        switch (sequence.Status)
        {
            case SequenceStatus.Waiting:
                _waiting.Remove(sequence);
                _kv.Free(sequence, cacheComputed: false);
                break;
            case SequenceStatus.Running:
                _running.Remove(sequence);
                _kv.Free(sequence, cacheComputed: true);
                break;
            case SequenceStatus.Retained:
                _kv.Free(sequence, cacheComputed: true);
                break;
            case SequenceStatus.Reserved:
                _reserved--;
                _kv.Free(sequence, cacheComputed: false); // a transfer may have left the blocks half-written
                break;
            case SequenceStatus.Finished:
                return;
        }
        sequence.Status = SequenceStatus.Finished;
        sequence.FinishReason = Disagg.FinishReason.Cancelled;
    }

    /// <summary>Returns the KV of a prefill-only sequence once it has been shipped (or is no longer wanted).</summary>
    public void ReleaseRetained(Sequence sequence)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        if (sequence.Status != SequenceStatus.Retained) throw new InvalidOperationException($"{sequence.Id} holds no retained KV.");
        _kv.Free(sequence, cacheComputed: true);
        sequence.Status = SequenceStatus.Finished;
    }

    /// <summary>
    /// Disaggregated decode, step 1: reserves blocks for a new sequence's whole prompt, reusing cached prefix blocks.
    /// Returns false (nothing held) when memory or decode slots are short; throws when the prompt could never fit.
    /// </summary>
    public bool TryReserve(Sequence sequence)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        if (sequence.Status != SequenceStatus.Waiting || sequence.BlockCount != 0)
            throw new ArgumentException("Only a new sequence can reserve blocks.", nameof(sequence));
        CheckFits(sequence);
        if (_running.Count + _reserved >= _options.MaxRunningSequences) return false;
        if (_options.EnablePrefixCaching) _kv.AttachCachedPrefix(sequence, sequence.PromptLength);
        if (!_kv.TryGrow(sequence, sequence.PromptLength))
        {
            _kv.Free(sequence, cacheComputed: false);
            sequence.ComputedTokens = 0;
            sequence.CachedTokens = 0;
            return false;
        }
        sequence.Status = SequenceStatus.Reserved;
        _reserved++;
        return true;
    }

    /// <summary>
    /// Disaggregated decode, step 2: the reservation's blocks now hold the prompt's KV and the prefill side sampled
    /// <paramref name="firstToken"/>; the sequence joins the running batch (or finishes at once if that token ends it).
    /// </summary>
    public void StartDecode(Sequence sequence, int firstToken)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        if (sequence.Status != SequenceStatus.Reserved) throw new InvalidOperationException($"{sequence.Id} has no reservation.");
        _reserved--;
        sequence.ComputedTokens = sequence.PromptLength;
        sequence.Append(firstToken);
        sequence.Status = SequenceStatus.Running;
        if (_options.EnablePrefixCaching) _kv.CacheComputed(sequence);
        if (StopReason(sequence, firstToken) is { } reason)
        {
            Finish(sequence, reason);
            return;
        }
        sequence.FirstScheduledTimestamp = Stopwatch.GetTimestamp();
        _running.Add(sequence);
    }

    private FinishReason? StopReason(Sequence seq, int token)
    {
        var sampling = seq.Sampling;
        if (!sampling.IgnoreEndOfSequence)
        {
            var stops = sampling.StopTokenIds;
            for (int i = 0; i < stops.Count; i++)
                if (stops[i] == token) return Disagg.FinishReason.StopToken;
        }
        if (seq.GeneratedCount >= sampling.MaxTokens) return Disagg.FinishReason.MaxTokens;
        if (seq.Length >= MaxContextLength || seq.Length >= _poolTokens) return Disagg.FinishReason.ContextLength;
        return null;
    }

    /// <summary>Finishes a running sequence with <paramref name="reason"/> (for example a stop string the engine found) and frees its blocks.</summary>
    public void Finish(Sequence sequence, FinishReason reason)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        if (sequence.Status != SequenceStatus.Running) throw new InvalidOperationException($"{sequence.Id} is not running.");
        _kv.Free(sequence, cacheComputed: true);
        sequence.Status = SequenceStatus.Finished;
        sequence.FinishReason = reason;
    }

    private void Preempt(Sequence seq)
    {
        _kv.Free(seq, cacheComputed: true);
        seq.Status = SequenceStatus.Waiting;
        seq.ComputedTokens = 0;
        seq.CachedTokens = 0;
        seq.PreemptionCount++;
        _waiting.AddFirst(seq);
    }

    private Sequence LastRunning()
    {
        for (int i = _running.Count - 1; i >= 0; i--)
            if (_running[i].Status == SequenceStatus.Running) return _running[i];
        throw new InvalidOperationException("No running sequence.");
    }

    private void RemoveInactiveRunning()
    {
        int w = 0;
        for (int r = 0; r < _running.Count; r++)
            if (_running[r].Status == SequenceStatus.Running) _running[w++] = _running[r];
        _running.RemoveRange(w, _running.Count - w);
    }

    private void CheckFits(Sequence sequence)
    {
        if (sequence.Length == 0)
            throw new InvalidRequestException(sequence.Id, "The prompt is empty: at least one token is needed.");
        if (sequence.Length >= MaxContextLength)
            throw new PromptTooLongException(sequence.Id, sequence.Length, MaxContextLength);
        if (_kv.BlocksFor(sequence.Length + 1) > _kv.Allocator.Capacity)
            throw new PromptTooLongException(sequence.Id, sequence.Length, _kv.Allocator.Capacity * _kv.BlockSize, "the engine's KV pool");
    }
}
