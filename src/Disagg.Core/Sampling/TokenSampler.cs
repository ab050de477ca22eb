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
/// Picks a token from logits on the CPU: greedy, or temperature, top-k and top-p, with the draw from <see cref="SamplingRandom"/>.
/// This is the reference that device samplers must agree with: candidates ordered by logit (ties by id), top-k, then the
/// shortest prefix whose probability mass reaches top-p, then inverse-CDF with the uniform draw, all in double precision.
/// Reuses its buffers: one instance per thread.
/// </summary>
public sealed class TokenSampler
{
    private int[] _order = [];
    private double[] _probs = [];
    private readonly ByLogitDescending _comparer = new();

    /// <summary>Samples token <paramref name="tokenIndex"/> of a request from <paramref name="logits"/>.</summary>
    public int Sample(ReadOnlySpan<float> logits, SamplingParameters parameters, ulong seed, int tokenIndex)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (logits.IsEmpty) throw new ArgumentException("No logits.", nameof(logits));
        if (parameters.IsGreedy) return ArgMax(logits);

        int n = logits.Length;
        if (_order.Length < n)
        {
            _order = new int[n];
            _probs = new double[n];
            _comparer.Logits = new float[n];
        }
        var order = _order.AsSpan(0, n);
        var probs = _probs.AsSpan(0, n);
        logits.CopyTo(_comparer.Logits);
        for (int i = 0; i < n; i++) order[i] = i;
        order.Sort(_comparer); // by logit, descending; ties by token id so that every implementation agrees

        int kept = parameters.TopK > 0 ? Math.Min(parameters.TopK, n) : n;
        double max = logits[order[0]];
        double inverseTemperature = 1.0 / parameters.Temperature;
        double sum = 0;
        for (int i = 0; i < kept; i++)
        {
            double p = Math.Exp((logits[order[i]] - max) * inverseTemperature); // in double, as device samplers do
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
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    private sealed class ByLogitDescending : IComparer<int>
    {
        public float[] Logits = [];

        public int Compare(int x, int y)
        {
            int c = Logits[y].CompareTo(Logits[x]);
            return c != 0 ? c : x.CompareTo(y);
        }
    }
}
