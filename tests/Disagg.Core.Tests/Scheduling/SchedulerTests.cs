using Disagg.Kv;
using Disagg.PrefixCache;
using Disagg.Scheduling;
using FsCheck.Xunit;

namespace Disagg.Tests.Scheduling;

public class SchedulerTests
{
    private static (Scheduler Scheduler, KvBlockAllocator Allocator) NewScheduler(
        int blocks, int blockSize = 16, int budget = 64, int maxRunning = 8, int maxContext = 200_000, bool prefixCaching = false, int maxWaiting = 4096)
    {
        var allocator = new KvBlockAllocator(blocks);
        var cache = prefixCaching ? new RadixPrefixCache(allocator, blockSize) : null;
        var options = new SchedulerOptions
        {
            MaxBatchedTokens = budget,
            MaxRunningSequences = maxRunning,
            EnablePrefixCaching = prefixCaching,
            MaxWaitingRequests = maxWaiting,
        };
        return (new Scheduler(options, new KvCacheManager(allocator, blockSize, cache), maxContext), allocator);
    }

    private static Sequence NewSequence(int promptLength, int maxTokens = 4, int firstToken = 1) =>
        new(new InferenceRequest(Enumerable.Range(firstToken, promptLength).ToArray(),
            SamplingParameters.Greedy with { MaxTokens = maxTokens, IgnoreEndOfSequence = true }));

    /// <summary>Runs steps until idle, sampling token 5 everywhere; returns the number of steps.</summary>
    private static int RunToCompletion(Scheduler scheduler, Action<ScheduledBatch>? check = null, int maxSteps = 100_000)
    {
        int steps = 0;
        var sampled = new int[1024];
        while (!scheduler.IsIdle)
        {
            var batch = scheduler.Schedule();
            check?.Invoke(batch);
            Array.Fill(sampled, 5);
            scheduler.CompleteStep(batch, sampled);
            if (++steps > maxSteps) Assert.Fail("The scheduler made no progress.");
        }
        return steps;
    }

    [Fact]
    public void A_100k_token_prompt_is_prefilled_in_budget_sized_chunks_then_decoded()
    {
        var (scheduler, allocator) = NewScheduler(blocks: 6_300, budget: 2048);
        var seq = NewSequence(100_000, maxTokens: 3);
        scheduler.Enqueue(seq);
        var chunks = new List<(int Start, int Count, bool Samples)>();
        RunToCompletion(scheduler, b => { foreach (var c in b.Chunks) chunks.Add((c.Start, c.Count, c.SamplesToken)); });

        int prefillChunks = (100_000 + 2047) / 2048;
        Assert.Equal(prefillChunks + 2, chunks.Count); // then two decode steps for tokens 2 and 3
        for (int i = 0; i < prefillChunks; i++)
        {
            Assert.Equal(i * 2048, chunks[i].Start);
            Assert.Equal(Math.Min(2048, 100_000 - i * 2048), chunks[i].Count);
            Assert.Equal(i == prefillChunks - 1, chunks[i].Samples);
        }
        Assert.Equal((100_000, 1, true), chunks[prefillChunks]);
        Assert.Equal(3, seq.GeneratedCount);
        Assert.Equal(FinishReason.MaxTokens, seq.FinishReason);
        Assert.Equal(allocator.Capacity, allocator.FreeCount);
    }

    [Theory]
    [InlineData(1, 1)]    // shorter than a block
    [InlineData(15, 1)]
    [InlineData(16, 1)]   // exactly one block
    [InlineData(17, 2)]
    [InlineData(32, 2)]   // exact block boundary
    public void Blocks_cover_exactly_the_computed_positions(int promptLength, int blocksAfterPrefill)
    {
        var (scheduler, allocator) = NewScheduler(blocks: 8);
        var seq = NewSequence(promptLength, maxTokens: 2);
        scheduler.Enqueue(seq);
        var batch = scheduler.Schedule();
        Assert.Equal(blocksAfterPrefill, seq.BlockCount);
        Assert.Equal(8 - blocksAfterPrefill, allocator.FreeCount);
        scheduler.CompleteStep(batch, [5]);
        // The first decode step computes position promptLength: a new block exactly when the prompt filled its last one.
        scheduler.Schedule();
        Assert.Equal((promptLength + 1 + 15) / 16, seq.BlockCount);
    }

    [Fact]
    public void Bad_sequences_are_rejected_with_typed_errors()
    {
        var (scheduler, _) = NewScheduler(blocks: 4, maxContext: 1000, maxWaiting: 2);
        Assert.Throws<InvalidRequestException>(() => scheduler.Enqueue(new Sequence(new InferenceRequest(Array.Empty<int>()))));
        Assert.Throws<PromptTooLongException>(() => scheduler.Enqueue(NewSequence(1000)));
        var pool = Assert.Throws<PromptTooLongException>(() => scheduler.Enqueue(NewSequence(64))); // 4 blocks of 16 hold 64, +1 does not fit
        Assert.Equal(64, pool.Limit);
        scheduler.Enqueue(NewSequence(3));
        scheduler.Enqueue(NewSequence(3));
        Assert.Throws<EngineOverloadedException>(() => scheduler.Enqueue(NewSequence(3)));
    }

    [Fact]
    public void Admission_is_first_come_first_served_within_the_token_budget()
    {
        var (scheduler, _) = NewScheduler(blocks: 64, budget: 40, maxRunning: 8);
        var a = NewSequence(30); var b = NewSequence(30); var c = NewSequence(5);
        scheduler.Enqueue(a); scheduler.Enqueue(b); scheduler.Enqueue(c);
        var batch = scheduler.Schedule();
        // a takes 30, b gets the 10 left as its first chunk; c, though small, waits its turn.
        Assert.Equal([(a, 0, 30), (b, 0, 10)], batch.Chunks.ToArray().Select(x => (x.Sequence, x.Start, x.Count)));
        Assert.Equal(SequenceStatus.Waiting, c.Status);
        scheduler.CompleteStep(batch, [5, -1]);
        batch = scheduler.Schedule();
        Assert.Equal([(a, 30, 1), (b, 10, 20), (c, 0, 5)], batch.Chunks.ToArray().Select(x => (x.Sequence, x.Start, x.Count)));
    }

    [Fact]
    public void Running_out_of_blocks_preempts_the_youngest_which_is_recomputed_later()
    {
        // 4 blocks of 16. Two sequences of 16-token prompts fill 2 blocks; decoding needs 2 more each -> one must yield.
        var (scheduler, allocator) = NewScheduler(blocks: 4, budget: 64, maxRunning: 4);
        var old = NewSequence(16, maxTokens: 40);
        var young = NewSequence(16, maxTokens: 40, firstToken: 100);
        scheduler.Enqueue(old);
        scheduler.Enqueue(young);
        int preemptions = 0;
        RunToCompletion(scheduler, b =>
        {
            preemptions += b.PreemptedCount;
            Assert.True(b.TotalTokens <= 64);
            foreach (var c in b.Chunks) Assert.True(c.Sequence.BlockCount * 16 >= c.End, "A chunk has no block for its positions.");
        });
        Assert.True(preemptions > 0);
        Assert.Equal(0, old.PreemptionCount);
        Assert.True(young.PreemptionCount > 0);
        Assert.Equal(40, old.GeneratedCount);
        Assert.Equal(40, young.GeneratedCount);
        Assert.Equal(allocator.Capacity, allocator.FreeCount);
    }

    /// <summary>
    /// Random arrivals, lengths, budgets and pool sizes; after every step: the budget holds, no sequence appears twice, every
    /// chunk has blocks for its positions, no block is held by two sequences (unless shared through the prefix cache), and
    /// the blocks held add up. At the end every block is free or cached.
    /// </summary>
    [Property(MaxTest = 60)]
    public void Invariants_hold_under_random_load(int seed, bool prefixCaching)
    {
        var rng = new Random(seed);
        int blockSize = rng.Next(1, 9), budget = rng.Next(4, 80), blocks = rng.Next(24, 120);
        var (scheduler, allocator) = NewScheduler(blocks, blockSize, budget, rng.Next(1, 10), prefixCaching: prefixCaching);
        var all = new List<Sequence>();
        var sampled = new int[256];
        for (int step = 0; step < 400 && (step < 100 || !scheduler.IsIdle); step++)
        {
            if (step < 100 && rng.Next(3) == 0)
            {
                var s = new Sequence(new InferenceRequest(
                    Enumerable.Range(0, rng.Next(1, 3 * blockSize + 10)).Select(_ => rng.Next(3)).ToArray(),
                    SamplingParameters.Greedy with { MaxTokens = rng.Next(1, 12), IgnoreEndOfSequence = true }));
                scheduler.Enqueue(s);
                all.Add(s);
            }
            var batch = scheduler.Schedule();
            Assert.True(batch.TotalTokens <= budget);
            var seen = new HashSet<Sequence>();
            var owners = new Dictionary<int, Sequence>();
            foreach (var c in batch.Chunks)
            {
                Assert.True(seen.Add(c.Sequence), "A sequence was scheduled twice in one step.");
                Assert.Equal(c.Sequence.ComputedTokens, c.Start);
                Assert.True(c.Sequence.BlockCount * blockSize >= c.End);
            }
            foreach (var s in all.Where(s => s.Status == SequenceStatus.Running))
                foreach (int id in s.BlockTable[s.BorrowedBlocks..])
                    Assert.True(owners.TryAdd(id, s), $"Block {id} is owned by two sequences.");
            for (int i = 0; i < batch.Count; i++) sampled[i] = rng.Next(3);
            scheduler.CompleteStep(batch, sampled);
            if (rng.Next(20) == 0 && all.Count > 0) scheduler.Abort(all[rng.Next(all.Count)]);
        }
        Assert.True(scheduler.IsIdle, "Work was left after the arrivals stopped.");
        int cached = scheduler.KvCache.PrefixCache?.CachedBlockCount ?? 0;
        Assert.Equal(allocator.Capacity, allocator.FreeCount + cached);
        Assert.All(all, s => Assert.Equal(SequenceStatus.Finished, s.Status));
    }
}
