using Disagg.Sampling;
using FsCheck.Xunit;

namespace Disagg.Tests.Sampling;

public class TokenSamplerTests
{
    private static readonly float[] Logits = [1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f];

    [Fact]
    public void Greedy_picks_the_largest_logit_and_the_lowest_id_among_ties()
    {
        var sampler = new TokenSampler();
        Assert.Equal(1, sampler.Sample(Logits, SamplingParameters.Greedy, seed: 1, tokenIndex: 0));
        Assert.Equal(1, sampler.Sample(Logits, new SamplingParameters { TopK = 1, Temperature = 5 }, seed: 9, tokenIndex: 3));
    }

    [Property(MaxTest = 200)]
    public bool Draws_depend_only_on_seed_and_index(ulong seed, byte index)
    {
        var p = new SamplingParameters { Temperature = 0.9f, TopP = 0.95f };
        return new TokenSampler().Sample(Logits, p, seed, index) == new TokenSampler().Sample(Logits, p, seed, index);
    }

    [Fact]
    public void TopK_and_TopP_never_pick_outside_their_set()
    {
        var sampler = new TokenSampler();
        for (ulong seed = 0; seed < 2000; seed++)
        {
            // top-2 of the logits is {1, 3} (the two 3.0s).
            Assert.Contains(sampler.Sample(Logits, new SamplingParameters { TopK = 2 }, seed, 0), new[] { 1, 3 });
            // With a low temperature, tokens 1 and 3 hold nearly all the mass, so top-p 0.9 keeps just them.
            Assert.Contains(sampler.Sample(Logits, new SamplingParameters { Temperature = 0.2f, TopP = 0.9f }, seed, 0), new[] { 1, 3 });
        }
    }

    [Fact]
    public void Sampling_frequencies_follow_the_softmax()
    {
        var sampler = new TokenSampler();
        var counts = new int[Logits.Length];
        const int draws = 40_000;
        for (int i = 0; i < draws; i++) counts[sampler.Sample(Logits, new SamplingParameters(), seed: 7, tokenIndex: i)]++;
        double z = Logits.Sum(l => Math.Exp(l));
        for (int t = 0; t < Logits.Length; t++)
        {
            double expected = Math.Exp(Logits[t]) / z;
            Assert.InRange(counts[t] / (double)draws, expected - 0.01, expected + 0.01);
        }
    }

    [Property(MaxTest = 300)]
    public bool Uniform_draws_lie_in_the_unit_interval(ulong seed, int index)
    {
        double u = SamplingRandom.Uniform(seed, index);
        return u >= 0 && u < 1;
    }

    [Fact]
    public void Repetition_penalty_moves_greedy_off_a_repeated_token()
    {
        // Token 1 (3.0) and token 3 (3.0) tie; with token 1 in the history, 3.0 / 1.5 = 2.0 loses to token 3's 3.0.
        var sampler = new TokenSampler();
        var p = new SamplingParameters { Temperature = 0, RepetitionPenalty = 1.5f };
        Assert.Equal(3, sampler.Sample(Logits, p, seed: 1, tokens: [1, 5], promptLength: 2));
        // Both in the history: 2.0, 2.0 and token 2's untouched 2.0 tie, and the lowest id wins.
        Assert.Equal(1, sampler.Sample(Logits, p with { RepetitionPenalty = 1.5f }, seed: 1, tokens: [1, 3], promptLength: 1));
        // A little more and token 2 wins outright.
        Assert.Equal(2, sampler.Sample(Logits, p with { RepetitionPenalty = 1.6f }, seed: 1, tokens: [1, 3], promptLength: 1));
        // Without penalties the history changes nothing.
        Assert.Equal(1, sampler.Sample(Logits, SamplingParameters.Greedy, seed: 1, tokens: [1, 3], promptLength: 1));
    }

    [Fact]
    public void Penalties_follow_their_definitions()
    {
        var collect = new TokenPenalties();
        var into = new List<PenalizedToken>();
        var p = new SamplingParameters { RepetitionPenalty = 1.2f, PresencePenalty = 0.5f, FrequencyPenalty = 0.25f };
        // Prompt [7, 8, 7], output [8, 9, 9, 9].
        collect.Collect([7, 8, 7, 8, 9, 9, 9], promptLength: 3, p, into);
        var byToken = into.ToDictionary(t => t.Token);
        Assert.Equal([7, 8, 9], byToken.Keys.Order());
        Assert.Equal(0.0, byToken[7].Subtract);                 // prompt only: repetition, no presence or frequency
        Assert.Equal(0.25 * 1 + 0.5, byToken[8].Subtract, 12);   // once in the output
        Assert.Equal(0.25 * 3 + 0.5, byToken[9].Subtract, 12);   // three times
        Assert.All(into, t => Assert.Equal(1.2f, (float)t.Repetition));
        Assert.Equal(2.0 / 1.2f - 1.25, byToken[9].Apply(2.0), 12); // the float penalty, widened
        Assert.Equal(-2.0 * 1.2f - 1.25, byToken[9].Apply(-2.0), 12);

        into.Clear();
        collect.Collect([7, 8, 9], promptLength: 1, new SamplingParameters { Temperature = 0.7f }, into);
        Assert.Empty(into); // no penalty asked: nothing to touch
    }

    [Fact]
    public void Presence_and_frequency_leave_the_prompt_alone()
    {
        var into = new List<PenalizedToken>();
        new TokenPenalties().Collect([1, 2, 3], promptLength: 3, new SamplingParameters { PresencePenalty = 2, FrequencyPenalty = 2 }, into);
        Assert.Empty(into);
    }

    [Property(MaxTest = 300)]
    public bool Min_p_never_keeps_a_token_below_its_share_of_the_best(ulong seed, byte index, byte minPercent)
    {
        float minP = (minPercent % 100 + 1) / 100f;
        var p = new SamplingParameters { Temperature = 0.8f, MinP = minP };
        int picked = new TokenSampler().Sample(Logits, p, seed, index);
        double best = Logits.Max();
        return Math.Exp((Logits[picked] - best) / 0.8) >= minP;
    }

    [Property(MaxTest = 300)]
    public bool Penalised_sampling_equals_sampling_from_penalised_logits(ulong seed, byte index, byte[] history)
    {
        // The naive reference: apply each penalty by its definition to a copy, then sample without penalties.
        int[] tokens = [.. (history ?? []).Select(b => b % Logits.Length)];
        int promptLength = tokens.Length / 2;
        var p = new SamplingParameters { Temperature = 0.9f, TopK = 5, RepetitionPenalty = 1.3f, PresencePenalty = 0.4f, FrequencyPenalty = 0.3f };
        var values = Logits.Select(l => (double)l).ToArray();
        for (int t = 0; t < Logits.Length; t++)
        {
            if (!tokens.Contains(t)) continue;
            values[t] = values[t] > 0 ? values[t] / 1.3f : values[t] * 1.3f;
            int outputCount = tokens.Skip(promptLength).Count(x => x == t);
            if (outputCount > 0) values[t] -= (double)0.3f * outputCount + 0.4f;
        }
        int viaPenalties = new TokenSampler().Sample(Logits, p, seed, tokens, promptLength);
        int viaReference = SampleDoubles(values, p, seed, tokens.Length - promptLength);
        return viaPenalties == viaReference;
    }

    // Temperature and top-k over double logits, by the definitions, with the same draw.
    private static int SampleDoubles(double[] values, SamplingParameters p, ulong seed, int tokenIndex)
    {
        int[] order = [.. Enumerable.Range(0, values.Length).OrderByDescending(i => values[i]).ThenBy(i => i).Take(p.TopK)];
        double[] probs = [.. order.Select(i => Math.Exp((values[i] - values[order[0]]) * (1.0 / p.Temperature)))];
        double u = SamplingRandom.Uniform(seed, tokenIndex) * probs.Sum(), acc = 0;
        for (int i = 0; i < order.Length; i++)
            if (u < (acc += probs[i])) return order[i];
        return order[^1];
    }
}
