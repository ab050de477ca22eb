using Disagg.Cuda.Model;
using Disagg.Kv;
using Disagg.Scheduling;

namespace Disagg.Cuda.Tests.DemoModel;

/// <summary>
/// Held-out perplexity through Disagg's serving path: each evaluation window becomes a sequence whose prompt is its first
/// token; every step the scheduler batches all windows' decode steps, the executor returns each one's next-token logits
/// (paged KV cache, batched decode attention), and instead of a sampled token the window's true next token is appended
/// (teacher forcing). The windows are those of eval.json: consecutive, non-overlapping, <c>contextLength</c> tokens.
/// </summary>
internal static class TeacherForcedPerplexity
{
    public readonly record struct Result(double MeanNll, int PredictedTokens, int Windows, int LeakedBlocks)
    {
        public double Perplexity => Math.Exp(MeanNll);
    }

    public static int BlocksNeeded(int tokenCount, int contextLength, int blockSize) =>
        (tokenCount / contextLength + 1) * ((contextLength + blockSize - 1) / blockSize);

    public static Result Run(TorchModelExecutor executor, IReadOnlyList<int> tokens, int contextLength)
    {
        var windows = new List<(int Start, int Length)>();
        for (int start = 0; start < tokens.Count; start += contextLength)
        {
            int length = Math.Min(contextLength, tokens.Count - start);
            if (length >= 2) windows.Add((start, length));
        }

        var allocator = new KvBlockAllocator(executor.KvBlockCount);
        var scheduler = new Scheduler(
            new SchedulerOptions { MaxBatchedTokens = 4096, EnablePrefixCaching = false, MaxRunningSequences = windows.Count },
            new KvCacheManager(allocator, executor.KvLayout.BlockSize, null), executor.MaxContextLength);
        var startOf = new Dictionary<Sequence, int>();
        foreach (var (start, length) in windows)
        {
            var seq = new Sequence(new InferenceRequest(new[] { tokens[start] }, SamplingParameters.Greedy with { MaxTokens = length - 1, IgnoreEndOfSequence = true }));
            startOf[seq] = start;
            scheduler.Enqueue(seq);
        }

        int vocabulary = executor.VocabularySize, predicted = 0, finished = 0;
        double total = 0;
        var next = new int[windows.Count + 1];
        while (finished < windows.Count)
        {
            var batch = scheduler.Schedule();
            if (batch.IsEmpty) throw new InvalidOperationException("The scheduler stalled.");
            float[] logits = executor.ForwardLogits(batch);
            var chunks = batch.Chunks;
            for (int i = 0, row = 0; i < chunks.Length; i++)
            {
                if (!chunks[i].SamplesToken) continue;
                var seq = chunks[i].Sequence;
                int target = tokens[startOf[seq] + seq.Length];
                total += NegativeLogLikelihood(logits.AsSpan(row * vocabulary, vocabulary), target);
                predicted++;
                next[i] = target;
                row++;
            }
            scheduler.CompleteStep(batch, next);
            foreach (var chunk in chunks)
                if (chunk.SamplesToken && chunk.Sequence.FinishReason is not null) finished++;
        }
        return new Result(total / predicted, predicted, windows.Count, allocator.Capacity - allocator.FreeCount);
    }

    /// <summary>-log softmax(logits)[target], in double.</summary>
    private static double NegativeLogLikelihood(ReadOnlySpan<float> logits, int target)
    {
        float max = float.NegativeInfinity;
        foreach (float v in logits) max = MathF.Max(max, v);
        double sum = 0;
        foreach (float v in logits) sum += Math.Exp(v - max);
        return Math.Log(sum) + max - logits[target];
    }
}
