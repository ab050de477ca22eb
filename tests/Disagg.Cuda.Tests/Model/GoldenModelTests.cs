using Disagg.Cuda.Model;
using Disagg.Kv;
using Disagg.PrefixCache;
using Disagg.Scheduling;

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
    [MemberData(nameof(Fixtures.Models), MemberType = typeof(Fixtures))]
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
    [MemberData(nameof(Fixtures.Models), MemberType = typeof(Fixtures))]
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
    [MemberData(nameof(Fixtures.Models), MemberType = typeof(Fixtures))]
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
    [MemberData(nameof(Fixtures.Models), MemberType = typeof(Fixtures))]
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

    internal static TorchModelExecutor Load(string name) =>
        TorchModelExecutor.Load(Fixtures.ModelDirectory(name), new ModelRunnerOptions { Device = "cpu", DataType = "float32", BlockSize = 4, KvCacheBlocks = 256 });

    /// <summary>
    /// Prefills <paramref name="prompt"/> through a real scheduler (chunked by <paramref name="maxBatchedTokens"/>) and returns
    /// the last position's logits; with <paramref name="prefixCache"/>, prefills it a second time from the cache as well.
    /// </summary>
    private static (float[] Cold, float[]? Warm, int CachedTokens) Prefill(TorchModelExecutor executor, int[] prompt, int maxBatchedTokens, bool prefixCache)
    {
        var allocator = new KvBlockAllocator(executor.KvBlockCount);
        var cache = prefixCache ? new RadixPrefixCache(allocator, executor.KvLayout.BlockSize) : null;
        var scheduler = new Scheduler(
            new SchedulerOptions { MaxBatchedTokens = maxBatchedTokens, EnablePrefixCaching = prefixCache },
            new KvCacheManager(allocator, executor.KvLayout.BlockSize, cache), executor.MaxContextLength);

        float[] Run(out int cachedTokens)
        {
            var seq = new Sequence(new InferenceRequest(prompt, SamplingParameters.Greedy with { MaxTokens = 1 }));
            scheduler.Enqueue(seq);
            var sampled = new int[8];
            while (true)
            {
                var batch = scheduler.Schedule();
                Assert.False(batch.IsEmpty);
                var logits = executor.ForwardLogits(batch);
                bool last = batch.SamplingCount == 1;
                cachedTokens = seq.CachedTokens;
                scheduler.CompleteStep(batch, sampled);
                if (last) return logits;
            }
        }

        var cold = Run(out _);
        if (!prefixCache) return (cold, null, 0);
        var warm = Run(out int cached);
        Assert.Equal(allocator.Capacity, allocator.FreeCount + cache!.CachedBlockCount); // nothing leaked
        return (cold, warm, cached);
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
