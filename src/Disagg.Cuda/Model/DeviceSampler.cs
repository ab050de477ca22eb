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
/// <param name="Repetition">The repetition penalty (1 for none).</param>
/// <param name="Presence">The presence penalty (0 for none).</param>
/// <param name="Frequency">The frequency penalty (0 for none).</param>
internal readonly record struct SamplingRow(double InverseTemperature, long TopK, double TopP, double MinP, double Uniform,
    double Repetition = 1.0, double Presence = 0.0, double Frequency = 0.0)
{
    /// <summary>The row for token <paramref name="tokenIndex"/> of a request. A greedy request keeps one candidate: the
    /// argmax of its (penalized) logits, the lowest id among equals.</summary>
    public static SamplingRow For(SamplingParameters p, long vocab, ulong seed, int tokenIndex) => p.IsGreedy
        ? new(1.0, 1, 2.0, 0.0, 0.0, p.RepetitionPenalty, p.PresencePenalty, p.FrequencyPenalty)
        : new(1.0 / p.Temperature, p.TopK > 0 ? p.TopK : vocab, p.TopP < 1f ? p.TopP : 2.0, p.MinP, SamplingRandom.Uniform(seed, tokenIndex),
            p.RepetitionPenalty, p.PresencePenalty, p.FrequencyPenalty);
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
    /// <param name="penalties">The tokens of the rows' histories, for the rows with penalties; null or empty for none.</param>
    /// <returns>Token ids, on the host.</returns>
    public static long[] Sample(Tensor logits, ReadOnlySpan<SamplingRow> rows, PenaltyTable? penalties)
    {
        using var scope = NewDisposeScope();
        var device = logits.device;
        long vocab = logits.shape[1];
        // Every row's arguments in one upload: a pageable copy to a GPU waits for the stream, so each one costs host time.
        const int Fields = 8;
        var arguments = new double[rows.Length * Fields];
        for (int i = 0; i < rows.Length; i++)
        {
            var r = rows[i];
            arguments[i * Fields] = r.InverseTemperature;
            arguments[i * Fields + 1] = r.TopK; // exact: a vocabulary is far below 2^53
            arguments[i * Fields + 2] = r.TopP;
            arguments[i * Fields + 3] = r.MinP;
            arguments[i * Fields + 4] = r.Uniform;
            arguments[i * Fields + 5] = r.Repetition;
            arguments[i * Fields + 6] = r.Presence;
            arguments[i * Fields + 7] = r.Frequency;
        }
        var columns = tensor(arguments, [rows.Length, Fields], ScalarType.Float64, device);
        Tensor Column(int index) => columns.narrow(1, index, 1);

        var values = logits.to(ScalarType.Float64, copy: true).contiguous();
        if (penalties is { Count: > 0 }) Penalize(values, columns, penalties.Pairs);
        var (sorted, order) = values.sort(dim: 1, descending: true, stable: true); // ties: lower id first

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

    /// <summary>Applies <see cref="PenalizedToken.Apply"/> to the listed entries of <paramref name="values"/> in place: the
    /// same division or multiplication, then the same subtraction of <c>frequency * count + presence</c> (for tokens the
    /// output holds), each rounded once in double precision, as the reference does. A penalty that is off changes nothing:
    /// dividing by a repetition of 1 and subtracting 0 are exact.</summary>
    private static void Penalize(Tensor values, Tensor columns, ReadOnlySpan<int> pairs)
    {
        long vocab = values.shape[1];
        var upload = GC.AllocateUninitializedArray<int>(pairs.Length); // TorchSharp takes an exact-size array
        pairs.CopyTo(upload);
        var table = tensor(upload, [pairs.Length / 2, 2], ScalarType.Int32, values.device);
        var index = table.select(1, 0).to(ScalarType.Int64);
        var count = table.select(1, 1).to(ScalarType.Float64);
        var row = index.div(vocab, rounding_mode: RoundingMode.floor);
        var repetition = columns.select(1, 5).index_select(0, row);
        var presence = columns.select(1, 6).index_select(0, row);
        var frequency = columns.select(1, 7).index_select(0, row);

        var flat = values.view(-1);
        var v = flat.index_select(0, index);
        var subtract = where(count.gt(0.0), frequency.mul(count).add(presence), zeros_like(count));
        v = where(v.gt(0.0), v.div(repetition), v.mul(repetition)).sub(subtract);
        flat.index_copy_(0, index, v);
    }
}
