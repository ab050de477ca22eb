using Disagg.Cuda.Model;

namespace Disagg.Cuda.Tests.Model;

/// <summary>
/// The TorchSharp model runner on CPU in float32 against HF transformers' outputs for the same checkpoints
/// (tests/Fixtures/make_fixtures.py), and against itself across the ways a prompt can reach the model.
/// </summary>
public class GoldenModelTests
{
    /// <summary>Max |ours - HF| over the whole vocabulary. Both run float32, so only summation order differs (measured up to 2e-5).</summary>
    private const float LogitTolerance = 1e-4f;

    /// <summary>Between two of our own paths (cached prefix vs cold, chunked vs one-shot): only op order differs.</summary>
    private const float SelfTolerance = 1e-4f;

    [Theory]
    [MemberData(nameof(Models))]
    public void Last_position_logits_match_transformers(string name)
    {
        var golden = Fixtures.LoadGolden(name);
        using var executor = Load(name);
        foreach (var prompt in golden.Prompts)
        {
            var logits = Prefill(executor, prompt.Ids, maxBatchedTokens: 4096, prefixCache: false).Cold;
            Assert.Equal(prompt.LastLogits.Length, logits.Length);
            Assert.True(MaxAbsDiff(logits, prompt.LastLogits) <= LogitTolerance,
                $"{name}, prompt of {prompt.Ids.Length}: max |diff| {MaxAbsDiff(logits, prompt.LastLogits)}");
            Assert.Equal(ArgMax(prompt.LastLogits), ArgMax(logits));
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task Greedy_tokens_match_transformers_alone_and_batched(string name)
    {
        var golden = Fixtures.LoadGolden(name);
        using var executor = Load(name);
        await using var engine = new LlmEngine(executor);
        var sampling = SamplingParameters.Greedy with { MaxTokens = 32, IgnoreEndOfSequence = true };

        foreach (var prompt in golden.Prompts) // one at a time: batch of 1
            Assert.Equal(prompt.Greedy, await Generate(engine, prompt.Ids, sampling));

        // All at once: prefills and decodes share steps, sequences join and leave the batch.
        var together = golden.Prompts.Select(p => Generate(engine, p.Ids, sampling)).ToArray();
        var results = await Task.WhenAll(together);
        for (int i = 0; i < results.Length; i++) Assert.Equal(golden.Prompts[i].Greedy, results[i]);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void A_prefix_cache_hit_gives_the_logits_of_a_cold_prefill(string name)
    {
        var golden = Fixtures.LoadGolden(name);
        using var executor = Load(name);
        var prompt = golden.Prompts.MaxBy(p => p.Ids.Length)!.Ids;
        var (cold, warm, cachedTokens) = Prefill(executor, prompt, maxBatchedTokens: 4096, prefixCache: true);
        Assert.True(cachedTokens >= prompt.Length / 2, $"only {cachedTokens} of {prompt.Length} tokens came from the cache");
        Assert.True(MaxAbsDiff(cold, warm!) <= SelfTolerance, $"max |diff| {MaxAbsDiff(cold, warm!)}");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Chunked_prefill_gives_the_logits_of_a_one_shot_prefill(string name)
    {
        var golden = Fixtures.LoadGolden(name);
        using var executor = Load(name);
        var prompt = golden.Prompts.MaxBy(p => p.Ids.Length)!.Ids;
        var oneShot = Prefill(executor, prompt, maxBatchedTokens: 4096, prefixCache: false).Cold;
        foreach (int chunk in new[] { 1, 5, 16, 23 })
        {
            var chunked = Prefill(executor, prompt, maxBatchedTokens: chunk, prefixCache: false).Cold;
            Assert.True(MaxAbsDiff(oneShot, chunked) <= SelfTolerance, $"chunks of {chunk}: max |diff| {MaxAbsDiff(oneShot, chunked)}");
        }
    }

    /// <summary>
    /// bfloat16 on CPU: weights and activations lose precision, so logits drift from float32 HF (measured up to 2% of the
    /// largest logit, the same as bfloat16 on an H100) but the top token of every golden prompt still agrees.
    /// </summary>
    [Theory]
    [MemberData(nameof(Models))]
    public void Bfloat16_on_cpu_stays_close_to_transformers(string name)
    {
        var golden = Fixtures.LoadGolden(name);
        using var executor = TorchModelExecutor.Load(Fixtures.ModelDirectory(name),
            new ModelRunnerOptions { Device = "cpu", DataType = "bfloat16", BlockSize = 16, KvCacheBlocks = 64 });
        foreach (var prompt in golden.Prompts)
        {
            var logits = Prefill(executor, prompt.Ids, maxBatchedTokens: 4096, prefixCache: false).Cold;
            float scale = prompt.LastLogits.Max(MathF.Abs);
            Assert.True(MaxAbsDiff(logits, prompt.LastLogits) <= 0.04f * scale, $"{name}: max |diff| {MaxAbsDiff(logits, prompt.LastLogits)} of {scale}");
            Assert.Equal(ArgMax(prompt.LastLogits), ArgMax(logits));
        }
    }

    public static TheoryData<string> Models() => new(Fixtures.ModelNames);

    internal static TorchModelExecutor Load(string name) =>
        TorchModelExecutor.Load(Fixtures.ModelDirectory(name), new ModelRunnerOptions { Device = "cpu", DataType = "float32", BlockSize = 4, KvCacheBlocks = 256 });

    private static (float[] Cold, float[]? Warm, int CachedTokens) Prefill(TorchModelExecutor executor, int[] prompt, int maxBatchedTokens, bool prefixCache)
    {
        var result = PrefillHarness.Run(executor, prompt, maxBatchedTokens, prefixCache);
        Assert.Equal(0, result.LeakedBlocks);
        return (result.Cold, result.Warm, result.CachedTokens);
    }

    private static async Task<int[]> Generate(LlmEngine engine, int[] prompt, SamplingParameters sampling)
    {
        var tokens = new List<int>();
        await foreach (var t in engine.GenerateAsync(new InferenceRequest(prompt, sampling))) tokens.Add(t.TokenId);
        return [.. tokens];
    }

    private static float MaxAbsDiff(float[] a, float[] b) => a.Zip(b).Max(p => MathF.Abs(p.First - p.Second));

    private static int ArgMax(float[] v) => Array.IndexOf(v, v.Max());
}
