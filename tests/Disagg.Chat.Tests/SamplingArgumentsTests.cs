using Disagg.Cuda.Loading;

namespace Disagg.Chat.Tests;

/// <summary>The sampling flags of the command line: what reaches <see cref="SamplingParameters"/>, and what is refused.</summary>
public sealed class SamplingArgumentsTests
{
    [Fact]
    public void Penalties_and_min_p_reach_the_sampling_parameters()
    {
        var sampling = ChatOptions.Parse(["--temperature", "0.8", "--min-p", "0.05", "--repetition-penalty", "1.1",
            "--presence-penalty", "-0.5", "--frequency-penalty", "0.25"]).Sampling([]);
        Assert.Equal(0.8f, sampling.Temperature);
        Assert.Equal(0.05f, sampling.MinP);
        Assert.Equal(1.1f, sampling.RepetitionPenalty);
        Assert.Equal(-0.5f, sampling.PresencePenalty);
        Assert.Equal(0.25f, sampling.FrequencyPenalty);
        Assert.True(sampling.HasPenalties);
        Assert.False(ChatOptions.Parse([]).Sampling([]).HasPenalties); // the defaults penalise nothing
    }

    [Theory]
    [InlineData("--min-p", "1.5", "MinP")]
    [InlineData("--repetition-penalty", "0", "RepetitionPenalty")]
    [InlineData("--presence-penalty", "2.5", "PresencePenalty")]
    [InlineData("--frequency-penalty", "-3", "FrequencyPenalty")]
    [InlineData("--top-p", "0", "TopP")]
    public void Out_of_range_values_are_usage_errors_that_name_the_setting(string flag, string value, string setting)
    {
        var error = Assert.Throws<UsageException>(() => ChatOptions.Parse([flag, value]));
        Assert.Contains(setting, error.Message);
    }

    [Fact]
    public void Flags_left_out_take_the_models_generation_config_and_flags_given_win()
    {
        var model = new GenerationConfig { DoSample = true, Temperature = 0.6, TopP = 0.9, RepetitionPenalty = 1.05 };

        var unset = ChatOptions.Parse([]).Sampling([7], model);
        Assert.Equal(0.6f, unset.Temperature);
        Assert.Equal(0.9f, unset.TopP);
        Assert.Equal(1.05f, unset.RepetitionPenalty);
        Assert.Equal([7], unset.StopTokenIds);

        var given = ChatOptions.Parse(["--temperature", "0", "--repetition-penalty", "1"]).Sampling([], model);
        Assert.True(given.IsGreedy);
        Assert.False(given.HasPenalties);
        Assert.Equal(0.9f, given.TopP);

        Assert.Equal(0.7f, ChatOptions.Parse([]).Sampling([]).Temperature); // no file: the sample's own default
    }
}
