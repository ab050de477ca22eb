namespace Disagg.Cuda.Loading.Tests;

public sealed class GenerationConfigTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void ReadsLlama31GenerationConfig()
    {
        _dir.WriteText(GenerationConfig.FileName, """
        {
          "bos_token_id": 128000,
          "do_sample": true,
          "eos_token_id": [128001, 128008, 128009],
          "temperature": 0.6,
          "top_p": 0.9,
          "transformers_version": "4.42.3"
        }
        """);
        var config = GenerationConfig.TryLoadFromDirectory(_dir.Path)!;

        Assert.Equal([128000], config.BosTokenIds);
        Assert.Equal([128001, 128008, 128009], config.EosTokenIds);
        Assert.True(config.DoSample);
        Assert.Equal(0.6, config.Temperature);
        Assert.Equal(0.9, config.TopP);
        Assert.Null(config.TopK);
        Assert.Null(config.PadTokenId);
        Assert.Null(config.MaxNewTokens);
    }

    [Fact]
    public void ReadsQwenStyleFieldsWithSingleEos()
    {
        string path = _dir.WriteText("g.json", """
        {"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643],
         "repetition_penalty": 1.05, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0,
         "max_new_tokens": 2048, "max_length": 32768}
        """);
        var config = GenerationConfig.Load(path);
        Assert.Equal(151643, config.PadTokenId);
        Assert.Equal(20, config.TopK);
        Assert.Equal(1.05, config.RepetitionPenalty);
        Assert.Equal(0.0, config.MinP);
        Assert.Equal(2048, config.MaxNewTokens);
        Assert.Equal(32768, config.MaxLength);

        var single = GenerationConfig.Load(_dir.WriteText("s.json", """{"eos_token_id": 2}"""));
        Assert.Equal([2], single.EosTokenIds);
    }

    [Fact]
    public void AbsentFileGivesNullAndEmptyFileStatesNothing()
    {
        Assert.Null(GenerationConfig.TryLoadFromDirectory(_dir.Path));
        var empty = GenerationConfig.Load(_dir.WriteText("e.json", "{}"));
        Assert.Equal(GenerationConfig.Empty with { }, empty with { BosTokenIds = GenerationConfig.Empty.BosTokenIds, EosTokenIds = GenerationConfig.Empty.EosTokenIds });
        Assert.Empty(empty.EosTokenIds);
        Assert.Null(empty.Temperature);
    }

    [Theory]
    [InlineData("""{"temperature": "hot"}""", "'temperature' must be a finite number")]
    [InlineData("""{"temperature": -1}""", "'temperature' must lie in [0, 100]")]
    [InlineData("""{"temperature": 101}""", "'temperature' must lie in [0, 100]")]
    [InlineData("""{"repetition_penalty": 0}""", "'repetition_penalty' must lie in (0, 100]")]
    [InlineData("""{"top_p": 1.5}""", "'top_p' must lie in [0, 1]")]
    [InlineData("""{"top_k": -3}""", "'top_k' must not be negative")]
    [InlineData("""{"do_sample": 1}""", "'do_sample' must be true or false")]
    [InlineData("""{"eos_token_id": [-1]}""", "non-negative integer token ids")]
    [InlineData("""{"max_new_tokens": 1.5}""", "'max_new_tokens' must be an integer")]
    [InlineData("""not json""", "not valid JSON")]
    public void InvalidFieldsAreTypedErrors(string json, string problem)
    {
        string path = _dir.WriteText(GenerationConfig.FileName, json);
        var ex = Assert.Throws<ModelLoadException>(() => GenerationConfig.TryLoadFromDirectory(_dir.Path));
        Assert.Equal(path, ex.FilePath);
        Assert.Contains(problem, ex.Message);
    }

    [Fact]
    public void Stated_sampling_fields_override_the_defaults_and_the_rest_stay()
    {
        var qwen = GenerationConfig.Load(_dir.WriteText("q.json", """
            {"do_sample": true, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.05, "repetition_penalty": 1.05, "max_new_tokens": 9}
            """));
        var defaults = new SamplingParameters { MaxTokens = 100, Seed = 3, PresencePenalty = 0.5f };

        var sampling = qwen.ApplyTo(defaults);

        Assert.Equal(defaults with { Temperature = 0.7f, TopP = 0.8f, TopK = 20, MinP = 0.05f, RepetitionPenalty = 1.05f }, sampling);
        Assert.Equal(100, sampling.MaxTokens); // token limits stay the host's
        Assert.Same(defaults, GenerationConfig.Empty.ApplyTo(defaults));
    }

    [Fact]
    public void Do_sample_false_means_greedy_whatever_the_temperature()
    {
        var config = GenerationConfig.Load(_dir.WriteText("g.json", """{"do_sample": false, "temperature": 0.6, "top_p": 0}"""));
        var sampling = config.ApplyTo(new SamplingParameters());
        Assert.True(sampling.IsGreedy);
        Assert.Equal(1f, sampling.TopP); // top_p 0 means "off" in such files, not an invalid mass
        sampling.Validate();
    }
}
