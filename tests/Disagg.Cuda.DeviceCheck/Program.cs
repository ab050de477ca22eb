// Runs every golden fixture through the TorchSharp model runner on a device and reports, per model and dtype, how far the
// last-position logits are from HF transformers' float32 outputs and how many of the 32 greedy tokens agree.
//   Disagg.Cuda.DeviceCheck [--device cuda] [--dtypes bfloat16,float16,float32] [--out report.json]
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

var runtime = TorchRuntime.Initialize(device.StartsWith("cuda", StringComparison.Ordinal) ? TorchBackend.Cuda : TorchBackend.Cpu);
Console.WriteLine($"runtime: {runtime}");
var rows = new List<object>();
int failures = 0;
foreach (string name in Fixtures.ModelNames)
{
    var golden = Fixtures.LoadGolden(name);
    foreach (string dtype in dtypes)
    {
        try
        {
            var clock = Stopwatch.StartNew();
            using var executor = TorchModelExecutor.Load(Fixtures.ModelDirectory(name),
                new ModelRunnerOptions { Device = device, DataType = dtype, BlockSize = 16, KvCacheBlocks = 512 });
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
            await using var engine = new LlmEngine(executor);
            var sampling = SamplingParameters.Greedy with { MaxTokens = 32, IgnoreEndOfSequence = true };
            var alone = new List<int[]>();
            foreach (var p in golden.Prompts) alone.Add(await Generate(engine, p.Ids, sampling));
            var batched = await Task.WhenAll(golden.Prompts.Select(p => Generate(engine, p.Ids, sampling)));
            var agreeing = golden.Prompts.Select((p, i) => p.Greedy.Zip(alone[i]).TakeWhile(t => t.First == t.Second).Count()).ToArray();
            bool batchedEqualsAlone = batched.Select((b, i) => b.SequenceEqual(alone[i])).All(x => x);
            var row = new
            {
                model = name, dtype, device, max_abs_logit_error = maxErr, max_abs_reference_logit = maxRef,
                argmax_agree = $"{argmaxAgree}/{golden.Prompts.Length}",
                greedy_tokens_agreeing_before_first_divergence = agreeing, batched_equals_alone = batchedEqualsAlone,
                seconds = clock.Elapsed.TotalSeconds,
            };
            rows.Add(row);
            Console.WriteLine(JsonSerializer.Serialize(row));
        }
        catch (Exception e)
        {
            failures++;
            rows.Add(new { model = name, dtype, device, error = e.ToString() });
            Console.WriteLine($"{name} {dtype}: {e}");
        }
    }
}
if (outPath is not null) File.WriteAllText(outPath, JsonSerializer.Serialize(new { runtime = runtime.ToString(), rows }, new JsonSerializerOptions { WriteIndented = true }));
return failures == 0 ? 0 : 1;

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
