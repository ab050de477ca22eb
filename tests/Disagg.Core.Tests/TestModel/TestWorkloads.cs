namespace Disagg.Tests.TestModel;

/// <summary>Request mixes and stream checks shared by the engine tests of several test projects (linked into them).</summary>
internal static class TestWorkloads
{
    /// <summary>
    /// Random requests that share prefixes (a few "system prompts"), with greedy, seeded and (unless
    /// <paramref name="alwaysSeeded"/>) unseeded sampling: the seed drawn at creation must then travel with the request.
    /// Some carry penalties (greedy or sampled, with min-p): their tokens depend on the history each engine holds.
    /// </summary>
    public static List<InferenceRequest> SharedPrefixes(int seed, int count, bool alwaysSeeded = true)
    {
        var rng = new Random(seed);
        var systemPrompts = Enumerable.Range(0, 3)
            .Select(_ => Enumerable.Range(0, rng.Next(1, 14)).Select(_ => rng.Next(1, ToyModel.VocabularySize)).ToArray())
            .ToArray();
        var requests = new List<InferenceRequest>();
        for (int i = 0; i < count; i++)
        {
            var prompt = systemPrompts[rng.Next(systemPrompts.Length)]
                .Concat(Enumerable.Range(0, rng.Next(0, 20)).Select(_ => rng.Next(1, ToyModel.VocabularySize)))
                .ToArray();
            var sampling = rng.Next(5) switch
            {
                0 => SamplingParameters.Greedy with { MaxTokens = rng.Next(1, 24) },
                1 => new SamplingParameters { Temperature = 0.8f, TopK = 10, Seed = (ulong)rng.Next(), MaxTokens = rng.Next(1, 24) },
                2 => SamplingParameters.Greedy with { RepetitionPenalty = 1.3f, PresencePenalty = 0.5f, MaxTokens = rng.Next(1, 24) },
                3 => new SamplingParameters
                {
                    Temperature = 0.9f, MinP = 0.05f, RepetitionPenalty = 1.1f, FrequencyPenalty = 0.7f, Seed = alwaysSeeded ? (ulong)rng.Next() : null,
                    MaxTokens = rng.Next(1, 24),
                },
                _ => new SamplingParameters
                {
                    Temperature = 1.2f, TopP = 0.9f, Seed = alwaysSeeded ? (ulong)rng.Next() : null, MaxTokens = rng.Next(1, 24), StopTokenIds = [7],
                },
            };
            requests.Add(new InferenceRequest(prompt, sampling));
        }
        return requests;
    }

    /// <summary>Reads a token stream, checking that indices count up from 0 and that exactly the last token carries a finish reason.</summary>
    public static async Task<List<int>> Collect(IAsyncEnumerable<GeneratedToken> stream)
    {
        var tokens = new List<int>();
        int expectedIndex = 0;
        GeneratedToken last = default;
        await foreach (var t in stream)
        {
            Assert.Equal(expectedIndex++, t.Index);
            Assert.False(last.IsLast, "A token arrived after the last one.");
            tokens.Add(t.TokenId);
            last = t;
        }
        Assert.True(last.IsLast, "The stream ended without a finish reason.");
        return tokens;
    }
}
