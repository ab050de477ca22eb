using System.Numerics;

namespace Disagg.Sampling;

/// <summary>
/// Counter-based randomness for sampling: the draw for a request's n-th token depends only on (seed, n). That is what lets
/// a preempted-and-recomputed sequence, or one whose first token came from another engine, draw exactly the same stream.
/// </summary>
public static class SamplingRandom
{
    /// <summary>A uniform number in [0, 1) for token <paramref name="tokenIndex"/> of the stream <paramref name="seed"/>.</summary>
    public static double Uniform(ulong seed, int tokenIndex)
    {
        ulong z = seed + 0x9E3779B97F4A7C15UL * (ulong)(uint)(tokenIndex + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (z >> 11) * (1.0 / (1UL << 53));
    }
}

/// <summary>
/// Picks a token from logits on the CPU: greedy, or temperature, top-k, top-p and min-p, with the draw from
/// <see cref="SamplingRandom"/>, after the repetition, presence and frequency penalties of the sequence's history. This is
/// the reference that device samplers must agree with: penalties (<see cref="PenalizedToken.Apply"/>), then candidates
/// ordered by logit (ties by id), top-k, the shortest prefix whose probability mass reaches top-p, min-p against the most
/// likely candidate, and inverse-CDF with the uniform draw, all in double precision. Reuses its buffers: one instance per thread.
/// </summary>
public sealed class TokenSampler
{
    private int[] _order = [];
    private double[] _probs = [];
    private readonly ByLogitDescending _comparer = new();
    private readonly TokenPenalties _penalties = new();
    private readonly List<PenalizedToken> _penalized = [];

    /// <summary>Samples token <paramref name="tokenIndex"/> of a request from <paramref name="logits"/>, with no history for
    /// penalties to act on.</summary>
    public int Sample(ReadOnlySpan<float> logits, SamplingParameters parameters, ulong seed, int tokenIndex) =>
        Sample(logits, parameters, seed, tokenIndex, [], 0);

    /// <summary>Samples the next token of a sequence holding <paramref name="tokens"/> (its first
    /// <paramref name="promptLength"/> the prompt): token number <c>tokens.Length - promptLength</c> of the request's stream.</summary>
    public int Sample(ReadOnlySpan<float> logits, SamplingParameters parameters, ulong seed, ReadOnlySpan<int> tokens, int promptLength) =>
        Sample(logits, parameters, seed, tokens.Length - promptLength, tokens, promptLength);

    private int Sample(ReadOnlySpan<float> logits, SamplingParameters parameters, ulong seed, int tokenIndex, ReadOnlySpan<int> tokens, int promptLength)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (logits.IsEmpty) throw new ArgumentException("No logits.", nameof(logits));
        if (parameters.IsGreedy && !parameters.HasPenalties) return ArgMax(logits);

        int n = logits.Length;
        if (_order.Length < n)
        {
            _order = new int[n];
            _probs = new double[n];
            _comparer.Logits = new double[n];
        }
        var values = _comparer.Logits.AsSpan(0, n);
        for (int i = 0; i < n; i++) values[i] = logits[i];
        _penalized.Clear();
        _penalties.Collect(tokens, promptLength, parameters, _penalized);
        foreach (var p in _penalized)
            if ((uint)p.Token < (uint)n) values[p.Token] = p.Apply(values[p.Token]);
        if (parameters.IsGreedy) return ArgMax<double>(values);

        var order = _order.AsSpan(0, n);
        var probs = _probs.AsSpan(0, n);
        for (int i = 0; i < n; i++) order[i] = i;
        order.Sort(_comparer); // by logit, descending; ties by token id so that every implementation agrees

        int kept = parameters.TopK > 0 ? Math.Min(parameters.TopK, n) : n;
        double max = values[order[0]];
        double inverseTemperature = 1.0 / parameters.Temperature;
        double sum = 0;
        for (int i = 0; i < kept; i++)
        {
            double p = Math.Exp((values[order[i]] - max) * inverseTemperature); // in double, as device samplers do; the best is 1
            probs[i] = p;
            sum += p;
        }
        if (parameters.TopP < 1f)
        {
            double cumulative = 0, threshold = parameters.TopP * sum;
            for (int i = 0; i < kept; i++)
            {
                cumulative += probs[i];
                if (cumulative >= threshold)
                {
                    kept = i + 1;
                    sum = cumulative;
                    break;
                }
            }
        }
        if (parameters.MinP > 0f)
        {
            // Relative to the best candidate, whose unnormalised probability is 1; probabilities fall along the order.
            int above = 1;
            while (above < kept && probs[above] >= parameters.MinP) above++;
            if (above < kept)
            {
                kept = above;
                sum = 0;
                for (int i = 0; i < kept; i++) sum += probs[i];
            }
        }

        double u = SamplingRandom.Uniform(seed, tokenIndex) * sum;
        double acc = 0;
        for (int i = 0; i < kept; i++)
        {
            acc += probs[i];
            if (u < acc) return order[i];
        }
        return order[kept - 1];
    }

    /// <summary>Index of the largest logit; the lowest index among equals.</summary>
    public static int ArgMax<T>(ReadOnlySpan<T> logits) where T : IComparisonOperators<T, T, bool>
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    private sealed class ByLogitDescending : IComparer<int>
    {
        public double[] Logits = [];

        public int Compare(int x, int y)
        {
            int c = Logits[y].CompareTo(Logits[x]);
            return c != 0 ? c : x.CompareTo(y);
        }
    }
}
