using Disagg.Scheduling;
using Disagg.Tests.TestModel;
using static Disagg.Tests.Engines.LlmEngineTests;

namespace Disagg.Tests.Reliability;

/// <summary>Overload gets a clear rejection, not unbounded queues; requests the engine can never hold are refused before queuing.</summary>
[Trait("Category", "Reliability")]
public class AdmissionControlTests
{
    private static LlmEngine Engine(ToyExecutor executor, int maxWaiting) => new(executor, new LlmEngineOptions
    {
        Scheduler = new SchedulerOptions { MaxBatchedTokens = 24, MaxRunningSequences = 1, MaxWaitingRequests = maxWaiting, EnablePrefixCaching = false },
    });

    [Fact]
    public async Task A_prompt_larger_than_the_pool_is_refused_before_it_is_queued()
    {
        await using var engine = Engine(new ToyExecutor(blocks: 4, maxContext: 4096), maxWaiting: 8); // 16 tokens of KV
        var tooBig = new InferenceRequest(Enumerable.Range(1, 16).ToArray()); // 16 tokens plus the next one need 5 blocks
        var reserve = engine.ReserveAsync(tooBig);
        var prefill = engine.PrefillAsync(tooBig);
        Assert.True(reserve.IsFaulted && prefill.IsFaulted, "The engine queued a request it can never hold.");
        var error = await Assert.ThrowsAsync<PromptTooLongException>(async () => await reserve);
        Assert.Equal(16, error.Limit);
        await Assert.ThrowsAsync<PromptTooLongException>(async () => await prefill);
        await Assert.ThrowsAsync<PromptTooLongException>(() => Collect(engine.GenerateAsync(tooBig)));
        Assert.Equal(0, engine.GetLoad().WaitingRequests);
    }

    [Fact]
    public async Task Beyond_the_waiting_bound_requests_are_rejected_typed_and_the_admitted_ones_complete()
    {
        var executor = new ToyExecutor(blocks: 64, endOfSequence: 3);
        await using var engine = Engine(executor, maxWaiting: 3);
        using var steps = new SemaphoreSlim(0); // the test lets the engine take one step at a time
        using var stepping = new SemaphoreSlim(0);
        executor.BeforeStep = _ => { stepping.Release(); steps.Wait(); };
        try
        {
            // One long request runs (MaxRunningSequences = 1); three more wait behind it. (Requests drained in the same
            // iteration as the running one would count as waiting with it: the bound is on requests not yet admitted.)
            var running = new InferenceRequest(new[] { 1, 2, 3 }, SamplingParameters.Greedy with { MaxTokens = 200, IgnoreEndOfSequence = true });
            var first = Collect(engine.GenerateAsync(running));
            Assert.True(await stepping.WaitAsync(TimeSpan.FromSeconds(30)), "The first request never ran.");
            var queued = Enumerable.Range(0, 3).Select(i => new InferenceRequest(new[] { 4 + i, 5 }, SamplingParameters.Greedy with { MaxTokens = 3 })).ToList();
            var waiting = queued.Select(r => Collect(engine.GenerateAsync(r))).ToList();
            await TestWorkloadsWait.Until(() =>
            {
                if (engine.GetLoad().WaitingRequests == 3) return true;
                if (steps.CurrentCount == 0) steps.Release(); // the load is published between steps
                return false;
            }, () => $"The three requests never queued: load {engine.GetLoad()}, {executor.Steps} steps, running request {first.Status}, " +
                $"queued [{string.Join(", ", waiting.Select(t => t.Exception?.InnerException?.Message ?? t.Status.ToString()))}].");

            // The queue is full: a new request, a prefill or a reservation is refused at once, without queuing.
            var extra = new InferenceRequest(new[] { 9, 9 });
            var overload = await Assert.ThrowsAsync<EngineOverloadedException>(() => Collect(engine.GenerateAsync(extra)));
            Assert.Contains("MaxWaitingRequests", overload.Message);
            var reserve = engine.ReserveAsync(extra);
            var prefill = engine.PrefillAsync(extra);
            Assert.True(reserve.IsFaulted && prefill.IsFaulted, "A request beyond the bound was queued.");
            await Assert.ThrowsAsync<EngineOverloadedException>(async () => await reserve);
            await Assert.ThrowsAsync<EngineOverloadedException>(async () => await prefill);
            Assert.Equal(3, engine.GetLoad().WaitingRequests);

            executor.BeforeStep = null;
            steps.Release(1000);
            Assert.Equal(ToyModel.ReferenceGenerate(running, 2, [3], 4096), await first);
            for (int i = 0; i < queued.Count; i++) Assert.Equal(ToyModel.ReferenceGenerate(queued[i], 2, [3], 4096), await waiting[i]);
            await AssertAllBlocksReturn(engine);
        }
        finally
        {
            executor.BeforeStep = null;
            steps.Release(1000);
        }
    }
}
