using Disagg.Cuda.Model;
using FsCheck;
using FsCheck.Fluent;

namespace Disagg.Cuda.Tests.Model;

/// <summary>
/// A mixed step (decode rows beside prompt chunks) split in two, as the GPU runs it: the decode rows as one sub-batch (on
/// the GPU, a graph replay; here, the switch <see cref="TorchModelExecutor.SplitMixedStepsWithoutDecoder"/> runs them as a
/// TorchSharp sub-batch through the same split and merge), the prompt chunks as another. Every request's tokens must be
/// those of the unsplit step, greedy and sampled, over random schedules on every fixture model in float32.
/// </summary>
public sealed class MixedStepTests
{
    /// <summary>Few decode rows per part, so that steps with more single-token chunks send the rest to the forward.</summary>
    private const int DecodeRowLimit = 3;

    private static TorchModelExecutor Load(string name) => TorchModelExecutor.Load(Fixtures.ModelDirectory(name),
        new ModelRunnerOptions { Device = "cpu", DataType = "float32", BlockSize = 4, KvCacheBlocks = 512, NativeDecodeMaxBatchSize = DecodeRowLimit });

    public static TheoryData<string> Models() => new(Fixtures.ModelNames);

    [Theory]
    [MemberData(nameof(Models))]
    public void Split_mixed_steps_give_every_request_the_tokens_of_unsplit_steps(string name)
    {
        using var executor = Load(name);
        int vocabulary = executor.VocabularySize, layers = executor.KvLayout.NumLayers;
        long splitSteps = 0;
        var workloads = from seed in Gen.Choose(0, int.MaxValue)
                        from requests in Gen.Choose(3, 7)
                        from budget in Gen.Elements(5, 16, 33)
                        select (Seed: seed, Requests: requests, Budget: budget);
        Prop.ForAll(workloads.ToArbitrary(), w =>
        {
            var (seed, requests, budget) = w;
            var arrivals = ScheduleHarness.RandomWorkload(seed, requests, vocabulary);
            var (plain, plainSplits) = RunWith(executor, arrivals, budget, split: false);
            var (split, splits) = RunWith(executor, arrivals, budget, split: true);

            Assert.Equal(0, plainSplits);
            Assert.Equal(plain.MixedSteps, splits);                    // every mixed step was split
            Assert.Equal(plain.Steps, split.Steps);
            for (int i = 0; i < arrivals.Length; i++)
                AssertSameTokensUpToNearTie(plain, split, i,
                    $"{name}, seed {seed}, budget {budget}: request {i} ({arrivals[i].Prompt.Length}-token prompt, {(arrivals[i].Sampling.IsGreedy ? "greedy" : "sampled")}) " +
                    $"gave [{string.Join(' ', split.Tokens[i])}] split, [{string.Join(' ', plain.Tokens[i])}] unsplit");
            Assert.All(split.LayerReports, heard => Assert.Equal(Enumerable.Range(0, layers), heard)); // each layer once per step, in order
            Assert.Equal(0, split.LeakedBlocks);
            splitSteps += splits;
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(12));
        Assert.True(splitSteps >= 12, $"only {splitSteps} steps were split: the workloads do not exercise the split");
    }

    [Fact]
    public void A_split_step_keeps_decode_rows_interleaved_with_prompt_chunks_in_their_places()
    {
        // Four requests greedy, staggered so that a step holds (in the scheduler's order) decoding sequences, a prompt
        // still being prefilled between them and new prompts after: every sampling row lands in a different place.
        using var executor = Load("llama3");
        var greedy = SamplingParameters.Greedy with { MaxTokens = 6, IgnoreEndOfSequence = true };
        ScheduleHarness.Arrival[] arrivals =
        [
            new(0, [1, 2, 3], greedy, 1),
            new(0, [.. Enumerable.Range(10, 30)], greedy, 2),  // prefilled over several steps while the first decodes
            new(1, [4, 5], greedy, 3),
            new(2, [7, 8, 9, 10, 11], greedy, 4),
        ];
        var (plain, _) = RunWith(executor, arrivals, maxBatchedTokens: 8, split: false);
        var (split, splits) = RunWith(executor, arrivals, maxBatchedTokens: 8, split: true);
        Assert.True(splits >= 3, $"{splits} split steps");
        Assert.Equal(plain.Tokens, split.Tokens);
        Assert.True(plain.Tokens.Select(t => t[0]).Distinct().Count() > 1, "every request's tokens alike: a misplaced row would go unseen");
    }

    /// <summary>Largest float32 logit round-off between the two runs, and largest gap between two tokens that round-off may swap.</summary>
    private const double RoundOff = 1e-4;

    /// <summary>
    /// The request's tokens are the same in both runs, except where the runs part for a reason round-off explains. A split
    /// step multiplies fewer rows per matrix product, which sums in another order: the logits move by ~1e-6. Candidates are
    /// ordered by logit before the draw (greedy or sampled), so two tokens whose logits are that close can swap places, and
    /// the same draw then picks the other one of them. So where the tokens first differ, the two runs' logits must agree to
    /// <see cref="RoundOff"/> and the two picked tokens must be that close in both; a misplaced row or a wrong mask moves the
    /// logits by far more. Later tokens continue from different prefixes and are not compared.
    /// </summary>
    private static void AssertSameTokensUpToNearTie(ScheduleHarness.Result plain, ScheduleHarness.Result split, int request, string context)
    {
        int[] a = plain.Tokens[request], b = split.Tokens[request];
        Assert.True(a.Length == b.Length, context);
        int at = Enumerable.Range(0, a.Length).FirstOrDefault(t => a[t] != b[t], -1);
        if (at < 0) return;
        float[] la = plain.Logits[(request, at)], lb = split.Logits[(request, at)];
        double drift = la.Zip(lb, (x, y) => Math.Abs(x - y)).Max();
        Assert.True(drift <= RoundOff, $"{context}: at token {at} the logits differ by {drift} (more than round-off)");
        double gapPlain = Math.Abs(la[a[at]] - la[b[at]]), gapSplit = Math.Abs(lb[a[at]] - lb[b[at]]);
        Assert.True(gapPlain <= RoundOff && gapSplit <= RoundOff,
            $"{context}: at token {at} tokens {a[at]} and {b[at]} are {gapPlain} / {gapSplit} apart in logit, not a round-off near tie");
    }

    private static (ScheduleHarness.Result Result, long SplitSteps) RunWith(TorchModelExecutor executor, ScheduleHarness.Arrival[] arrivals, int maxBatchedTokens, bool split)
    {
        executor.SplitMixedStepsWithoutDecoder = split;
        long before = executor.SplitSteps;
        var result = ScheduleHarness.Run(executor, arrivals, maxBatchedTokens);
        return (result, executor.SplitSteps - before);
    }
}
