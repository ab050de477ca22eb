using System.Runtime.InteropServices;
using Disagg.Cuda.Model;
using Disagg.Scheduling;
using TorchSharp;

namespace Disagg.Cuda.DeviceCheck;

/// <summary>
/// One decode step of the fused native path, run eagerly (no graph) between cuProfilerStart and cuProfilerStop, so that a
/// kernel profiler started with profiling off (<c>ncu --profile-from-start off</c>) records exactly that step's kernels:
///   ncu --profile-from-start off --metrics gpu__time_duration.sum --csv Disagg.Cuda.DeviceCheck --kernel-profile MODEL [--batch 1]
/// benchmarks/gpu/kernel_profile.py sums the result per kernel.
/// </summary>
internal static class KernelProfile
{
    [DllImport("libcuda.so.1")]
    private static extern int cuProfilerStart();

    [DllImport("libcuda.so.1")]
    private static extern int cuProfilerStop();

    public static void Run(string model, int batch, int context)
    {
        using var executor = TorchModelExecutor.Load(model, new ModelRunnerOptions
        {
            Device = "cuda", DataType = "bfloat16", KvCacheBlocks = batch * ((context + 40) / 16 + 1),
            UseNativeKernels = true, UseCudaGraphs = false,
        });
        Console.WriteLine($"decode path: {executor.DecodePath} {executor.DecodePathNote}");
        var rng = new Random(5);
        var step = new ScheduledBatch(batch);
        var sequences = new List<Sequence>();
        int block = 0;
        for (int i = 0; i < batch; i++)
        {
            int[] prompt = [.. Enumerable.Range(0, context).Select(_ => rng.Next(1000))];
            var seq = new Sequence(new InferenceRequest(prompt, SamplingParameters.Greedy with { MaxTokens = 16 }));
            for (int b = 0; b < (context + 40) / 16 + 1; b++) seq.AddBlock(block++);
            var prefill = new ScheduledBatch(1);
            prefill.Add(new ScheduledChunk(seq, 0, context, true));
            var first = new int[1];
            executor.Execute(prefill, first);
            seq.Append(first[0]);
            sequences.Add(seq);
        }
        var sampled = new int[batch];
        for (int s = 0; s < 3; s++) // warm: the fused path's first steps load kernels and cuBLAS heuristics
        {
            step.Clear();
            foreach (var seq in sequences) step.Add(new ScheduledChunk(seq, seq.Length - 1, 1, true));
            executor.Execute(step, sampled);
            for (int i = 0; i < batch; i++) sequences[i].Append(sampled[i]);
        }
        torch.cuda.synchronize();
        step.Clear();
        foreach (var seq in sequences) step.Add(new ScheduledChunk(seq, seq.Length - 1, 1, true));
        cuProfilerStart();
        executor.Execute(step, sampled);
        torch.cuda.synchronize();
        cuProfilerStop();
        Console.WriteLine($"profiled one decode step of {batch} sequence(s) at context {context + 4}");
    }
}
