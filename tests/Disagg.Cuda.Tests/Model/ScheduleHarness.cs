using Disagg.Cuda.Model;
using Disagg.Kv;
using Disagg.Scheduling;

namespace Disagg.Cuda.Tests.Model;

/// <summary>
/// Drives requests that arrive at chosen steps through a real scheduler and the executor, step by step, so that a schedule
/// (which steps mix decode rows with prompt chunks) is the same on every run: outputs of two runs differ only by what the
/// executor did. Shared by the tests and the device check.
/// </summary>
internal static class ScheduleHarness
{
    /// <summary>A request and the step at which it reaches the scheduler.</summary>
    public sealed record Arrival(int Step, int[] Prompt, SamplingParameters Sampling, ulong Seed);

    /// <summary>What a run produced.</summary>
    /// <param name="Tokens">Each request's generated tokens, in arrival order.</param>
    /// <param name="Steps">Steps run.</param>
    /// <param name="MixedSteps">Steps holding both single-token chunks and longer ones.</param>
    /// <param name="LayerReports">Per step, the layers reported to the layer callback, in the order heard.</param>
    /// <param name="LeakedBlocks">Blocks not free at the end (should be 0).</param>
    /// <param name="Logits">The float32 logits each token was picked from, by (request in arrival order, token index).</param>
    public sealed record Result(int[][] Tokens, int Steps, int MixedSteps, IReadOnlyList<int[]> LayerReports, int LeakedBlocks,
        IReadOnlyDictionary<(int Request, int Token), float[]> Logits);

    public static Result Run(TorchModelExecutor executor, IReadOnlyList<Arrival> arrivals, int maxBatchedTokens)
    {
        var allocator = new KvBlockAllocator(executor.KvBlockCount);
        var scheduler = new Scheduler(
            new SchedulerOptions { MaxBatchedTokens = maxBatchedTokens, EnablePrefixCaching = false },
            new KvCacheManager(allocator, executor.KvLayout.BlockSize, null), executor.MaxContextLength);
        var sequences = arrivals.Select(a => new Sequence(new InferenceRequest(a.Prompt, a.Sampling with { Seed = a.Seed }))).ToArray();
        var reports = new List<int[]>();
        var heard = new List<int>();
        int mixed = 0, step = 0, lastArrival = arrivals.Count == 0 ? 0 : arrivals.Max(a => a.Step);
        var index = sequences.Select((s, i) => (s, i)).ToDictionary(p => p.s, p => p.i);
        var logits = new Dictionary<(int, int), float[]>();
        executor.SamplingLogitsObserved = (seq, row) => logits[(index[seq], seq.GeneratedCount)] = row;
        try
        {
            while (step <= lastArrival || !scheduler.IsIdle)
            {
                for (int i = 0; i < arrivals.Count; i++)
                    if (arrivals[i].Step == step) scheduler.Enqueue(sequences[i]);
                step++;
                var batch = scheduler.Schedule();
                if (batch.IsEmpty)
                {
                    if (step <= lastArrival) continue;
                    throw new InvalidOperationException("The scheduler stalled.");
                }
                if (StepPartition.IsMixed(batch.Chunks)) mixed++;
                var sampled = new int[batch.Count];
                Array.Fill(sampled, -1);
                heard.Clear();
                executor.Execute(batch, sampled, heard.Add);
                reports.Add([.. heard]);
                scheduler.CompleteStep(batch, sampled);
            }
        }
        finally
        {
            executor.SamplingLogitsObserved = null;
        }
        var tokens = sequences.Select(s => s.Tokens[s.PromptLength..].ToArray()).ToArray();
        return new Result(tokens, step, mixed, reports, allocator.Capacity - allocator.FreeCount, logits);
    }

    /// <summary>
    /// A random workload from <paramref name="seed"/>: <paramref name="requests"/> prompts of 1 to 40 tokens arriving over
    /// the first dozen steps, 3 to 14 output tokens each, half of them greedy and half sampled (temperature, top-k, top-p)
    /// with their own seeds.
    /// </summary>
    public static Arrival[] RandomWorkload(int seed, int requests, int vocabulary)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, requests).Select(_ =>
        {
            var prompt = Enumerable.Range(0, random.Next(1, 41)).Select(_ => random.Next(vocabulary)).ToArray();
            var sampling = random.Next(2) == 0
                ? SamplingParameters.Greedy
                : new SamplingParameters { Temperature = 0.7f + random.NextSingle(), TopK = random.Next(2) * 20, TopP = random.Next(2) == 0 ? 1f : 0.9f };
            return new Arrival(random.Next(12), prompt, sampling with { MaxTokens = random.Next(3, 15), IgnoreEndOfSequence = true }, (ulong)random.NextInt64());
        })];
    }
}
