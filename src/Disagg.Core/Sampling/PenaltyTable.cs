namespace Disagg.Sampling;

/// <summary>
/// The tokens that a step's penalized rows hold, in the flat form a device sampler uploads in one copy: per token its
/// position in the step's [rows, vocab] logits and its count in the output (0: only in the prompt), interleaved. The
/// sampler applies <see cref="PenalizedToken.Apply"/>'s arithmetic itself from each row's penalties. Reused step after
/// step; not thread-safe.
/// </summary>
public sealed class PenaltyTable
{
    private int[] _pairs = new int[256];

    /// <summary>Entries added since <see cref="Clear"/>.</summary>
    public int Count { get; private set; }

    /// <summary>The entries, position then count.</summary>
    public ReadOnlySpan<int> Pairs => _pairs.AsSpan(0, 2 * Count);

    /// <summary>Empties the table, keeping its buffer.</summary>
    public void Clear() => Count = 0;

    /// <summary>Adds every token that <paramref name="counts"/> holds for row <paramref name="row"/>; a token outside the
    /// vocabulary has no logit to change and is left out, as the reference sampler leaves it.</summary>
    /// <exception cref="OverflowException">A position does not fit 32 bits (rows times vocabulary of 2^31 or more).</exception>
    public void Add(int row, int vocab, TokenPenalties counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocab);
        int first = checked(row * vocab);
        int needed = 2 * (Count + counts.DistinctCount);
        if (needed > _pairs.Length) Array.Resize(ref _pairs, Math.Max(needed, 2 * _pairs.Length));
        int at = 2 * Count;
        foreach (var (token, count) in counts)
        {
            if ((uint)token >= (uint)vocab) continue;
            _pairs[at++] = first + token;
            _pairs[at++] = count;
        }
        Count = at / 2;
    }
}
