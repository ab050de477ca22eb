using Disagg.PrefixCache;

namespace Disagg.Scheduling;

/// <summary>Where a sequence is in its life.</summary>
public enum SequenceStatus
{
    /// <summary>Queued for admission (new, or preempted and waiting to be recomputed).</summary>
    Waiting,
    /// <summary>Admitted: holds KV blocks and is prefilled or decoded each step.</summary>
    Running,
    /// <summary>Prefill-only sequence that produced its first token; its KV blocks are kept until released (disaggregated prefill).</summary>
    Retained,
    /// <summary>Holds blocks reserved for a prompt whose KV a transport is filling (disaggregated decode); not scheduled yet.</summary>
    Reserved,
    /// <summary>Done; its blocks were returned.</summary>
    Finished,
}

/// <summary>
/// One request's tokens (prompt, then generated) and the KV blocks that hold them. Owned by a <see cref="Scheduler"/>
/// and touched only from the engine's loop thread.
/// </summary>
public sealed class Sequence
{
    private const int MaxPresizedGeneration = 8192;
    private int[] _tokens;
    private int[] _blockTable;

    /// <summary>Creates a waiting sequence for <paramref name="request"/>.</summary>
    public Sequence(InferenceRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        Request = request;
        var prompt = request.PromptTokens.Span;
        // Sized for the whole generation (up to a cap), so that decode steps do not reallocate.
        int expected = prompt.Length + Math.Min(request.Sampling.MaxTokens, MaxPresizedGeneration);
        _tokens = new int[Math.Max(4, expected)];
        prompt.CopyTo(_tokens);
        Length = prompt.Length;
        PromptLength = prompt.Length;
        _blockTable = new int[Math.Max(4, expected / 8)];
    }

    /// <summary>The request.</summary>
    public InferenceRequest Request { get; }

    /// <summary>The request's id.</summary>
    public RequestId Id => Request.Id;

    /// <summary>The request's sampling parameters.</summary>
    public SamplingParameters Sampling => Request.Sampling;

    /// <summary>Life-cycle state.</summary>
    public SequenceStatus Status { get; internal set; }

    /// <summary>Tokens in the prompt.</summary>
    public int PromptLength { get; }

    /// <summary>Prompt plus generated tokens.</summary>
    public int Length { get; private set; }

    /// <summary>Tokens generated so far.</summary>
    public int GeneratedCount => Length - PromptLength;

    /// <summary>All tokens: the prompt, then the generated ones.</summary>
    public ReadOnlySpan<int> Tokens => _tokens.AsSpan(0, Length);

    /// <summary>The last token (the input of the next decode step).</summary>
    public int LastToken => _tokens[Length - 1];

    /// <summary>Leading positions whose KV is written in the blocks.</summary>
    public int ComputedTokens { get; internal set; }

    /// <summary>Leading positions whose KV came from the prefix cache at the last admission.</summary>
    public int CachedTokens { get; internal set; }

    /// <summary>Number of blocks in <see cref="BlockTable"/>.</summary>
    public int BlockCount { get; private set; }

    /// <summary>KV block ids in position order.</summary>
    public ReadOnlySpan<int> BlockTable => _blockTable.AsSpan(0, BlockCount);

    /// <summary>Why the sequence finished, once it has.</summary>
    public FinishReason? FinishReason { get; internal set; }

    /// <summary>Times this sequence was preempted (its KV dropped, to be recomputed).</summary>
    public int PreemptionCount { get; internal set; }

    /// <summary>Prefill only: finish after the first token and keep the prompt's KV (see <see cref="SequenceStatus.Retained"/>).</summary>
    public bool PrefillOnly { get; init; }

    /// <summary><see cref="System.Diagnostics.Stopwatch"/> timestamp of the first admission (0 before).</summary>
    public long FirstScheduledTimestamp { get; internal set; }

    /// <summary>Slot for the model executor's per-sequence state (for example its sampler).</summary>
    public object? ExecutorState { get; set; }

    /// <summary>Slot for the engine's per-sequence state (for example the output stream).</summary>
    public object? EngineState { get; set; }

    /// <summary>Blocks at the front of <see cref="BlockTable"/> borrowed from the prefix cache (kept alive by <see cref="PrefixLock"/>, not owned).</summary>
    internal int BorrowedBlocks { get; set; }

    /// <summary>The prefix-cache lock protecting the borrowed blocks (and any blocks this sequence inserted).</summary>
    internal PrefixMatch PrefixLock { get; set; }

    internal void Append(int token)
    {
        if (Length == _tokens.Length) Array.Resize(ref _tokens, _tokens.Length * 2);
        _tokens[Length++] = token;
    }

    internal void AddBlock(int blockId)
    {
        if (BlockCount == _blockTable.Length) Array.Resize(ref _blockTable, _blockTable.Length * 2);
        _blockTable[BlockCount++] = blockId;
    }

    internal Span<int> AddBlocks(int count)
    {
        int needed = BlockCount + count;
        if (needed > _blockTable.Length) Array.Resize(ref _blockTable, Math.Max(needed, _blockTable.Length * 2));
        var added = _blockTable.AsSpan(BlockCount, count);
        BlockCount = needed;
        return added;
    }

    internal void TruncateBlocks(int count) => BlockCount = count;

    internal void ClearBlocks()
    {
        BlockCount = 0;
        BorrowedBlocks = 0;
        PrefixLock = default;
    }

    /// <inheritdoc />
    public override string ToString() => $"{Id} {Status}: {Length} tokens ({ComputedTokens} computed), {BlockCount} blocks";
}
