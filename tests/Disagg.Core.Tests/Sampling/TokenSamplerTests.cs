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
}
