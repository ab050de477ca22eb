namespace Disagg.Scheduling;

/// <summary>
/// One sequence's share of a step: positions [<see cref="Start"/>, <see cref="End"/>) of its tokens go through the model,
/// their KV is written into its blocks, and when <see cref="SamplesToken"/> the logits of the last position pick its next token.
/// </summary>
/// <param name="Sequence">The sequence.</param>
/// <param name="Start">First position computed.</param>
/// <param name="Count">Positions computed (1 for a decode step).</param>
/// <param name="SamplesToken">True when the chunk reaches the sequence's last token, so a new token is sampled.</param>
public readonly record struct ScheduledChunk(Sequence Sequence, int Start, int Count, bool SamplesToken)
{
    /// <summary>One past the last position computed.</summary>
    public int End => Start + Count;

    /// <summary>True for a decode step (one new position after the prompt was prefilled).</summary>
    public bool IsDecode => Count == 1 && Start >= Sequence.PromptLength;
}

/// <summary>
/// The work of one engine step. Owned and reused by the <see cref="Scheduler"/>: valid until the next
/// <see cref="Scheduler.Schedule"/>.
/// </summary>
public sealed class ScheduledBatch
{
    private ScheduledChunk[] _chunks;

    internal ScheduledBatch(int capacity) => _chunks = new ScheduledChunk[capacity];

    /// <summary>The chunks, in the order the scheduler chose (running sequences first, then new admissions).</summary>
    public ReadOnlySpan<ScheduledChunk> Chunks => _chunks.AsSpan(0, Count);

    /// <summary>Number of chunks.</summary>
    public int Count { get; private set; }

    /// <summary>Positions computed this step, over all chunks.</summary>
    public int TotalTokens { get; private set; }

    /// <summary>Chunks that sample a token (the number of tokens this step produces).</summary>
    public int SamplingCount { get; private set; }

    /// <summary>Sequences preempted while building this batch (their KV dropped; they wait to be recomputed).</summary>
    public int PreemptedCount { get; internal set; }

    /// <summary>True when there is nothing to run.</summary>
    public bool IsEmpty => Count == 0;

    internal void Clear()
    {
        Count = 0;
        TotalTokens = 0;
        SamplingCount = 0;
        PreemptedCount = 0;
    }

    internal void Add(in ScheduledChunk chunk)
    {
        if (Count == _chunks.Length) Array.Resize(ref _chunks, _chunks.Length * 2);
        _chunks[Count++] = chunk;
        TotalTokens += chunk.Count;
        if (chunk.SamplesToken) SamplingCount++;
    }

    /// <summary>Removes the chunks of sequences that were preempted after being added (their status is no longer running).</summary>
    internal void RemovePreempted()
    {
        int w = 0;
        TotalTokens = 0;
        SamplingCount = 0;
        for (int r = 0; r < Count; r++)
        {
            var c = _chunks[r];
            if (c.Sequence.Status != SequenceStatus.Running) continue;
            _chunks[w++] = c;
            TotalTokens += c.Count;
            if (c.SamplesToken) SamplingCount++;
        }
        Array.Clear(_chunks, w, Count - w);
        Count = w;
    }
}
