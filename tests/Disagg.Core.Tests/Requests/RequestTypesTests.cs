using System.Diagnostics;

namespace Disagg.Tests.Requests;

public class RequestTypesTests
{
    [Fact]
    public void Timings_give_ttft_and_inter_token_latencies_from_token_timestamps()
    {
        long t0 = 1_000_000;
        long tick = Stopwatch.Frequency / 1000; // 1 ms
        var timings = new RequestTimings(t0, expectedTokens: 1) { ScheduledTimestamp = t0 + 2 * tick };
        Assert.Null(timings.TimeToFirstToken);
        Assert.Null(timings.MeanInterTokenLatency);
        long[] offsetsMs = [10, 15, 25, 30];
        for (int i = 0; i < offsetsMs.Length; i++) timings.Record(new GeneratedToken(i, i, t0 + offsetsMs[i] * tick));

        Assert.Equal(4, timings.TokenCount);
        Assert.Equal(TimeSpan.FromMilliseconds(2), timings.QueueTime);
        Assert.Equal(TimeSpan.FromMilliseconds(10), timings.TimeToFirstToken);
        Assert.Equal(TimeSpan.FromMilliseconds(5), timings.InterTokenLatency(1));
        Assert.Equal(TimeSpan.FromMilliseconds(10), timings.InterTokenLatency(2));
        Assert.Equal(20.0 / 3, timings.MeanInterTokenLatency!.Value.TotalMilliseconds, 3);
        Assert.Equal(150, timings.DecodeTokensPerSecond!.Value, 6);
        Assert.Equal(TimeSpan.FromMilliseconds(30), timings.EndToEnd);
        Assert.Throws<ArgumentOutOfRangeException>(() => timings.InterTokenLatency(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => timings.InterTokenLatency(4));
    }

    [Theory]
    [InlineData(-0.1f, 0, 1f, 1, "Temperature")]
    [InlineData(float.NaN, 0, 1f, 1, "Temperature")]
    [InlineData(1f, -1, 1f, 1, "TopK")]
    [InlineData(1f, 0, 0f, 1, "TopP")]
    [InlineData(1f, 0, 1.5f, 1, "TopP")]
    [InlineData(1f, 0, 1f, 0, "MaxTokens")]
    public void Invalid_sampling_parameters_name_the_parameter(float temperature, int topK, float topP, int maxTokens, string name)
    {
        var p = new SamplingParameters { Temperature = temperature, TopK = topK, TopP = topP, MaxTokens = maxTokens };
        var ex = Assert.Throws<ArgumentOutOfRangeException>(p.Validate);
        Assert.Equal(name, ex.ParamName);
    }

    [Fact]
    public void Requests_resolve_their_seed_once_and_keep_it_when_sampling_changes()
    {
        var seeded = new InferenceRequest(new[] { 1 }, new SamplingParameters { Seed = 42 });
        Assert.Equal(42UL, seeded.Seed);
        var unseeded = new InferenceRequest(new[] { 1 }, new SamplingParameters());
        var changed = unseeded.WithSampling(unseeded.Sampling with { StopTokenIds = [2] });
        Assert.Equal(unseeded.Seed, changed.Seed);
        Assert.Equal(unseeded.Id, changed.Id);
        Assert.Equal(unseeded.ArrivalTimestamp, changed.ArrivalTimestamp);
        Assert.Equal([2], changed.Sampling.StopTokenIds);
    }

    [Fact]
    public void Request_validation_names_the_problem()
    {
        Assert.Contains("empty", Assert.Throws<InvalidRequestException>(() => new InferenceRequest(Array.Empty<int>()).Validate(10, 100)).Message);
        Assert.Contains("position 1", Assert.Throws<InvalidRequestException>(() => new InferenceRequest(new[] { 1, 10 }).Validate(10, 100)).Message);
        Assert.Contains("position 0", Assert.Throws<InvalidRequestException>(() => new InferenceRequest(new[] { -1 }).Validate(10, 100)).Message);
        var tooLong = Assert.Throws<PromptTooLongException>(() => new InferenceRequest(new int[100]).Validate(10, 100));
        Assert.Equal((100, 100), (tooLong.PromptLength, tooLong.Limit));
        new InferenceRequest(new int[99]).Validate(10, 100);
    }
}
