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

        // Every row's arguments in one upload: a pageable copy to a GPU waits for the stream, so each one costs host time.
        var arguments = new double[rows.Length * 5];
        for (int i = 0; i < rows.Length; i++)
        {
            var r = rows[i];
            arguments[i * 5] = r.InverseTemperature;
            arguments[i * 5 + 1] = r.TopK; // exact: a vocabulary is far below 2^53
            arguments[i * 5 + 2] = r.TopP;
            arguments[i * 5 + 3] = r.MinP;
            arguments[i * 5 + 4] = r.Uniform;
        }
        var columns = tensor(arguments, [rows.Length, 5], ScalarType.Float64, device);
        Tensor Column(int index) => columns.narrow(1, index, 1);

        var probs = (sorted - sorted.narrow(1, 0, 1)).mul(Column(0)).exp(); // unnormalised, the best candidate is 1
        var position = arange(vocab, ScalarType.Float64, device).unsqueeze(0);
        probs = probs.masked_fill(position.ge(Column(1)), 0.0);

        // Top-p keeps the shortest prefix whose mass reaches p: drop a candidate when the mass before it already does.
        var cumulative = probs.cumsum(1);
        var threshold = Column(2).mul(cumulative.narrow(1, vocab - 1, 1));
        var massBefore = cat([zeros([probs.shape[0], 1], ScalarType.Float64, device), cumulative.narrow(1, 0, vocab - 1)], 1);
        probs = probs.masked_fill(massBefore.ge(threshold), 0.0);
        // Min-p against the best candidate, whose probability is 1 here; along the order this too drops a suffix.
        probs = probs.masked_fill(probs.lt(Column(3)), 0.0);

        // Inverse CDF: the first candidate whose cumulative mass exceeds u * total.
        cumulative = probs.cumsum(1);
        var target = Column(4).mul(cumulative.narrow(1, vocab - 1, 1));
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
        // One upload of [position; repetition; subtract] rows (positions are exact in double).
        var packed = new double[3 * penalties.Count];
        int n = 0;
        foreach (var (row, p) in penalties)
        {
            if ((ulong)p.Token >= (ulong)vocab) continue; // as the reference: a token outside the vocabulary has no logit
            packed[n] = row * vocab + p.Token;
            packed[penalties.Count + n] = p.Repetition;
            packed[2 * penalties.Count + n] = p.Subtract;
            n++;
        }
        if (n == 0) return;
        var table = tensor(packed, [3, penalties.Count], ScalarType.Float64, values.device).narrow(1, 0, n);
        var flat = values.view(-1);
        var index = table[0].to(ScalarType.Int64);
        var v = flat.index_select(0, index);
        var r = table[1];
        v = where(v.gt(0.0), v.div(r), v.mul(r)).sub(table[2]);
        flat.index_copy_(0, index, v);
    }
}
