using Disagg.Benchmarks.Serving;
using FsCheck.Xunit;

namespace Disagg.Benchmarks.Tests.Serving;

public class WorkloadTests
{
    [Property(MaxTest = 20)]
    public void Poisson_gaps_are_exponential_with_mean_one_over_the_rate(int seed, byte rateSeed)
    {
        double rate = 0.25 + rateSeed / 16.0;
        const int N = 20_000;
        var rng = new Random(seed);
        double[] gaps = [.. Enumerable.Range(0, N).Select(_ => PoissonArrivals.NextGap(rng, rate))];
        Assert.All(gaps, g => Assert.True(g >= 0 && double.IsFinite(g)));
        // The mean of N exponential gaps has standard deviation (1 / rate) / sqrt(N): allow five of them.
        Assert.InRange(gaps.Average() * rate, 1 - 5 / Math.Sqrt(N), 1 + 5 / Math.Sqrt(N));
        // Exponential, not merely the right mean: P(gap > mean) = 1/e (binomial standard deviation about 0.0034).
        Assert.InRange(gaps.Count(g => g > 1 / rate) / (double)N, Math.Exp(-1) - 0.017, Math.Exp(-1) + 0.017);
    }

    [Fact]
    public void A_rate_must_be_positive()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PoissonArrivals.NextGap(new Random(1), 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => PoissonArrivals.NextGap(new Random(1), double.PositiveInfinity));
    }

    [Property(MaxTest = 50)]
    public void Long_prompts_have_the_asked_shape_and_a_sweep_only_rescales_time(int seed, byte countSeed)
    {
        int count = 1 + countSeed % 40;
        var at1 = new LongPromptWorkload { Requests = count, RequestsPerSecond = 1, PromptTokens = 64, OutputTokens = 9, Vocabulary = 500, Seed = seed }.Generate();
        var at4 = new LongPromptWorkload { Requests = count, RequestsPerSecond = 4, PromptTokens = 64, OutputTokens = 9, Vocabulary = 500, Seed = seed }.Generate();
        Assert.Equal(count, at1.Count);
        Assert.All(at1, r => Assert.Equal(64, r.Prompt.Length));
        Assert.All(at1, r => Assert.Equal(9, r.OutputTokens));
        Assert.All(at1, r => Assert.All(r.Prompt, t => Assert.InRange(t, 0, 499)));
        Assert.All(at1, r => Assert.Null(r.PreviousTurn));
        for (int i = 0; i < count; i++)
        {
            if (i > 0) Assert.True(at1[i].ArrivalSeconds > at1[i - 1].ArrivalSeconds);
            Assert.Equal(at1[i].Prompt, at4[i].Prompt);                            // the same requests at every rate,
            Assert.Equal(at1[i].ArrivalSeconds / 4, at4[i].ArrivalSeconds, 1e-9); // arriving four times as fast
        }
    }

    private static ChatWorkload Chat(int seed, int requests = 300) => new()
    {
        Requests = requests, RequestsPerSecond = 5, Vocabulary = 1000, Seed = seed, SystemPrompts = 3, SystemPromptTokens = 40,
        MinUserTokens = 4, MaxUserTokens = 12, MinOutputTokens = 2, MaxOutputTokens = 10, MaxTurns = 4, MaxContextTokens = 150,
    };

    [Property(MaxTest = 30)]
    public void Chat_shares_system_prompts_and_follow_ups_extend_their_conversation(int seed)
    {
        var spec = Chat(seed);
        var requests = spec.Generate();
        Assert.Equal(spec.Requests, requests.Count);

        // Every prompt opens with one of three shared system prompts, and all three are used.
        var systems = requests.Select(r => string.Join(',', r.Prompt.Take(spec.SystemPromptTokens))).Distinct().ToList();
        Assert.Equal(3, systems.Count);

        int followUps = 0;
        for (int i = 0; i < requests.Count; i++)
        {
            var r = requests[i];
            Assert.True(r.Prompt.Length + r.OutputTokens <= spec.MaxContextTokens);
            if (r.PreviousTurn is not int p)
            {
                Assert.InRange(r.Prompt.Length, spec.SystemPromptTokens + spec.MinUserTokens, spec.SystemPromptTokens + spec.MaxUserTokens);
                continue;
            }
            followUps++;
            var previous = requests[p];
            Assert.True(p < i);
            Assert.True(previous.ArrivalSeconds < r.ArrivalSeconds);
            // The earlier prompt, an answer as long as the earlier output, then a new user turn.
            Assert.Equal(previous.Prompt, r.Prompt.Take(previous.Prompt.Length));
            Assert.InRange(r.Prompt.Length - previous.Prompt.Length - previous.OutputTokens, spec.MinUserTokens, spec.MaxUserTokens);
        }
        Assert.InRange(followUps, requests.Count / 5, requests.Count * 4 / 5); // about half continue a conversation
        // No conversation runs past MaxTurns: chains of PreviousTurn are at most MaxTurns long.
        for (int i = 0; i < requests.Count; i++)
        {
            int turns = 1;
            for (int? p = requests[i].PreviousTurn; p is int q; p = requests[q].PreviousTurn) turns++;
            Assert.InRange(turns, 1, spec.MaxTurns);
        }
    }

    [Fact]
    public void Without_follow_ups_every_request_is_a_first_turn()
    {
        var requests = (Chat(3) with { FollowUpProbability = 0 }).Generate();
        Assert.All(requests, r => Assert.Null(r.PreviousTurn));
    }

    [Fact]
    public void Out_of_range_parameters_name_themselves()
    {
        Assert.Equal("PromptTokens", Assert.Throws<ArgumentOutOfRangeException>(() =>
            new LongPromptWorkload { Requests = 1, RequestsPerSecond = 1, PromptTokens = 0 }.Generate()).ParamName);
        Assert.Equal("MaxUserTokens", Assert.Throws<ArgumentOutOfRangeException>(() => (Chat(1) with { MaxUserTokens = 3 }).Generate()).ParamName);
        Assert.Equal("MaxContextTokens", Assert.Throws<ArgumentOutOfRangeException>(() => (Chat(1) with { MaxContextTokens = 50 }).Generate()).ParamName);
        Assert.Equal("FollowUpProbability", Assert.Throws<ArgumentOutOfRangeException>(() => (Chat(1) with { FollowUpProbability = 2 }).Generate()).ParamName);
    }
}
