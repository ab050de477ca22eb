using BenchmarkDotNet.Attributes;
using Disagg.Kv;
using Disagg.PrefixCache;
using Disagg.Scheduling;

namespace Disagg.Benchmarks;

/// <summary>
/// One continuous-batching step over 256 running sequences in decode: building the batch, then applying the sampled tokens.
/// Each iteration starts from fresh sequences (IterationSetup) and runs <see cref="StepsPerIteration"/> steps.
/// </summary>
[MemoryDiagnoser]
public class SchedulerBenchmarks
{
    private const int Running = 256, StepsPerIteration = 2048;
    private Scheduler _scheduler = null!;
    private readonly int[] _sampled = new int[Running];

    [IterationSetup]
    public void StartDecoding()
    {
        var allocator = new KvBlockAllocator(Running * 200);
        var cache = new RadixPrefixCache(allocator, 16);
        _scheduler = new Scheduler(
            new SchedulerOptions { MaxRunningSequences = Running, MaxBatchedTokens = 8192, EnablePrefixCaching = false },
            new KvCacheManager(allocator, 16, cache), maxContextLength: 32_768);
        var sampling = SamplingParameters.Greedy with { MaxTokens = 1_000_000, IgnoreEndOfSequence = true };
        for (int i = 0; i < Running; i++)
            _scheduler.Enqueue(new Sequence(new InferenceRequest(Enumerable.Range(i, 128).ToArray(), sampling)));
        while (true) // prefill everyone, so that the measured steps are pure decode
        {
            var batch = _scheduler.Schedule();
            _scheduler.CompleteStep(batch, _sampled);
            if (batch.TotalTokens == Running) break;
        }
    }

    /// <summary>Schedule + CompleteStep for 256 decoding sequences.</summary>
    [Benchmark(OperationsPerInvoke = StepsPerIteration)]
    public int DecodeStep256()
    {
        int tokens = 0;
        for (int i = 0; i < StepsPerIteration; i++)
        {
            var batch = _scheduler.Schedule();
            _scheduler.CompleteStep(batch, _sampled);
            tokens += batch.TotalTokens;
        }
        return tokens;
    }
}
