using System.Diagnostics;
using Disagg.Cuda.Model;
using Disagg.Scheduling;
using TorchSharp;

namespace Disagg.Cuda.DeviceCheck;

/// <summary>
/// Where a chunked prefill's time goes, on the executor alone (no engine): one prompt prefilled in chunks of each size,
/// timed as a whole with one synchronize at the end (the device and the host overlapping as they do in the engine) and
/// again with a synchronize after every chunk (each chunk's own device time, nothing overlapping):
///   Disagg.Cuda.DeviceCheck --prefill-timeline MODEL [--prompt-tokens 8192] [--chunks 8192,2048] [--native-prefill 0] [--packed-prompt-attention 0]
/// </summary>
internal static class PrefillTimeline
{
    public static List<object> Run(string model, int promptTokens, int[] chunkSizes, bool native)
    {
        int blocks = promptTokens / 16 + 2;
        using var executor = TorchModelExecutor.Load(model, new ModelRunnerOptions
        {
            Device = "cuda", DataType = "bfloat16", KvCacheBlocks = blocks, UseNativeKernels = false, UseNativePrefill = native,
        });
        var rng = new Random(3);
        int[] prompt = [.. Enumerable.Range(0, promptTokens).Select(_ => rng.Next(Math.Min(32000, executor.VocabularySize)))];
        var rows = new List<object>();
        var sampled = new int[1];
        foreach (int chunk in chunkSizes)
        {
            foreach (bool synced in new[] { false, true })
            {
                var totals = new List<double>();
                double[] steps = [];
                for (int rep = 0; rep < 4; rep++) // the first is a warm-up
                {
                    var seq = new Sequence(new InferenceRequest(prompt, SamplingParameters.Greedy with { MaxTokens = 1 }));
                    for (int b = 0; b < blocks; b++) seq.AddBlock(b);
                    var perStep = new List<double>();
                    torch.cuda.synchronize();
                    var clock = Stopwatch.StartNew();
                    for (int start = 0; start < promptTokens; start += chunk)
                    {
                        int n = Math.Min(chunk, promptTokens - start);
                        var batch = new ScheduledBatch(1);
                        batch.Add(new ScheduledChunk(seq, start, n, start + n == promptTokens));
                        var step = Stopwatch.StartNew();
                        executor.Execute(batch, sampled);
                        if (synced) torch.cuda.synchronize();
                        perStep.Add(step.Elapsed.TotalMilliseconds);
                    }
                    torch.cuda.synchronize();
                    if (rep == 0) continue;
                    totals.Add(clock.Elapsed.TotalMilliseconds);
                    steps = [.. perStep];
                }
                totals.Sort();
                var row = new
                {
                    check = "prefill_timeline", prompt_tokens = promptTokens, chunk, synced_each_chunk = synced, native_prefill = executor.NativePrefill,
                    packed_prompt_attention = LlamaModel.PackedPromptAttention?.ToString() ?? "auto",
                    total_ms_median = totals[totals.Count / 2], total_ms_runs = totals, last_run_step_ms = steps,
                };
                rows.Add(row);
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(row));
            }
        }
        return rows;
    }
}
