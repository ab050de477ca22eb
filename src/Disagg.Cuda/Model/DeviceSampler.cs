using Disagg.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Cuda.Model;

/// <summary>How one row is sampled on the device: <see cref="DeviceSampler"/>'s per-row arguments.</summary>
/// <param name="InverseTemperature">1 / temperature.</param>
/// <param name="TopK">Candidates kept (the vocabulary size for no limit).</param>
/// <param name="TopP">Probability mass kept (anything above 1 for no limit).</param>
/// <param name="MinP">Candidates less likely than this times the best are dropped (0 for no limit).</param>
/// <param name="Uniform">The draw in [0, 1).</param>
internal readonly record struct SamplingRow(double InverseTemperature, long TopK, double TopP, double MinP, double Uniform)
{
    /// <summary>The row for token <paramref name="tokenIndex"/> of a request. A greedy request keeps one candidate: the
    /// argmax of its (penalized) logits, the lowest id among equals.</summary>
    public static SamplingRow For(SamplingParameters p, long vocab, ulong seed, int tokenIndex) => p.IsGreedy
        ? new(1.0, 1, 2.0, 0.0, 0.0)
        : new(1.0 / p.Temperature, p.TopK > 0 ? p.TopK : vocab, p.TopP < 1f ? p.TopP : 2.0, p.MinP, SamplingRandom.Uniform(seed, tokenIndex));
}

/// <summary>
/// Penalties, temperature, top-k, top-p and min-p sampling on the logits' device, so that only token ids cross to the
/// host. It follows <see cref="TokenSampler"/> step for step (the same penalty arithmetic, candidate order, truncation
/// rules and uniform draw, double precision), so a request samples the same tokens on any device and in any engine.
/// </summary>
internal static class DeviceSampler
{
    /// <summary>Samples one token per row of <paramref name="logits"/> [rows, vocab].</summary>
    /// <param name="logits">Float logits, one row per sequence; not modified.</param>
    /// <param name="rows">How each row is sampled.</param>
    /// <param name="penalties">The penalized tokens of each row (<see cref="TokenPenalties"/>), at most one entry per (row, token).</param>
    /// <returns>Token ids, on the host.</returns>
    public static long[] Sample(Tensor logits, ReadOnlySpan<SamplingRow> rows, IReadOnlyList<(int Row, PenalizedToken Token)> penalties)
    {
        using var scope = NewDisposeScope();
        var device = logits.device;
        long vocab = logits.shape[1];
        var values = logits.to(ScalarType.Float64, copy: true).contiguous();
        if (penalties.Count > 0) Penalize(values, penalties);
        var (sorted, order) = values.sort(dim: 1, descending: true, stable: true); // ties: lower id first

        var invT = Column(rows, r => r.InverseTemperature, device);
        var probs = (sorted - sorted.narrow(1, 0, 1)).mul(invT).exp(); // unnormalised, the best candidate is 1
        var position = arange(vocab, ScalarType.Int64, device).unsqueeze(0);
        var topK = new long[rows.Length];
        for (int i = 0; i < rows.Length; i++) topK[i] = rows[i].TopK;
        probs = probs.masked_fill(position.ge(tensor(topK, ScalarType.Int64, device).unsqueeze(1)), 0.0);

        // Top-p keeps the shortest prefix whose mass reaches p: drop a candidate when the mass before it already does.
        var cumulative = probs.cumsum(1);
        var threshold = Column(rows, r => r.TopP, device).mul(cumulative.narrow(1, vocab - 1, 1));
        var massBefore = cat([zeros([probs.shape[0], 1], ScalarType.Float64, device), cumulative.narrow(1, 0, vocab - 1)], 1);
        probs = probs.masked_fill(massBefore.ge(threshold), 0.0);
        // Min-p against the best candidate, whose probability is 1 here; along the order this too drops a suffix.
        probs = probs.masked_fill(probs.lt(Column(rows, r => r.MinP, device)), 0.0);

        // Inverse CDF: the first candidate whose cumulative mass exceeds u * total.
        cumulative = probs.cumsum(1);
        var target = Column(rows, r => r.Uniform, device).mul(cumulative.narrow(1, vocab - 1, 1));
        var pick = cumulative.le(target).sum([1L], keepdim: true, type: ScalarType.Int64);
        var lastKept = probs.gt(0.0).sum([1L], keepdim: true, type: ScalarType.Int64) - 1;
        pick = pick.minimum(lastKept);
        return order.gather(1, pick).squeeze(1).cpu().data<long>().ToArray();
    }

    /// <summary>Applies <see cref="PenalizedToken.Apply"/> to the named entries of <paramref name="values"/> in place: the
    /// same division or multiplication, then the same subtraction, each rounded once, as the reference does.</summary>
    private static void Penalize(Tensor values, IReadOnlyList<(int Row, PenalizedToken Token)> penalties)
    {
        long vocab = values.shape[1];
        var at = new List<long>(penalties.Count);
        var repetition = new List<double>(penalties.Count);
        var subtract = new List<double>(penalties.Count);
        foreach (var (row, p) in penalties)
        {
            if ((ulong)p.Token >= (ulong)vocab) continue; // as the reference: a token outside the vocabulary has no logit
            at.Add(row * vocab + p.Token);
            repetition.Add(p.Repetition);
            subtract.Add(p.Subtract);
        }
        if (at.Count == 0) return;
        var device = values.device;
        var flat = values.view(-1);
        var index = tensor(at.ToArray(), ScalarType.Int64, device);
        var v = flat.index_select(0, index);
        var r = tensor(repetition.ToArray(), ScalarType.Float64, device);
        v = where(v.gt(0.0), v.div(r), v.mul(r)).sub(tensor(subtract.ToArray(), ScalarType.Float64, device));
        flat.index_copy_(0, index, v);
    }

    private static Tensor Column(ReadOnlySpan<SamplingRow> rows, Func<SamplingRow, double> field, Device device)
    {
        var column = new double[rows.Length];
        for (int i = 0; i < rows.Length; i++) column[i] = field(rows[i]);
        return tensor(column, ScalarType.Float64, device).unsqueeze(1);
    }
}
