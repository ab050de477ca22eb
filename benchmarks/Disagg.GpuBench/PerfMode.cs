using System.Diagnostics;
using System.Text.Json;
using Disagg.Benchmarks.Serving.Charts;
using Disagg.Benchmarks.Serving.Results;
using Disagg.Cuda;
using Disagg.Cuda.Model;

namespace Disagg.GpuBench;

/// <summary>
/// perf: the issue's single-GPU rows on one engine: batch-1 decode tokens/s, output tokens/s of N concurrent streams, and
/// the time to first token of a 2,048-token prompt; each target is read against the baselines that
/// benchmarks/gpu/baselines.py measured in the same run on the same checkpoint (--baselines FILE).
/// </summary>
internal static class PerfMode
{
    public static async Task RunAsync(BenchArguments a, Dictionary<string, object?> report)
    {
        string model = a.Require("--model");
        bool cpu = a.Has("--cpu");
        string device = cpu ? "cpu" : a.Get("--device") ?? "cuda:0", dataType = cpu ? "float32" : "bfloat16";
        int promptTokens = a.Int("--prompt-tokens", 128), decodeTokens = a.Int("--decode-tokens", 256), streams = a.Int("--streams", 64),
            streamTokens = a.Int("--stream-tokens", 128), prefillTokens = a.Int("--prefill-tokens", 2048), runs = Math.Max(1, a.Int("--runs", 3));
        if (Math.Min(Math.Min(promptTokens, decodeTokens), Math.Min(streams, Math.Min(streamTokens, prefillTokens))) < 1)
            throw new ArgumentException("--prompt-tokens, --decode-tokens, --streams, --stream-tokens and --prefill-tokens must be at least 1.");
        var baselines = Baselines.Load(a.Get("--baselines"), report.GetValueOrDefault("commit") as string);

        var executor = TorchModelExecutor.Load(model, cpu
            ? new ModelRunnerOptions { Device = device, DataType = dataType, KvCacheBlocks = a.Int("--kv-blocks", 4096) }
            : new ModelRunnerOptions { Device = device, DataType = dataType, KvCacheBytes = (long)(a.Double("--kv-gb", 16) * (1L << 30)) });
        var config = executor.Config;
        int vocabulary = executor.VocabularySize, context = executor.MaxContextLength;
        if (Math.Max(promptTokens + Math.Max(decodeTokens, streamTokens), prefillTokens + 1) > context)
            throw new ArgumentException($"The requested prompt and output lengths exceed the model's context ({context}).");
        var timer = new StepTimer(executor); // splits decode steps into device time and the engine's host time
        await using var engine = new LlmEngine(timer, new LlmEngineOptions
        {
            Scheduler = new() { EnablePrefixCaching = false, MaxBatchedTokens = Math.Max(8192, prefillTokens), MaxRunningSequences = Math.Max(256, streams) },
        });

        var rng = new Random(9);
        int[] Prompt(int n) => [.. Enumerable.Range(0, n).Select(_ => rng.Next(vocabulary))];
        async Task<List<long>> Run(int[] prompt, int tokens)
        {
            var stamps = new List<long>(tokens);
            var request = new InferenceRequest(prompt, SamplingParameters.Greedy with { MaxTokens = tokens, IgnoreEndOfSequence = true });
            await foreach (var _ in engine.GenerateAsync(request)) stamps.Add(Stopwatch.GetTimestamp());
            return stamps;
        }
        void Log(string what) => Console.Error.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] perf: {what}");

        Log("batch-1 decode");
        await Run(Prompt(promptTokens), 16); // warm-up
        var batch1 = new List<double>();
        timer.Recording = true;
        for (int i = 0; i < runs; i++)
        {
            var stamps = await Run(Prompt(promptTokens), decodeTokens);
            if (stamps.Count > 1) batch1.Add((stamps.Count - 1) / Stopwatch.GetElapsedTime(stamps[0], stamps[^1]).TotalSeconds);
        }
        timer.Recording = false;

        Log($"{streams} concurrent streams");
        await Task.WhenAll(Enumerable.Range(0, streams).Select(_ => Run(Prompt(promptTokens), 16))); // warm-up at this batch size
        var streamRates = new List<double>();
        long mixedBefore = executor.MixedSteps, splitBefore = executor.SplitSteps;
        timer.Recording = true;
        for (int i = 0; i < runs; i++)
        {
            var prompts = Enumerable.Range(0, streams).Select(_ => Prompt(promptTokens)).ToArray();
            long start = Stopwatch.GetTimestamp();
            var all = await Task.WhenAll(prompts.Select(p => Run(p, streamTokens)));
            streamRates.Add(all.Sum(s => s.Count) / Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        timer.Recording = false;
        long streamsMixed = executor.MixedSteps - mixedBefore, streamsSplit = executor.SplitSteps - splitBefore;

        Log($"prefill of {prefillTokens} tokens");
        await Run(Prompt(prefillTokens), 1); // warm-up
        var prefill = new List<double>();
        for (int i = 0; i < Math.Max(5, runs); i++)
        {
            var prompt = Prompt(prefillTokens);
            long t0 = Stopwatch.GetTimestamp();
            var first = await Run(prompt, 1);
            prefill.Add(Stopwatch.GetElapsedTime(t0, first[0]).TotalMilliseconds);
        }

        double? decode = batch1.Count > 0 ? Median.Of(batch1) : null;
        double streamed = Median.Of(streamRates), prefillMs = Median.Of(prefill);
        string shape = a.Get("--shape") ?? ModelShape.Identify(config); // --shape: read the targets of a named shape (smoke runs)
        report["model"] = ModelShape.Describe(model, config, dataType);
        report["engine_device"] = device;
        report["measurements"] = new Dictionary<string, object?>
        {
            ["batch1_decode_tokens_per_s"] = new Dictionary<string, object?> { ["median"] = decode, ["runs"] = batch1, ["prompt_tokens"] = promptTokens, ["decode_tokens"] = decodeTokens,
                ["definition"] = "(tokens - 1) / (last token time - first token time): decode only, prefill excluded" },
            ["streams_output_tokens_per_s"] = new Dictionary<string, object?> { ["median"] = streamed, ["runs"] = streamRates, ["streams"] = streams, ["prompt_tokens"] = promptTokens,
                ["output_tokens"] = streamTokens, ["definition"] = "all streams submitted at once; output tokens / wall time from submission to the last token (prefill included)" },
            ["prefill_ms"] = new Dictionary<string, object?> { ["median"] = prefillMs, ["runs"] = prefill, ["prompt_tokens"] = prefillTokens,
                ["definition"] = "time to the first token of one prompt on an idle engine (prefill, sampling and engine overhead)" },
        };
        // Where a decode step's time goes: the engine's split, then the bare graph replays of the same batch sizes.
        report["step_profile"] = new Dictionary<string, object?>
        {
            ["decode_path"] = executor.DecodePath,
            ["engine_batch1"] = timer.Summary(1),
            [$"engine_batch{streams}"] = timer.Summary(streams),
            ["streams_mixed_steps"] = new Dictionary<string, object?> { ["mixed"] = streamsMixed, ["split"] = streamsSplit,
                ["definition"] = "steps of the measured stream runs holding decode rows beside prompt chunks; split: their decode rows ran on the native path" },
            ["graph_batch1"] = executor.Decoder?.Profile(1, 100),
            [$"graph_batch{streams}"] = executor.Decoder?.Profile(streams, 30),
        };
        report["baselines"] = baselines.Document;
        var targets = Targets(shape, decode, streamed, prefillMs, streams, prefillTokens, baselines);
        report["targets"] = targets;

        if (a.Get("--chart") is { } chart)
        {
            var deviceInfo = (Dictionary<string, object>)report["device"]!;
            await File.WriteAllBytesAsync(chart, Chart($"DISAGG PERF - {shape} - {deviceInfo["name"]}", decode, streamed, prefillMs, streams, prefillTokens, targets, baselines).ToPng());
            report["chart"] = Path.GetFileName(chart);
        }
    }

    /// <summary>
    /// chart: draws a perf result file's chart again (for example after a change to the chart) without a GPU:
    /// <c>Disagg.GpuBench chart --cpu --perf perf.json --out perf.png</c>.
    /// </summary>
    public static async Task RenderAsync(BenchArguments a)
    {
        string path = a.Require("--perf");
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(path));
        var root = json.RootElement;
        var m = root.GetProperty("measurements");
        double? Median(string name) => m.GetProperty(name).GetProperty("median") is { ValueKind: JsonValueKind.Number } v ? v.GetDouble() : null;
        int streams = m.GetProperty("streams_output_tokens_per_s").GetProperty("streams").GetInt32();
        int prefillTokens = m.GetProperty("prefill_ms").GetProperty("prompt_tokens").GetInt32();
        double? decode = Median("batch1_decode_tokens_per_s");
        double streamed = Median("streams_output_tokens_per_s") ?? 0, prefillMs = Median("prefill_ms") ?? 0;
        var document = root.TryGetProperty("baselines", out var b) && b.ValueKind == JsonValueKind.Object ? b.Clone() : (JsonElement?)null;
        string? baselineCommit = document is { } d && d.TryGetProperty("commit", out var c) ? c.GetString() : null;
        string? runCommit = root.TryGetProperty("commit", out var rc) ? rc.GetString() : null;
        bool sameRun = baselineCommit is not null && baselineCommit == runCommit;
        var baselines = new Baselines(document, sameRun ? "same run" : $"commit {baselineCommit}", baselineCommit, sameRun);
        string shape = root.GetProperty("model").GetProperty("shape").GetString() ?? "";
        var targets = Targets(shape, decode, streamed, prefillMs, streams, prefillTokens, baselines);
        string device = root.GetProperty("device").GetProperty("name").GetString() ?? "";
        await File.WriteAllBytesAsync(a.Require("--out"), Chart($"DISAGG PERF - {shape} - {device}", decode, streamed, prefillMs, streams, prefillTokens, targets, baselines).ToPng());
    }

    /// <summary>The issue's targets for the named shapes (other shapes have none).</summary>
    private static List<TargetResult> Targets(string shape, double? decode, double streamed, double prefillMs, int streams, int prefillTokens, Baselines b)
    {
        var hfDecode = b.Baseline("hf_generate_batch1_decode", "HF transformers generate(), batch 1: decode", "tok/s");
        var hfBatched = b.Baseline("hf_generate_batched_output", $"HF transformers generate(), static batch {b.Value("hf_generate_batched_output", "batch")}: output", "tok/s");
        var hfForward = b.Baseline("hf_forward_prefill", "HF transformers forward pass of the prompt", "ms");
        return shape switch
        {
            "llama3-8b" =>
            [
                TargetResult.AtLeast("Llama-3-8B shape, batch-1 decode", decode, "tok/s", 160, hfDecode),
                TargetResult.AtLeast($"Llama-3-8B shape, {streams} concurrent streams", streamed, "tok/s", 4000, hfBatched),
                TargetResult.AtMost($"Llama-3-8B shape, prefill of {prefillTokens} tokens (<= 1.1x an HF forward pass)", prefillMs, "ms", 1.1 * hfForward.Value, hfForward),
            ],
            "qwen2.5-0.5b" => [TargetResult.AtLeast("Qwen2.5-0.5B shape, batch-1 decode", decode, "tok/s", 1000, hfDecode)],
            _ => [],
        };
    }

    private static Canvas Chart(string header, double? decode, double streamed, double prefillMs, int streams, int prefillTokens, List<TargetResult> targets, Baselines b)
    {
        BarChart Panel(string title, double? ours, string oursTarget, params (string Name, string Key)[] others)
        {
            string[] groups = ["DISAGG", .. others.Select(o => o.Name)];
            double?[] values = [ours, .. others.Select(o => b.Value(o.Key))];
            var target = targets.FirstOrDefault(t => t.Name.Contains(oursTarget, StringComparison.Ordinal));
            string legend = b.SameRun ? "MEASURED IN THIS RUN" : $"DISAGG IN THIS RUN, THE OTHERS AT COMMIT {b.Commit ?? "UNKNOWN"}";
            return new BarChart(title, groups, [new BarSeries(legend, values, Rgb.Palette[0])])
            {
                Objective = target?.Target,
                ObjectiveLabel = target is null ? "" : $"TARGET {target.Comparison} {AxisScale.Label(target.Target ?? 0)}",
            };
        }
        return ChartGrid.Compose(header,
        [
            Panel("BATCH-1 DECODE (TOK/S)", decode, "batch-1 decode",
                ("HF GENERATE", "hf_generate_batch1_decode"), ("TORCH LOOP", "torch_loop_eager_batch1_decode"), ("TORCH+GRAPH", "torch_loop_graph_batch1_decode")),
            Panel($"{streams} STREAMS (OUTPUT TOK/S)", streamed, "concurrent streams",
                ("HF GENERATE", "hf_generate_batched_output"), ("TORCH LOOP", "torch_loop_eager_batched_output"), ("TORCH+GRAPH", "torch_loop_graph_batched_output")),
            Panel($"PREFILL {prefillTokens} TOKENS (MS)", prefillMs, "prefill", ("HF FORWARD", "hf_forward_prefill")),
        ], columns: 3, panelWidth: 520);
    }

    /// <summary>The baselines file written by benchmarks/gpu/baselines.py: a "measurements" array of {name, value, unit, ...}.</summary>
    private sealed class Baselines(JsonElement? document, string source, string? commit = null, bool sameRun = false)
    {
        public JsonElement? Document => document;

        /// <summary>The commit baselines.py recorded, when the file says.</summary>
        public string? Commit => commit;

        /// <summary>True when the file was measured at this run's commit.</summary>
        public bool SameRun => sameRun;

        /// <summary>Reads the file; its source says whether it was measured at this run's commit or at an earlier one.</summary>
        public static Baselines Load(string? path, string? runCommit)
        {
            if (path is null) return new Baselines(null, "not measured: no --baselines file was given");
            if (!File.Exists(path)) return new Baselines(null, $"not measured: {path} does not exist (did baselines.py fail?)");
            try
            {
                using var json = JsonDocument.Parse(File.ReadAllText(path));
                var root = json.RootElement.Clone();
                string? commit = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("commit", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
                string file = Path.GetFileName(path);
                bool sameRun = commit is not null && commit == runCommit;
                string source = sameRun
                    ? $"benchmarks/gpu/baselines.py in the same run ({file})"
                    : $"benchmarks/gpu/baselines.py in an earlier run, at commit {commit ?? "unknown"} ({file}): not measured side by side with this one";
                return new Baselines(root, source, commit, sameRun);
            }
            catch (JsonException e)
            {
                return new Baselines(null, $"not measured: {path} is not valid JSON ({e.Message})");
            }
        }

        /// <summary>A number of the measurement named <paramref name="name"/>: its value, or another field of it (e.g. "batch").</summary>
        public double? Value(string name, string field = "value")
        {
            if (document is not { } root || !root.TryGetProperty("measurements", out var list) || list.ValueKind != JsonValueKind.Array) return null;
            foreach (var m in list.EnumerateArray())
                if (m.TryGetProperty("name", out var n) && n.GetString() == name && m.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.Number)
                    return v.GetDouble();
            return null;
        }

        public TargetBaseline Baseline(string key, string name, string unit)
        {
            double? value = Value(key);
            return new TargetBaseline(name, value, unit,
                value is null && document is not null ? $"not measured: {key} is missing from the baselines file (see its errors)" : source);
        }
    }
}
