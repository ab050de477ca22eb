using System.Diagnostics;
using Disagg.Cuda.Model;
using Disagg.Scheduling;
using TorchSharp;

namespace Disagg.Cuda.DeviceCheck;

/// <summary>
/// Where a decode step's time goes: executor steps timed directly (no engine) for a batch of n sequences, on one decode
/// path, beside the same steps through <see cref="LlmEngine"/>.
///   Disagg.Cuda.DeviceCheck --profile MODEL_DIR [--batch 1] [--steps 100] [--paths torchsharp,graphs,eager]
/// </summary>
internal static class Profile
{
    public static async Task<List<object>> RunAsync(string model, int batch, int steps, string[] paths)
    {
        var rows = new List<object>();
        foreach (var path in paths)
        {
            using var executor = TorchModelExecutor.Load(model, new ModelRunnerOptions
            {
                Device = "cuda", DataType = "bfloat16", KvCacheBlocks = 4096,
                UseNativeKernels = path != "torchsharp", UseCudaGraphs = path != "eager", UseNativePrefill = path != "torchsharp",
            });
            var rng = new Random(3);
            var sequences = new List<Sequence>();
            int block = 0;
            for (int i = 0; i < batch; i++)
            {
                int[] prompt = [.. Enumerable.Range(0, 128).Select(_ => rng.Next(1000))];
                var seq = new Sequence(new InferenceRequest(prompt, SamplingParameters.Greedy with { MaxTokens = steps + 8 }));
                for (int b = 0; b < (128 + steps + 8 + 15) / 16; b++) seq.AddBlock(block++);
                sequences.Add(seq);
                var prefill = new ScheduledBatch(1);
                prefill.Add(new ScheduledChunk(seq, 0, 128, true));
                var first = new int[1];
                executor.Execute(prefill, first);
                seq.Append(first[0]);
            }
            var step = new ScheduledBatch(batch);
            var sampled = new int[batch];
            var times = new List<double>();
            for (int s = 0; s < steps; s++)
            {
                step.Clear();
                foreach (var seq in sequences) step.Add(new ScheduledChunk(seq, seq.Length - 1, 1, true));
                long t0 = Stopwatch.GetTimestamp();
                executor.Execute(step, sampled);
                times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                for (int i = 0; i < batch; i++) sequences[i].Append(sampled[i]);
            }
            times.Sort();
            var row = new
            {
                profile = model, path, decode_path = executor.DecodePath, note = executor.DecodePathNote, batch, steps,
                step_ms_median = times[times.Count / 2], step_ms_min = times[0], step_ms_p90 = times[(int)(times.Count * 0.9)],
                tokens_per_s = batch * 1000 / times[times.Count / 2],
                graph = executor.Decoder?.Profile(batch, 30),
            };
            rows.Add(row);
            Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(row));
        }
        // The same model through the engine: what the engine loop adds to the executor's step.
        foreach (var path in paths)
        {
            var engine = new LlmEngine(TorchModelExecutor.Load(model, new ModelRunnerOptions
            {
                Device = "cuda", DataType = "bfloat16", KvCacheBlocks = 4096,
                UseNativeKernels = path != "torchsharp", UseCudaGraphs = path != "eager", UseNativePrefill = path != "torchsharp",
            }), new LlmEngineOptions { Scheduler = new() { EnablePrefixCaching = false } });
            await using (engine)
            {
                var rng = new Random(4);
                var request = new InferenceRequest(Enumerable.Range(0, 128).Select(_ => rng.Next(1000)).ToArray(),
                    SamplingParameters.Greedy with { MaxTokens = steps, IgnoreEndOfSequence = true });
                var stamps = new List<long>();
                await foreach (var _ in engine.GenerateAsync(request)) stamps.Add(Stopwatch.GetTimestamp());
                var row = new { profile = model, path, engine_batch1_tokens_per_s = (stamps.Count - 1) / Stopwatch.GetElapsedTime(stamps[0], stamps[^1]).TotalSeconds };
                rows.Add(row);
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(row));
            }
        }
        return rows;
    }
}
