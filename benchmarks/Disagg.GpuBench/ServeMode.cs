using System.Collections.Concurrent;
using Disagg.Benchmarks.Serving;
using Disagg.Benchmarks.Serving.Charts;
using Disagg.Benchmarks.Serving.Results;
using Disagg.Coordination;
using Disagg.Cuda;
using Disagg.Cuda.Model;
using Disagg.Transport.InProcess;

namespace Disagg.GpuBench;

/// <summary>
/// serve: replays a Poisson workload (long prompts or multi-turn chat) at one or several rates against colocated and
/// disaggregated configurations, and writes latency percentiles, throughput, goodput under the objective and the issue's
/// disaggregation target. Weights are loaded once per device; every run gets fresh engines, warmed up before measuring.
/// </summary>
internal static class ServeMode
{
    private static readonly string[] s_configurations = ["colocated", "replicas", "disaggregated"];

    private static readonly Dictionary<string, string> s_names = new()
    {
        ["colocated"] = "colocated, 1 GPU", ["replicas"] = "colocated, 2 replicas", ["disaggregated"] = "disaggregated",
    };

    public static async Task RunAsync(BenchArguments a, Dictionary<string, object?> report)
    {
        string model = a.Require("--model");
        bool cpu = a.Has("--cpu");
        string kind = a.Get("--workload") ?? "long";
        if (kind is not ("long" or "chat")) throw new ArgumentException($"--workload must be long or chat, not '{kind}'.");
        double[] rates = a.Has("--rates") ? a.Doubles("--rates", []) : [a.Double("--rate", 2)];
        if (rates.Length == 0 || rates.Any(x => x <= 0)) throw new ArgumentException("--rates needs positive request rates, e.g. 1,2,4.");
        string[] configurations = a.List("--configs", s_configurations);
        if (configurations.FirstOrDefault(c => !s_configurations.Contains(c)) is { } unknown)
            throw new ArgumentException($"--configs: unknown configuration '{unknown}' (use {string.Join(", ", s_configurations)}).");
        var policy = (a.Get("--router") ?? "cache-aware") switch
        {
            "cache-aware" => RoutingPolicy.CacheAware,
            "least-loaded" => RoutingPolicy.LeastLoaded,
            "round-robin" => RoutingPolicy.RoundRobin,
            var other => throw new ArgumentException($"--router must be cache-aware, least-loaded or round-robin, not '{other}'."),
        };
        var slo = new ServingSlo(a.Double("--slo-ttft-ms", 2000), a.Double("--slo-itl-ms", 80), (a.Get("--slo-itl-stat") ?? "p90") switch
        {
            "p90" => ItlStatistic.P90,
            "max" => ItlStatistic.Max,
            var other => throw new ArgumentException($"--slo-itl-stat must be p90 or max, not '{other}'."),
        });
        slo.Validate();
        string[] devices = cpu ? ["cpu", "cpu"] : a.List("--devices", ["cuda:0", "cuda:1"]);
        if (devices.Length < 2 && configurations.Any(c => c != "colocated")) throw new ArgumentException("--devices needs two devices for replicas and disaggregated.");
        var settings = new RunSettings(policy, a.Int("--warmup", 8), TimeSpan.FromSeconds(a.Double("--timeout-s", 600)),
            a.Int("--max-batched-tokens", 4096), a.Int("--local-prefill-max", 0), devices);

        string dataType = cpu ? "float32" : "bfloat16";
        ModelRunnerOptions On(string device) => cpu
            ? new() { Device = device, DataType = dataType, KvCacheBlocks = a.Int("--kv-blocks", 4096) }
            : new() { Device = device, DataType = dataType, KvCacheBytes = (long)(a.Double("--kv-gb", 24) * (1L << 30)) };
        using var first = TorchModelExecutor.Load(model, On(devices[0]));
        using var second = configurations.Any(c => c != "colocated") ? TorchModelExecutor.Load(model, On(devices[1])) : null;

        var workload = Workload(a, kind, first);
        report["model"] = ModelShape.Describe(model, first.Config, dataType);
        report["workload"] = workload.Describe;
        report["slo"] = new Dictionary<string, object> { ["ttft_ms"] = slo.TtftMs, ["itl_ms"] = slo.ItlMs, ["itl_statistic"] = slo.ItlStatistic.ToString().ToLowerInvariant(), ["definition"] = slo.Definition };
        report["configurations"] = configurations.ToDictionary(c => s_names[c], c => Describe(c, devices, policy));

        var runs = new List<ServingSummary>();
        foreach (double rate in rates)
        {
            var requests = workload.Generate(rate);
            foreach (string configuration in configurations)
            {
                Console.Error.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] serve {kind} @ {rate} req/s: {s_names[configuration]}");
                var summary = await RunOne(configuration, first, second, requests, rate, workload.WarmUpPromptTokens, slo, settings);
                Console.Error.WriteLine($"  goodput {summary.Goodput:0.###} req/s, {summary.OutputTokensPerSecond:0} tok/s, TTFT p50 {summary.TtftMs.P50:0} ms, ITL p50 {summary.ItlMs.P50:0.#} ms, failed {summary.Failed}, rejected {summary.Rejected}");
                runs.Add(summary);
                // Written after every run, so that a sweep cut off by a time limit still leaves what it measured.
                report["runs"] = runs;
                report["complete"] = false;
                if (a.Get("--out") is { } partial) await File.WriteAllTextAsync(partial, ResultJson.Serialize(report));
            }
        }
        report["complete"] = true;
        report["targets"] = kind == "long" ? DisaggregationTargets(runs, rates) : new List<TargetResult>();

        if (a.Get("--chart") is { } chart)
        {
            var device = (Dictionary<string, object>)report["device"]!;
            string header = $"DISAGG SERVE {kind} - {ModelShape.Identify(first.Config)} - {device["name"]} X{device["count"]}";
            await File.WriteAllBytesAsync(chart, ServingCharts.Render(header, runs, slo).ToPng());
            report["chart"] = Path.GetFileName(chart);
        }
    }

    private sealed record RunSettings(RoutingPolicy Policy, int WarmUp, TimeSpan Timeout, int MaxBatchedTokens, int LocalPrefillMax, string[] Devices);

    /// <summary>A workload (generated at each rate of the sweep: the same requests, only the gaps scale), its parameters and a warm-up prompt length.</summary>
    private sealed record WorkloadSpec(PoissonWorkload Workload, Dictionary<string, object> Describe, int WarmUpPromptTokens)
    {
        public IReadOnlyList<WorkloadRequest> Generate(double rate) => (Workload with { RequestsPerSecond = rate }).Generate();
    }

    private static WorkloadSpec Workload(BenchArguments a, string kind, TorchModelExecutor executor)
    {
        int requests = a.Int("--requests", 32), seed = a.Int("--seed", 1), vocabulary = executor.VocabularySize, context = executor.MaxContextLength;
        if (kind == "long")
        {
            int prompt = a.Int("--prompt-tokens", 2048), output = a.Int("--tokens", 300);
            if (prompt + output > context) throw new ArgumentException($"--prompt-tokens {prompt} plus --tokens {output} exceed the model's context ({context}).");
            var workload = new LongPromptWorkload { Requests = requests, RequestsPerSecond = 1, PromptTokens = prompt, OutputTokens = output, Vocabulary = vocabulary, Seed = seed };
            return new WorkloadSpec(workload, new()
            {
                ["kind"] = "long", ["arrivals"] = "poisson", ["requests"] = requests, ["prompt_tokens"] = prompt, ["output_tokens"] = output, ["seed"] = seed,
            }, prompt);
        }
        var (minUser, maxUser) = a.IntRange("--chat-user-tokens", (16, 256));
        var (minOutput, maxOutput) = a.IntRange("--chat-output-tokens", (32, 256));
        int systems = a.Int("--system-prompts", 4), systemTokens = a.Int("--system-tokens", 512), turns = a.Int("--max-turns", 4);
        double followUp = a.Double("--follow-up", 0.5);
        var chat = new ChatWorkload
        {
            Requests = requests, RequestsPerSecond = 1, Vocabulary = vocabulary, Seed = seed, SystemPrompts = systems, SystemPromptTokens = systemTokens,
            MinUserTokens = minUser, MaxUserTokens = maxUser, MinOutputTokens = minOutput, MaxOutputTokens = maxOutput, MaxTurns = turns,
            FollowUpProbability = followUp, MaxContextTokens = context,
        };
        return new WorkloadSpec(chat, new()
        {
            ["kind"] = "chat", ["arrivals"] = "poisson; a follow-up turn is sent only after the turn it answers has finished",
            ["requests"] = requests, ["system_prompts"] = systems, ["system_prompt_tokens"] = systemTokens, ["user_tokens"] = new[] { minUser, maxUser },
            ["output_tokens"] = new[] { minOutput, maxOutput }, ["max_turns"] = turns, ["follow_up_probability"] = followUp, ["seed"] = seed,
        }, systemTokens + maxUser);
    }

    private static string Describe(string configuration, string[] devices, RoutingPolicy policy) => configuration switch
    {
        "colocated" => $"one colocated engine on {devices[0]}",
        "replicas" => $"two colocated engines ({devices[0]}, {devices[1]}) behind WorkerRouter ({policy})",
        _ => $"prefill on {devices[0]}, decode on {devices[1]}, KV through InProcessKvTransport (DisaggregatedEngine, {policy})",
    };

    private static async Task<ServingSummary> RunOne(string configuration, TorchModelExecutor first, TorchModelExecutor? second,
        IReadOnlyList<WorkloadRequest> requests, double rate, int warmUpTokens, ServingSlo slo, RunSettings settings)
    {
        LlmEngine New(TorchModelExecutor executor, string name) => new(new SharedExecutor(executor),
            new LlmEngineOptions { Name = name, Scheduler = new() { MaxBatchedTokens = settings.MaxBatchedTokens } });
        var engines = new List<LlmEngine>();
        try
        {
            IInferenceEngine engine;
            DisaggregatedEngine? disaggregated = null;
            var transfers = new ConcurrentQueue<KvTransferResult>();
            switch (configuration)
            {
                case "colocated":
                    engines.Add(New(first, "colocated"));
                    engine = engines[0];
                    break;
                case "replicas":
                    engines.Add(New(first, "replica0"));
                    engines.Add(New(second!, "replica1"));
                    engine = new RoutedEngine(new WorkerRouter<LlmEngine>(engines, settings.Policy));
                    break;
                default:
                    engines.Add(New(first, "prefill"));
                    engines.Add(New(second!, "decode"));
                    var transport = new InProcessKvTransport(engines[0].BlockStore!, engines[1].BlockStore!);
                    engine = disaggregated = new DisaggregatedEngine([engines[0]], [engines[1]], (_, _) => transport, new DisaggregationOptions
                    {
                        Policy = settings.Policy, LocalPrefillMaxUncachedTokens = settings.LocalPrefillMax, TransferCompleted = transfers.Enqueue,
                    });
                    break;
            }

            // Warm-up: one request alone, then a concurrent burst (batched shapes), on every engine that serves requests.
            var rng = new Random(4242);
            int promptTokens = Math.Max(1, Math.Min(warmUpTokens, engine.MaxContextLength - 17));
            int vocabulary = first.VocabularySize;
            IEnumerable<int[]> Prompts(int n) => Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, promptTokens).Select(_ => rng.Next(vocabulary)).ToArray());
            IInferenceEngine[] targets = configuration == "replicas" ? [.. engines] : [engine];
            foreach (var target in targets)
            {
                await ServingRunner.WarmUpAsync(target, Prompts(1), 16);
                await ServingRunner.WarmUpAsync(target, Prompts(settings.WarmUp), 16);
            }
            transfers.Clear();
            var cacheBefore = engines.Select(e => e.PrefixCacheStatistics).ToArray();
            long remoteBefore = disaggregated?.DisaggregatedCount ?? 0, localBefore = disaggregated?.LocalPrefillCount ?? 0;
            long MixedSteps() => first.MixedSteps + (second?.MixedSteps ?? 0);
            long SplitSteps() => first.SplitSteps + (second?.SplitSteps ?? 0);
            long mixedBefore = MixedSteps(), splitBefore = SplitSteps();

            var run = await ServingRunner.RunAsync(engine, requests, settings.Timeout);

            var stats = new Dictionary<string, double>();
            long queried = 0, hit = 0;
            for (int i = 0; i < engines.Count; i++)
            {
                queried += engines[i].PrefixCacheStatistics.QueriedTokens - cacheBefore[i].QueriedTokens;
                hit += engines[i].PrefixCacheStatistics.HitTokens - cacheBefore[i].HitTokens;
            }
            stats["prefix_cache_queried_tokens"] = queried;
            stats["prefix_cache_hit_tokens"] = hit;
            stats["mixed_steps"] = MixedSteps() - mixedBefore;       // decode rows beside prompt chunks
            stats["mixed_steps_split"] = SplitSteps() - splitBefore; // of those, decode rows on the native path
            if (disaggregated is not null)
            {
                stats["disaggregated_requests"] = disaggregated.DisaggregatedCount - remoteBefore;
                stats["local_prefill_requests"] = disaggregated.LocalPrefillCount - localBefore;
                var done = transfers.ToArray();
                stats["kv_transfers"] = done.Length;
                if (done.Length > 0)
                {
                    stats["kv_transfer_ms_median"] = Median.Of(done.Select(t => t.Elapsed.TotalMilliseconds));
                    stats["kv_transfer_GBps_median"] = Median.Of(done.Select(t => t.BytesPerSecond / 1e9));
                    stats["kv_transfer_MB_mean"] = done.Average(t => t.Bytes / 1e6);
                }
            }
            return ServingSummary.Of(s_names[configuration], rate, run.Outcomes, run.DurationSeconds, slo) with { Engine = stats };
        }
        finally
        {
            foreach (var e in engines) await e.DisposeAsync();
        }
    }

    /// <summary>
    /// The issue's row: on the long-prompt workload, disaggregated goodput at least 1.3x that of two colocated replicas behind
    /// the router, at the same objective. Read at each offered rate, and over the sweep (the best goodput each reached at any
    /// rate, which does not cap both at a rate that neither saturates).
    /// </summary>
    private static List<TargetResult> DisaggregationTargets(List<ServingSummary> runs, double[] rates)
    {
        const string Source = "measured in this run: same workload, rates and SLO";
        var targets = new List<TargetResult>();
        var disaggregated = runs.Where(r => r.Configuration == s_names["disaggregated"]).ToList();
        var replicas = runs.Where(r => r.Configuration == s_names["replicas"]).ToList();
        if (disaggregated.Count == 0 || replicas.Count == 0) return targets;
        foreach (double rate in rates)
        {
            var d = disaggregated.First(r => r.OfferedRate == rate);
            var c = replicas.First(r => r.OfferedRate == rate);
            targets.Add(TargetResult.AtLeast($"long-prompt workload at {rate} req/s: disaggregated goodput >= 1.3x colocated (2 replicas behind the router), same SLO",
                d.Goodput, "req/s", 1.3 * c.Goodput, new TargetBaseline($"colocated, 2 replicas behind the router: goodput at {rate} req/s", c.Goodput, "req/s", Source)));
        }
        if (rates.Length > 1)
        {
            double best = replicas.Max(r => r.Goodput);
            targets.Add(TargetResult.AtLeast($"long-prompt workload, best over the rate sweep ({string.Join(", ", rates)} req/s): disaggregated goodput >= 1.3x colocated (2 replicas behind the router), same SLO",
                disaggregated.Max(r => r.Goodput), "req/s", 1.3 * best, new TargetBaseline("colocated, 2 replicas behind the router: best goodput over the sweep", best, "req/s", Source)));
        }
        return targets;
    }
}
