using Disagg.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Cuda.Model;

/// <summary>
/// Temperature, top-k and top-p sampling on the logits' device, so that only token ids cross to the host. It follows
/// <see cref="TokenSampler"/> step for step (same candidate order, same truncation rules, the same uniform draw from
/// <see cref="SamplingRandom"/>, double precision), so a request samples the same tokens on any device and in any engine.
/// </summary>
internal static class DeviceSampler
{
    /// <summary>Samples one token per row of <paramref name="logits"/> [rows, vocab].</summary>
    /// <param name="logits">Float logits, one row per sequence.</param>
    /// <param name="inverseTemperature">1 / temperature per row.</param>
    /// <param name="topK">Candidates kept per row (the vocabulary size for no limit).</param>
    /// <param name="topP">Probability mass kept per row (anything above 1 for no limit).</param>
    /// <param name="uniform">The draw in [0, 1) per row.</param>
    /// <returns>Token ids, on the host.</returns>
    public static long[] Sample(Tensor logits, double[] inverseTemperature, long[] topK, double[] topP, double[] uniform)
    {
        using var scope = NewDisposeScope();
        var device = logits.device;
        long vocab = logits.shape[1];
        var (sorted, order) = logits.to(ScalarType.Float64).sort(dim: 1, descending: true, stable: true); // ties: lower id first

        var invT = tensor(inverseTemperature, ScalarType.Float64, device).unsqueeze(1);
        var probs = (sorted - sorted.narrow(1, 0, 1)).mul(invT).exp(); // unnormalised, the best candidate is 1
        var position = arange(vocab, ScalarType.Int64, device).unsqueeze(0);
        probs = probs.masked_fill(position.ge(tensor(topK, ScalarType.Int64, device).unsqueeze(1)), 0.0);

        // Top-p keeps the shortest prefix whose mass reaches p: drop a candidate when the mass before it already does.
        var cumulative = probs.cumsum(1);
        var threshold = tensor(topP, ScalarType.Float64, device).unsqueeze(1).mul(cumulative.narrow(1, vocab - 1, 1));
        var massBefore = cat([zeros([probs.shape[0], 1], ScalarType.Float64, device), cumulative.narrow(1, 0, vocab - 1)], 1);
        probs = probs.masked_fill(massBefore.ge(threshold), 0.0);

        // Inverse CDF: the first candidate whose cumulative mass exceeds u * total.
        cumulative = probs.cumsum(1);
        var target = tensor(uniform, ScalarType.Float64, device).unsqueeze(1).mul(cumulative.narrow(1, vocab - 1, 1));
        var pick = cumulative.le(target).sum([1L], keepdim: true, type: ScalarType.Int64);
        var lastKept = probs.gt(0.0).sum([1L], keepdim: true, type: ScalarType.Int64) - 1;
        pick = pick.minimum(lastKept);
        return order.gather(1, pick).squeeze(1).cpu().data<long>().ToArray();
    }
}
