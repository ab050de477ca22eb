using Disagg.Cuda.Loading;
using Disagg.Cuda.Model;

namespace Disagg.Cuda.Tests.Model;

/// <summary>Bad input through the whole model runner: typed errors naming the problem, and the engine keeps serving.</summary>
public sealed class BadInputTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "disagg-bad-" + Guid.NewGuid().ToString("N"));

    public BadInputTests()
    {
        Directory.CreateDirectory(_dir);
        foreach (var file in Directory.GetFiles(Fixtures.ModelDirectory("llama3"))) File.Copy(file, Path.Combine(_dir, Path.GetFileName(file)));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_prompt_longer_than_the_context_is_refused_and_the_engine_keeps_serving()
    {
        await using var engine = new LlmEngine(TorchModelExecutor.Load(_dir, new ModelRunnerOptions { Device = "cpu", DataType = "float32", KvCacheBlocks = 128 }));
        var tooLong = new InferenceRequest(new int[engine.MaxContextLength + 1], SamplingParameters.Greedy);
        var error = await Assert.ThrowsAsync<PromptTooLongException>(async () => { await foreach (var _ in engine.GenerateAsync(tooLong)) { } });
        Assert.Equal(engine.MaxContextLength + 1, error.PromptLength);

        var outside = new InferenceRequest(new[] { 1, 2, 1_000_000 }, SamplingParameters.Greedy);
        await Assert.ThrowsAsync<InvalidRequestException>(async () => { await foreach (var _ in engine.GenerateAsync(outside)) { } });

        int count = 0;
        await foreach (var _ in engine.GenerateAsync(new InferenceRequest(new[] { 1, 2, 3 }, SamplingParameters.Greedy with { MaxTokens = 4 }))) count++;
        Assert.Equal(4, count);
    }

    [Fact]
    public void A_truncated_checkpoint_is_named()
    {
        string weights = Path.Combine(_dir, "model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes[..(bytes.Length / 2)]);
        var error = Assert.Throws<ModelLoadException>(() => TorchModelExecutor.Load(_dir));
        Assert.Contains("model.safetensors", error.Message);
    }

    [Fact]
    public void An_unknown_architecture_is_named()
    {
        string config = Path.Combine(_dir, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("LlamaForCausalLM", "GPT2LMHeadModel").Replace("\"llama\"", "\"gpt2\""));
        var error = Assert.Throws<ModelLoadException>(() => TorchModelExecutor.Load(_dir));
        Assert.Contains("GPT2LMHeadModel", error.Message);
    }

    [Fact]
    public void A_tensor_of_the_wrong_shape_is_named()
    {
        string config = Path.Combine(_dir, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"intermediate_size\": 128", "\"intermediate_size\": 96"));
        var error = Assert.Throws<ModelLoadException>(() => TorchModelExecutor.Load(_dir));
        Assert.Contains("mlp", error.Message);
    }
}
