// Runs every golden fixture through the TorchSharp model runner on a device and reports, per model, dtype and decode path,
// how far the last-position logits are from HF transformers' float32 outputs, how many of the 32 greedy tokens agree,
// and whether each native decode path gives the TorchSharp path's tokens (greedy alone and batched, seeded sampling, and
// a fixed schedule of mixed steps: requests arriving while others decode, so that the native paths split steps into decode
// rows on the decoder and prompt chunks on TorchSharp ops).
//   Disagg.Cuda.DeviceCheck [--device cuda] [--dtypes bfloat16,float16,float32] [--paths torchsharp,graphs,eager,partitioned,graphs-cublas,graphs-serial]
//                           [--out report.json]
//   Disagg.Cuda.DeviceCheck --kernel-check [--out report.json]   (the native kernels alone against plain torch ops)
//   Disagg.Cuda.DeviceCheck --sampler-check [--cases 2000]   (the device sampler against the reference sampler, DeviceSamplerTests' cases)
//   Disagg.Cuda.DeviceCheck --prefill-timeline MODEL [--prompt-tokens 8192] [--chunks 8192,2048] [--packed-prompt-attention 1|0|auto]   (a chunked prefill's time, PrefillTimeline.cs)
//   Disagg.Cuda.DeviceCheck --op-costs [--tokens 512,2048]   (the host's cost of issuing each op of a native prompt step, OpCosts.cs)
// Paths: torchsharp (no native kernels), graphs (fused kernels in CUDA graphs), eager (fused kernels, no graphs),
// partitioned (graphs with 64 attention partitions, so that the partition merge runs on these short contexts),
// graphs-cublas (graphs with every linear layer on cuBLAS: steps of 1-4 rows otherwise use the native thin kernel),
// graphs-serial (graphs without programmatic dependent launch: each kernel starts after the one before has drained).
using System.Diagnostics;
using System.Text.Json;
using Disagg;
using Disagg.Cuda;
using Disagg.Cuda.Model;
using Disagg.Cuda.Runtime;
using Disagg.Cuda.Tests;
using Disagg.Cuda.Tests.Model;

string device = Arg("--device") ?? "cuda";
string[] dtypes = (Arg("--dtypes") ?? "bfloat16,float16,float32").Split(',');
string? outPath = Arg("--out");
string[] paths = (Arg("--paths") ?? "torchsharp").Split(',');
// Mixed-step schedules: (workload seed, requests, step token budget); prompts of 1-40 tokens arriving over a dozen steps,
// half greedy, half sampled. Up to 24 decode rows beside prompt chunks, so that several graph sizes are replayed.
(int Seed, int Requests, int Budget)[] mixedWorkloads = [(1, 6, 16), (2, 8, 33), (3, 12, 5), (4, 24, 33), (5, 24, 64)];

var runtime = TorchRuntime.Initialize(device.StartsWith("cuda", StringComparison.Ordinal) ? TorchBackend.Cuda : TorchBackend.Cpu);
Console.WriteLine($"runtime: {runtime}");
if (Arg("--kernel-profile") is { } kernelModel)
{
    Disagg.Cuda.DeviceCheck.KernelProfile.Run(kernelModel, int.Parse(Arg("--batch") ?? "1"), int.Parse(Arg("--context") ?? "128"));
    return 0;
}
if (Arg("--prefill-timeline") is { } timelineModel)
{
    LlamaModel.PackedPromptAttention = Arg("--packed-prompt-attention") switch { "1" => true, "0" => false, _ => null };
    WriteReport(Disagg.Cuda.DeviceCheck.PrefillTimeline.Run(timelineModel, int.Parse(Arg("--prompt-tokens") ?? "8192"),
        [.. (Arg("--chunks") ?? "8192,2048").Split(',').Select(int.Parse)], Arg("--native-prefill") != "0"));
    return 0;
}
if (args.Contains("--op-costs"))
{
    WriteReport(Disagg.Cuda.DeviceCheck.OpCosts.Run([.. (Arg("--tokens") ?? "512,2048").Split(',').Select(int.Parse)]));
    return 0;
}
if (args.Contains("--sampler-check"))
{
    // The device sampler's random cases (DeviceSamplerTests) on this device: penalties, min-p, top-k, top-p, ties.
    int cases = int.Parse(Arg("--cases") ?? "2000"), mismatches = 0, changedLogits = 0;
    for (int seed = 0; seed < cases; seed++)
    {
        var (expected, actual, kept) = SamplerCase.Run(seed, device);
        if (!expected.SequenceEqual(actual)) mismatches++;
        if (!kept) changedLogits++;
    }
    // Time a decode step's sampling: 64 rows of Qwen2.5's vocabulary, plain and with a repetition penalty on 4,096
    // distinct tokens a row (medians of 20 calls after 3, each ending with the token ids on the host).
    double Time(Disagg.Sampling.PenaltyTable? penalties)
    {
        using var logits = TorchSharp.torch.randn([64, 151_936], device: TorchSharp.torch.device(device));
        var sampleRows = Enumerable.Range(0, 64).Select(i => SamplingRow.For(
            new SamplingParameters { Temperature = 0.7f, TopP = 0.9f, RepetitionPenalty = 1.05f, FrequencyPenalty = 0.2f }, 151_936, (ulong)i, 0)).ToArray();
        var times = new List<double>();
        for (int i = 0; i < 23; i++)
        {
            var clock = Stopwatch.StartNew();
            DeviceSampler.Sample(logits, sampleRows, penalties);
            if (i >= 3) times.Add(clock.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        return times[times.Count / 2];
    }
    var history = new Disagg.Sampling.TokenPenalties();
    history.Update([.. Enumerable.Range(0, 4096).Select(k => k * 37 % 151_936)], 4000); // 4,000 prompt tokens, 96 generated
    var penalized = new Disagg.Sampling.PenaltyTable();
    for (int row = 0; row < 64; row++) penalized.Add(row, 151_936, history);
    double plainMs = Time(null), penalizedMs = Time(penalized);
    WriteReport([new { device, cases, mismatches, changed_logits = changedLogits, sample_64x151936_ms = plainMs, sample_64x151936_penalized_4096_ms = penalizedMs }]);
    Console.WriteLine($"sampler check on {device}: {cases} cases, {mismatches} mismatches, {changedLogits} with changed logits; " +
        $"64 rows x 151,936: {plainMs:F2} ms, with penalties on 4,096 tokens a row {penalizedMs:F2} ms");
    return mismatches == 0 && changedLogits == 0 ? 0 : 1;
}
if (args.Contains("--kernel-check"))
{
    var (checks, failed) = Disagg.Cuda.DeviceCheck.KernelCheck.Run();
    WriteReport(checks);
    return failed == 0 ? 0 : 1;
}
if (Arg("--profile") is { } profileModel)
{
    var profile = await Disagg.Cuda.DeviceCheck.Profile.RunAsync(profileModel, int.Parse(Arg("--batch") ?? "1"), int.Parse(Arg("--steps") ?? "100"),
        (Arg("--paths") ?? "torchsharp,graphs,eager").Split(','));
    if (outPath is not null) File.WriteAllText(outPath, JsonSerializer.Serialize(profile, new JsonSerializerOptions { WriteIndented = true }));
    return 0;
}
var rows = new List<object>();
int failures = 0;
foreach (string name in Fixtures.ModelNames)
{
    var golden = Fixtures.LoadGolden(name);
    foreach (string dtype in dtypes)
    {
        int[][]? reference = null, referenceSampled = null, referenceMixed = null; // the TorchSharp path's tokens, when it ran first
        foreach (string path in paths)
        try
        {
            var clock = Stopwatch.StartNew();
            DecodeBuffers.PartitionsOverride = path == "partitioned" ? DecodeBuffers.MaxPartitions : null;
            LlamaModel.NativeLinearRows = path == "graphs-cublas" ? 0 : Disagg.Cuda.Native.NativeCuda.MaxLinearRows;
            if (path != "torchsharp" && Disagg.Cuda.Native.NativeCuda.IsAvailable) Disagg.Cuda.Native.NativeCuda.ProgrammaticLaunch = path != "graphs-serial";
            using var executor = TorchModelExecutor.Load(Fixtures.ModelDirectory(name),
                new ModelRunnerOptions
                {
                    Device = device, DataType = dtype, BlockSize = 16, KvCacheBlocks = 512,
                    UseNativeKernels = path != "torchsharp", UseCudaGraphs = path != "eager", UseNativePrefill = path != "torchsharp",
                });
            double maxErr = 0, maxRef = 0;
            int argmaxAgree = 0;
            foreach (var p in golden.Prompts)
            {
                var logits = PrefillHarness.Run(executor, p.Ids, 4096, prefixCache: false).Cold;
                for (int i = 0; i < logits.Length; i++)
                {
                    maxErr = Math.Max(maxErr, Math.Abs(logits[i] - p.LastLogits[i]));
                    maxRef = Math.Max(maxRef, Math.Abs(p.LastLogits[i]));
                }
                if (Array.IndexOf(logits, logits.Max()) == Array.IndexOf(p.LastLogits, p.LastLogits.Max())) argmaxAgree++;
            }
            // Before the engine exists: the harness has its own allocator over the executor's KV pool.
            long splitBefore = executor.SplitSteps;
            var mixed = mixedWorkloads.Select(w => ScheduleHarness.Run(executor, ScheduleHarness.RandomWorkload(w.Seed, w.Requests, executor.VocabularySize), w.Budget)).ToArray();
            var mixedTokens = mixed.SelectMany(r => r.Tokens).ToArray();
            long mixedSplit = executor.SplitSteps - splitBefore; // before the engine's own steps below add theirs
            await using var engine = new LlmEngine(executor);
            var sampling = SamplingParameters.Greedy with { MaxTokens = 32, IgnoreEndOfSequence = true };
            var alone = new List<int[]>();
            foreach (var p in golden.Prompts) alone.Add(await Generate(engine, p.Ids, sampling));
            var batched = await Task.WhenAll(golden.Prompts.Select(p => Generate(engine, p.Ids, sampling)));
            var agreeing = golden.Prompts.Select((p, i) => p.Greedy.Zip(alone[i]).TakeWhile(t => t.First == t.Second).Count()).ToArray();
            bool batchedEqualsAlone = batched.Select((b, i) => b.SequenceEqual(alone[i])).All(x => x);
            var sampled = await Task.WhenAll(golden.Prompts.Select((p, i) =>
                Generate(engine, p.Ids, new SamplingParameters { Temperature = 0.8f, TopP = 0.95f, MaxTokens = 32, IgnoreEndOfSequence = true, Seed = (ulong)(7 + i) })));
            if (path == "torchsharp")
            {
                reference = [.. alone];
                referenceSampled = sampled;
                referenceMixed = mixedTokens;
            }
            bool? SameAs(int[][]? expected, IReadOnlyList<int[]> actual) => expected is null ? null : actual.Select((a, i) => a.SequenceEqual(expected[i])).All(x => x);
            var row = new
            {
                model = name, dtype, device, path, decode_path = executor.DecodePath, decode_path_note = executor.DecodePathNote,
                max_abs_logit_error = maxErr, max_abs_reference_logit = maxRef,
                argmax_agree = $"{argmaxAgree}/{golden.Prompts.Length}",
                greedy_tokens_agreeing_before_first_divergence = agreeing, batched_equals_alone = batchedEqualsAlone,
                greedy_same_as_torchsharp = SameAs(reference, alone), batched_same_as_torchsharp = SameAs(reference, batched),
                sampled_same_as_torchsharp = SameAs(referenceSampled, sampled),
                mixed_steps = mixed.Sum(r => r.MixedSteps), mixed_steps_split = mixedSplit,
                mixed_same_as_torchsharp = SameAs(referenceMixed, mixedTokens),
                mixed_requests_same_as_torchsharp = referenceMixed is null ? null : $"{mixedTokens.Where((t, i) => t.SequenceEqual(referenceMixed[i])).Count()}/{mixedTokens.Length}",
                mixed_leaked_blocks = mixed.Sum(r => r.LeakedBlocks),
                seconds = clock.Elapsed.TotalSeconds,
            };
            rows.Add(row);
            Console.WriteLine(JsonSerializer.Serialize(row));
        }
        catch (Exception e)
        {
            failures++;
            rows.Add(new { model = name, dtype, device, path, error = e.ToString() });
            Console.WriteLine($"{name} {dtype} {path}: {e}");
        }
    }
}
WriteReport(rows);
return failures == 0 ? 0 : 1;

void WriteReport(List<object> reportRows)
{
    if (outPath is not null)
        File.WriteAllText(outPath, JsonSerializer.Serialize(new { runtime = runtime.ToString(), rows = reportRows }, new JsonSerializerOptions { WriteIndented = true }));
}

string? Arg(string flag)
{
    int i = Array.IndexOf(args, flag);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

static async Task<int[]> Generate(LlmEngine engine, int[] prompt, SamplingParameters sampling)
{
    var tokens = new List<int>();
    await foreach (var t in engine.GenerateAsync(new InferenceRequest(prompt, sampling))) tokens.Add(t.TokenId);
    return [.. tokens];
}
