using Disagg.Scheduling;

namespace Disagg.Cuda.Model;

/// <summary>
/// Where a step's chunks run and where their sampled rows land. A mixed step (single-token chunks beside prompt chunks) is
/// split: its single-token chunks become the decoder's rows and the rest runs through the TorchSharp forward as a sub-batch.
/// The two parts give their sampling rows' logits one after the other (the decoder's first); <see cref="RowChunks"/> maps
/// each of those rows back to its chunk, so that tokens come out in the step's chunk order. Owned by one executor and
/// reused every step: no allocation once its arrays have grown to the largest step.
/// </summary>
internal sealed class StepPartition
{
    private ScheduledChunk[] _decodeRows = [];
    private ScheduledChunk[] _forwardChunks = [];
    private int[] _rowChunks = [];
    private int[] _forwardRowChunks = [];
    private long[] _decodeSamplingRows = [];
    private int _decodeCount, _forwardCount, _rowCount, _decodeSamplingCount;

    /// <summary>The chunks the decoder runs, in step order (each one token).</summary>
    public ReadOnlySpan<ScheduledChunk> DecodeRows => _decodeRows.AsSpan(0, _decodeCount);

    /// <summary>The chunks the TorchSharp forward runs, in step order.</summary>
    public ReadOnlySpan<ScheduledChunk> ForwardChunks => _forwardChunks.AsSpan(0, _forwardCount);

    /// <summary>For each sampling row (the decode rows' that sample, then the forward's), the index of its chunk in the step.</summary>
    public ReadOnlySpan<int> RowChunks => _rowChunks.AsSpan(0, _rowCount);

    /// <summary>Indexes of the decoder's rows that sample, in order (what to select from its outputs): into
    /// <see cref="DecodeRows"/> after <see cref="Split"/>, into the step's chunks after <see cref="Whole"/>.</summary>
    public ReadOnlySpan<long> DecodeSamplingRows => _decodeSamplingRows.AsSpan(0, _decodeSamplingCount);

    /// <summary>True when <paramref name="chunks"/> holds both a single-token chunk and a longer one (the steps <see cref="Split"/> is for).</summary>
    public static bool IsMixed(ReadOnlySpan<ScheduledChunk> chunks)
    {
        bool single = false, longer = false;
        foreach (var c in chunks)
        {
            if (c.Count == 1) single = true;
            else longer = true;
        }
        return single && longer;
    }

    /// <summary>No split: the step runs in one part (the decoder's or the forward's), its sampling rows in chunk order.</summary>
    public void Whole(ReadOnlySpan<ScheduledChunk> chunks)
    {
        Reset(chunks.Length);
        for (int i = 0; i < chunks.Length; i++)
            if (chunks[i].SamplesToken)
            {
                _decodeSamplingRows[_decodeSamplingCount++] = i;
                _rowChunks[_rowCount++] = i;
            }
    }

    /// <summary>
    /// Splits a mixed step (<see cref="IsMixed"/>): the first <paramref name="maxDecodeRows"/> single-token chunks whose
    /// block table has at most <paramref name="maxBlocks"/> entries become decode rows (any position works: the decoder
    /// takes a chunk's start as its position and its end as its context), everything else runs in the forward. False,
    /// leaving the partition empty (call <see cref="Whole"/> next), when no chunk qualifies as a decode row.
    /// </summary>
    public bool Split(ReadOnlySpan<ScheduledChunk> chunks, int maxDecodeRows, int maxBlocks)
    {
        Reset(chunks.Length);
        int forwardRows = 0;
        for (int i = 0; i < chunks.Length; i++)
        {
            var c = chunks[i];
            if (c.Count == 1 && _decodeCount < maxDecodeRows && c.Sequence.BlockTable.Length <= maxBlocks)
            {
                if (c.SamplesToken)
                {
                    _decodeSamplingRows[_decodeSamplingCount++] = _decodeCount;
                    _rowChunks[_rowCount++] = i;
                }
                _decodeRows[_decodeCount++] = c;
            }
            else
            {
                if (c.SamplesToken) _forwardRowChunks[forwardRows++] = i;
                _forwardChunks[_forwardCount++] = c;
            }
        }
        if (_decodeCount == 0)
        {
            Release();
            return false;
        }
        _forwardRowChunks.AsSpan(0, forwardRows).CopyTo(_rowChunks.AsSpan(_rowCount)); // the forward's rows follow the decoder's
        _rowCount += forwardRows;
        return true;
    }

    /// <summary>Drops the references to the step's sequences (the arrays live on between steps).</summary>
    public void Release()
    {
        Array.Clear(_decodeRows, 0, _decodeCount);
        Array.Clear(_forwardChunks, 0, _forwardCount);
        _decodeCount = _forwardCount = _rowCount = _decodeSamplingCount = 0;
    }

    private void Reset(int capacity)
    {
        Release();
        if (_rowChunks.Length < capacity)
        {
            int size = Math.Max(capacity, 2 * _rowChunks.Length);
            _decodeRows = new ScheduledChunk[size];
            _forwardChunks = new ScheduledChunk[size];
            _rowChunks = new int[size];
            _forwardRowChunks = new int[size];
            _decodeSamplingRows = new long[size];
        }
    }
}
