using Disagg.Cuda.Model;
using Disagg.Sampling;

namespace Disagg.Cuda.Tests.Model;

/// <summary>
/// The executor's picks against the reference: on random mixed schedules whose requests use penalties, min-p, top-k and
/// top-p, greedy and sampled, every token is the one <see cref="TokenSampler"/> picks from the logits that row had, given
/// the request's history (prompt and tokens so far). The device sampler is checked alone in <see cref="DeviceSamplerTests"/>;
/// this checks what the executor hands it: the rows, the histories and the draw indices.
/// </summary>
public sealed class ExecutorSamplingTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Every_token_is_the_reference_samplers_pick_from_its_logits(int seed)
    {
        using var executor = TorchModelExecutor.Load(Fixtures.ModelDirectory("llama3"),
            new ModelRunnerOptions { Device = "cpu", DataType = "float32", BlockSize = 4, KvCacheBlocks = 512 });
        SamplingParameters[] kinds =
        [
            SamplingParameters.Greedy,
            SamplingParameters.Greedy with { RepetitionPenalty = 1.5f, FrequencyPenalty = 0.4f },
            new() { Temperature = 0.9f, MinP = 0.1f, PresencePenalty = 1.5f },
            new() { Temperature = 1.3f, TopK = 30, TopP = 0.9f, RepetitionPenalty = 0.8f, FrequencyPenalty = -0.5f },
            new() { Temperature = 0.7f },
        ];
        var arrivals = ScheduleHarness.RandomWorkload(seed, 10, executor.VocabularySize)
            .Select((a, i) => a with { Sampling = kinds[i % kinds.Length] with { MaxTokens = a.Sampling.MaxTokens, IgnoreEndOfSequence = true } })
            .ToArray();

        var result = ScheduleHarness.Run(executor, arrivals, maxBatchedTokens: 16);

        var reference = new TokenSampler();
        for (int i = 0; i < arrivals.Length; i++)
        {
            var a = arrivals[i];
            int[] output = result.Tokens[i];
            Assert.Equal(a.Sampling.MaxTokens, output.Length);
            for (int t = 0; t < output.Length; t++)
            {
                int[] history = [.. a.Prompt, .. output[..t]];
                int expected = reference.Sample(result.Logits[(i, t)], a.Sampling, a.Seed, history, a.Prompt.Length);
                Assert.True(expected == output[t], $"request {i} ({a.Sampling}), token {t}: executor {output[t]}, reference {expected}");
            }
        }
        Assert.Equal(0, result.LeakedBlocks);
    }
}
