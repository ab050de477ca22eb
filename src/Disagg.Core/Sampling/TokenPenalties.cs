using System.Runtime.InteropServices;

namespace Disagg.Sampling;

/// <summary>One token whose logit a penalty changes: the new logit is
/// <c>(logit &gt; 0 ? logit / Repetition : logit * Repetition) - Subtract</c>, in double precision.</summary>
/// <param name="Token">The token id.</param>
/// <param name="Repetition">The repetition penalty if the token is in the prompt or the output, else 1.</param>
/// <param name="Subtract">Frequency penalty times the token's count in the output plus the presence penalty, if the
/// output holds it; else 0.</param>
public readonly record struct PenalizedToken(int Token, double Repetition, double Subtract)
{
    /// <summary>The penalized logit. Device samplers apply the same two operations in the same order, so they agree bit for bit.</summary>
    public double Apply(double logit) => (logit > 0 ? logit / Repetition : logit * Repetition) - Subtract;
}

/// <summary>
/// Works out which tokens of a sequence's history the repetition, presence and frequency penalties of its
/// <see cref="SamplingParameters"/> touch, and by how much. The counts are kept between calls: a sequence that holds one
/// instance (an executor keeps it in <see cref="Scheduling.Sequence.ExecutorState"/>) pays per step for its new tokens
/// and its distinct tokens, not for its whole history. Not thread-safe.
/// </summary>
public sealed class TokenPenalties
{
    private readonly Dictionary<int, int> _outputCounts = []; // token -> times in the output (0: only in the prompt)
    private int _counted, _promptLength;

    /// <summary>Forgets every token counted.</summary>
    public void Reset()
    {
        _outputCounts.Clear();
        _counted = 0;
        _promptLength = 0;
    }

    /// <summary>Counts the tokens of <paramref name="tokens"/> not counted yet. <paramref name="tokens"/> must begin with the
    /// tokens of the earlier calls (a sequence only grows); a shorter sequence or another prompt length starts over.</summary>
    /// <param name="tokens">The sequence so far: the prompt, then the tokens generated.</param>
    /// <param name="promptLength">How many of <paramref name="tokens"/> are the prompt.</param>
    public void Update(ReadOnlySpan<int> tokens, int promptLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(promptLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(promptLength, tokens.Length);
        if (tokens.Length < _counted || promptLength != _promptLength)
        {
            Reset();
            _promptLength = promptLength;
        }
        for (int i = _counted; i < tokens.Length; i++)
        {
            if (i < promptLength) _outputCounts.TryAdd(tokens[i], 0);
            else CollectionsMarshal.GetValueRefOrAddDefault(_outputCounts, tokens[i], out _)++;
        }
        _counted = tokens.Length;
    }

    /// <summary>Appends to <paramref name="into"/> one entry per distinct token counted that a penalty of
    /// <paramref name="parameters"/> changes; nothing when it has no penalty.</summary>
    public void AppendTo(SamplingParameters parameters, List<PenalizedToken> into)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(into);
        if (!parameters.HasPenalties) return;
        bool repetition = parameters.RepetitionPenalty != 1f;
        bool additive = parameters.PresencePenalty != 0f || parameters.FrequencyPenalty != 0f;
        foreach (var (token, count) in _outputCounts)
        {
            if (count == 0 && !repetition) continue; // presence and frequency look at the output alone
            double subtract = additive && count > 0 ? (double)parameters.FrequencyPenalty * count + parameters.PresencePenalty : 0.0;
            into.Add(new PenalizedToken(token, repetition ? parameters.RepetitionPenalty : 1.0, subtract));
        }
    }

    /// <summary>How many distinct tokens are counted.</summary>
    public int DistinctCount => _outputCounts.Count;

    /// <summary>Enumerates the distinct tokens counted, each with its count in the output (0: only in the prompt), without
    /// allocating. Device samplers take these and apply the penalties' arithmetic themselves.</summary>
    public Dictionary<int, int>.Enumerator GetEnumerator() => _outputCounts.GetEnumerator();

    /// <summary>From scratch: <see cref="Reset"/>, <see cref="Update"/> and <see cref="AppendTo"/> in one call.</summary>
    public void Collect(ReadOnlySpan<int> tokens, int promptLength, SamplingParameters parameters, List<PenalizedToken> into)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Reset();
        if (!parameters.HasPenalties) return;
        Update(tokens, promptLength);
        AppendTo(parameters, into);
    }
}
