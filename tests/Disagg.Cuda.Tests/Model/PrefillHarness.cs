using Disagg.Cuda.Model;
using Disagg.Kv;
using Disagg.PrefixCache;
using Disagg.Scheduling;

namespace Disagg.Cuda.Tests.Model;

/// <summary>Drives one prompt through a real scheduler and the executor, for comparing logits (shared by tests and the device check).</summary>
internal static class PrefillHarness
{
    /// <summary>What a prefill produced.</summary>
    /// <param name="Cold">Last-position logits of a prefill with nothing cached.</param>
    /// <param name="Warm">With a prefix cache: the logits of the same prompt prefilled again, from the cache.</param>
    /// <param name="CachedTokens">Tokens the second prefill took from the cache.</param>
    /// <param name="LeakedBlocks">Blocks neither free nor cached at the end (should be 0).</param>
    public readonly record struct Result(float[] Cold, float[]? Warm, int CachedTokens, int LeakedBlocks);

    /// <summary>
    /// Prefills <paramref name="prompt"/>, chunked by <paramref name="maxBatchedTokens"/>, and returns the last position's logits;
    /// with <paramref name="prefixCache"/>, prefills it a second time from the cache as well.
    /// </summary>
    public static Result Run(TorchModelExecutor executor, int[] prompt, int maxBatchedTokens, bool prefixCache)
    {
        var allocator = new KvBlockAllocator(executor.KvBlockCount);
        var cache = prefixCache ? new RadixPrefixCache(allocator, executor.KvLayout.BlockSize) : null;
        var scheduler = new Scheduler(
            new SchedulerOptions { MaxBatchedTokens = maxBatchedTokens, EnablePrefixCaching = prefixCache },
            new KvCacheManager(allocator, executor.KvLayout.BlockSize, cache), executor.MaxContextLength);

        float[] Once(out int cachedTokens)
        {
            var seq = new Sequence(new InferenceRequest(prompt, SamplingParameters.Greedy with { MaxTokens = 1 }));
            scheduler.Enqueue(seq);
            var sampled = new int[8];
            while (true)
            {
                var batch = scheduler.Schedule();
                if (batch.IsEmpty) throw new InvalidOperationException("The scheduler stalled.");
                var logits = executor.ForwardLogits(batch);
                bool last = batch.SamplingCount == 1;
                cachedTokens = seq.CachedTokens;
                scheduler.CompleteStep(batch, sampled);
                if (last) return logits;
            }
        }

        var cold = Once(out _);
        float[]? warm = null;
        int cached = 0;
        if (prefixCache) warm = Once(out cached);
        int leaked = allocator.Capacity - allocator.FreeCount - (cache?.CachedBlockCount ?? 0);
        return new Result(cold, warm, cached, leaked);
    }
}
