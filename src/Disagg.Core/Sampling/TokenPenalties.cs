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
/// <see cref="SamplingParameters"/> touch, and by how much. The host does this once per sampled row; the logits stay where
/// they are and only the touched entries change. Reuses its buffers: one instance per thread.
/// </summary>
public sealed class TokenPenalties
{
    private readonly Dictionary<int, int> _outputCounts = []; // token -> times in the output (0: only in the prompt)

    /// <summary>Appends to <paramref name="into"/> one entry per distinct token of <paramref name="tokens"/> that a penalty
    /// changes; appends nothing when <paramref name="parameters"/> has no penalty.</summary>
    /// <param name="tokens">The sequence so far: the prompt, then the tokens generated.</param>
    /// <param name="promptLength">How many of <paramref name="tokens"/> are the prompt.</param>
    /// <param name="parameters">The request's sampling parameters.</param>
    /// <param name="into">Where the entries go, in no particular order.</param>
    public void Collect(ReadOnlySpan<int> tokens, int promptLength, SamplingParameters parameters, List<PenalizedToken> into)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(into);
        ArgumentOutOfRangeException.ThrowIfNegative(promptLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(promptLength, tokens.Length);
        if (!parameters.HasPenalties) return;

        bool repetition = parameters.RepetitionPenalty != 1f;
        bool additive = parameters.PresencePenalty != 0f || parameters.FrequencyPenalty != 0f;
        _outputCounts.Clear();
        if (repetition)
            foreach (int t in tokens[..promptLength]) _outputCounts.TryAdd(t, 0);
        foreach (int t in tokens[promptLength..]) CollectionsMarshal.GetValueRefOrAddDefault(_outputCounts, t, out _)++;

        foreach (var (token, count) in _outputCounts)
        {
            double subtract = additive && count > 0 ? (double)parameters.FrequencyPenalty * count + parameters.PresencePenalty : 0.0;
            into.Add(new PenalizedToken(token, repetition ? parameters.RepetitionPenalty : 1.0, subtract));
        }
    }
}
