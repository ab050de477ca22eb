// GPU measurements, run on the GPU machine (publish self-contained; see README "Running on CUDA").
//   Disagg.GpuBench transfer [--src cuda:0] [--dst cuda:1] [--out report.json]
//       raw device-to-device copy rate vs the in-process KV transport, Llama-3-8B KV layout (32 layers, 8 KV heads, 128, bf16)
//   Disagg.GpuBench ttft --model DIR [--prefill cuda:0] [--decode cuda:1] [--prompt-tokens 2048] [--tokens 64] [--native-prefill 0]
//                        [--max-batched-tokens N] [--dtype bfloat16|float16|float32] [--out report.json]
//       time to first token, time to the second token (which waits for the KV transfer) and inter-token latency,
//       colocated on the prefill device vs disaggregated across the two devices (and again with the native block copy
//       when libdisagg_cuda is loaded), each with its greedy tokens compared to colocated
//   Disagg.GpuBench perf --model DIR [--device cuda:0] [--baselines baselines.json] [--chart perf.png] [--out report.json]
//       (decode is the same mode) the issue's single-GPU rows: batch-1 decode tokens/s, 64 concurrent streams' output
//       tokens/s, time to first token of a 2,048-token prompt, with targets read against baselines.py's numbers (PerfMode.cs)
//   Disagg.GpuBench serve --model DIR [--workload long|chat] [--rates 1,2,4] [--requests N] [--configs colocated,replicas,disaggregated]
//                         [--slo-ttft-ms T] [--slo-itl-ms I] [--slo-itl-stat p90|max] [--chart serve.png] [--out report.json]
//       replays a Poisson workload against colocated (1 GPU), 2 colocated replicas behind the router, and prefill cuda:0 /
//       decode cuda:1; TTFT / ITL / end-to-end percentiles, throughput, goodput and the disaggregation target (ServeMode.cs)
//   Disagg.GpuBench chart --cpu --perf perf.json --out perf.png
//       draws a perf file's chart again, without a GPU
//   Every mode: [--commit SHA] (else $DISAGG_COMMIT) for the result file; --cpu runs on this machine's CPU (smoke runs);
//   [--native-linear-rows N]: decode steps of at most N rows use the native thin linear kernel (default 4; 0: cuBLAS only).
//   benchmarks/results/README.md describes the result files; benchmarks/gpu/run_issue5.sh runs the issue-5 set.
//   Disagg.GpuBench two-process --model DIR [--prefill cuda:0] [--decode cuda:1] [--prompt-tokens 2048] [--tokens 64]
//       (direct mode needs DISAGG_NATIVE_DIR) prefill here on cuda:0, decode in a child process on cuda:1 over a Unix socket: KV through the socket (host-staged)
//       and GPU-direct (CUDA IPC, only "done" on the socket), against colocated on cuda:0; TTFT, second token, ITL, transfer
//   Disagg.GpuBench ipc [--prefill cuda:0] [--decode cuda:1] [--out report.json]   (needs libdisagg_cuda.so: DISAGG_NATIVE_DIR)
//       GPU-direct across processes: this process (decode) exports its KV cache through CUDA IPC, a child process (prefill)
//       opens it and writes 8,192 tokens of Llama-3-8B KV into it; both checksum the blocks, the child reports bandwidth
using System.Diagnostics;
using System.Text.Json;
using Disagg;
using Disagg.Benchmarks.Serving.Results;
using Disagg.Coordination;
using Disagg.Cuda;
using Disagg.Cuda.Model;
using Disagg.Cuda.Runtime;
using Disagg.GpuBench;
using Disagg.Kv;
using Disagg.Cuda.Native;
using Disagg.Transport.InProcess;
using Disagg.Transport.Sockets;
using TorchSharp;
using static TorchSharp.torch;

if (args.Length == 0) { Console.Error.WriteLine("usage: Disagg.GpuBench transfer|ttft|perf|serve|two-process|ipc [options] (see Program.cs)"); return 2; }
var cli = new BenchArguments(args);
var runtime = TorchRuntime.Initialize(cli.Has("--cpu") ? TorchBackend.Cpu : TorchBackend.Cuda); // --cpu: smoke runs on this machine
Console.WriteLine($"runtime: {runtime}");
var report = ReportHeader.Create(cli, runtime, $"disagg.gpubench.{args[0]}/1");
LlamaModel.NativeLinearRows = cli.Int("--native-linear-rows", NativeCuda.MaxLinearRows);
report["native_linear_rows"] = LlamaModel.NativeLinearRows;
if (cli.Has("--programmatic-launch")) NativeCuda.ProgrammaticLaunch = cli.Int("--programmatic-launch", 1) != 0; // 0: each kernel waits for the last to drain
report["programmatic_launch"] = NativeCuda.ProgrammaticLaunch;
try
{
    switch (args[0])
    {
        case "transfer": Transfer(report); break;
        case "ttft": await Ttft(report); break;
        case "ipc": Ipc(report); break;
        case "perf" or "decode": await PerfMode.RunAsync(cli, report); break;
        case "chart": await PerfMode.RenderAsync(cli); return 0;
        case "serve": await ServeMode.RunAsync(cli, report); break;
        case "two-process": await TwoProcess(report); break;
        case "decode-worker": await DecodeWorker(); return 0;
        case "ipc-child": IpcChild(); return 0;
        default: Console.Error.WriteLine($"unknown mode {args[0]}"); return 2;
    }
}
catch (Exception e) when (e is ArgumentException or DisaggException) // bad flags, unusable model directory: a clear line, no stack
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
string json = ResultJson.Serialize(report);
Console.WriteLine(json);
if (Arg("--out") is { } outPath) File.WriteAllText(outPath, json);
return 0;

void Transfer(Dictionary<string, object?> r)
{
    var src = torch.device(Arg("--src") ?? "cuda:0");
    var dst = torch.device(Arg("--dst") ?? "cuda:1");
    r["src"] = src.ToString();
    r["dst"] = dst.ToString();
    bool sameDevice = src.ToString() == dst.ToString();

    // Raw: one 1 GiB contiguous tensor copied across. With --dst equal to --src (a one-GPU machine) it is a copy within the
    // device: a proxy that shows how close the scattered block copies come to a plain copy, not the issue's GPU-to-GPU row.
    const long RawBytes = 1L << 30;
    using (var a = torch.ones(RawBytes / 2, ScalarType.BFloat16, src))
    {
        Tensor CopyAcross() => sameDevice ? a.clone() : a.to(dst);
        using (CopyAcross()) Sync(src, dst);
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 10; i++) using (CopyAcross()) Sync(src, dst);
        r["raw_copy_GBps"] = 10 * RawBytes / sw.Elapsed.TotalSeconds / 1e9;
    }

    var layout = new KvCacheLayout(32, 8, 128, 16, KvDataType.BFloat16);
    const int PoolBlocks = 4096;
    using var from = new PagedKvCache(layout, PoolBlocks, src);
    using var to = new PagedKvCache(layout, PoolBlocks, dst);
    for (int l = 0; l < layout.NumLayers; l++) // distinct values, so that a misplaced block shows in the equality check below
    {
        from.Keys(l).normal_();
        from.Values(l).normal_();
    }
    var direct = new InProcessKvTransport(from, to);
    var staged = new InProcessKvTransport(new HostOnly(from), new HostOnly(to));
    var rows = new List<Dictionary<string, object>>();
    var rng = new Random(1);
    foreach (int tokens in new[] { 512, 2048, 8192, 32768 })
    {
        int blocks = tokens / layout.BlockSize;
        int[] srcIds = [.. Enumerable.Range(0, PoolBlocks).OrderBy(_ => rng.Next()).Take(blocks)]; // scattered, as in a busy pool
        int[] dstIds = [.. Enumerable.Range(0, PoolBlocks).OrderBy(_ => rng.Next()).Take(blocks)];
        var request = new InferenceRequest(new int[tokens], SamplingParameters.Greedy);
        var source = new KvHandle(request.Id, layout, srcIds, tokens);
        using var reservation = new KvReservation(request, new KvHandle(request.Id, layout, dstIds, tokens), 0, () => { });
        double Measure(InProcessKvTransport t, int runs)
        {
            t.TransferAsync(source, reservation).AsTask().GetAwaiter().GetResult();
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < runs; i++) t.TransferAsync(source, reservation).AsTask().GetAwaiter().GetResult();
            return sw.Elapsed.TotalSeconds / runs;
        }
        double seconds = Measure(direct, 5);
        long bytes = (long)blocks * layout.BytesPerBlock;
        var row = new Dictionary<string, object>
        {
            ["prompt_tokens"] = tokens, ["kv_bytes"] = bytes, ["inproc_ms"] = seconds * 1e3, ["inproc_GBps"] = bytes / seconds / 1e9,
        };
        if (NativeCuda.IsAvailable)
        {
            // The same transfer through the single-kernel block copy (experimental; see PagedKvCache.UseNativeBlockCopies),
            // checked against the default path's result before it is timed.
            // Both paths start from zeroed destination layers, since earlier rows left their own blocks there.
            int last = layout.NumLayers - 1;
            void ZeroChecked()
            {
                to.Keys(0).zero_();
                to.Values(last).zero_();
            }
            ZeroChecked();
            direct.TransferAsync(source, reservation).AsTask().GetAwaiter().GetResult();
            using var expectedKeys = to.Keys(0).clone();
            using var expectedValues = to.Values(last).clone();
            PagedKvCache.UseNativeBlockCopies = true;
            try
            {
                ZeroChecked();
                double nativeSeconds = Measure(direct, 5);
                row["inproc_native_copy_ms"] = nativeSeconds * 1e3;
                row["inproc_native_copy_GBps"] = bytes / nativeSeconds / 1e9;
                using var keysEqual = to.Keys(0).equal(expectedKeys).all();
                using var valuesEqual = to.Values(last).equal(expectedValues).all();
                row["inproc_native_copy_equal"] = keysEqual.item<bool>() && valuesEqual.item<bool>();
            }
            finally
            {
                PagedKvCache.UseNativeBlockCopies = false;
            }
        }
        if (tokens <= 2048)
        {
            double stagedSeconds = Measure(staged, 2);
            row["host_staged_ms"] = stagedSeconds * 1e3;
            row["host_staged_GBps"] = bytes / stagedSeconds / 1e9;
        }
        rows.Add(row);
    }
    r["kv_transfer"] = rows;
    // The issue's row: in-process KV transfer at >= 80% of the GPU-to-GPU copy bandwidth measured just above.
    string across = sameDevice ? "within-device (one-GPU proxy, not the issue's row)" : "GPU-to-GPU";
    var rawBaseline = new TargetBaseline($"raw {across} copy of one 1 GiB contiguous tensor", (double)r["raw_copy_GBps"]!, "GB/s", "measured in this run, same devices");
    r["targets"] = rows.Select(row => TargetResult.AtLeast(
        $"in-process KV transfer, {row["prompt_tokens"]}-token Llama-3-8B-layout prompt (scattered blocks), >= 80% of the {across} copy bandwidth",
        (double)row["inproc_GBps"], "GB/s", 0.8 * rawBaseline.Value, rawBaseline)).ToList();
}

async Task Ttft(Dictionary<string, object?> r)
{
    string model = Arg("--model") ?? throw new ArgumentException("--model DIR is required");
    bool cpu = cli.Has("--cpu"); // a smoke run of the mode on this machine's CPU
    string prefillDevice = cpu ? "cpu" : Arg("--prefill") ?? "cuda:0", decodeDevice = cpu ? "cpu" : Arg("--decode") ?? "cuda:1";
    int promptTokens = int.Parse(Arg("--prompt-tokens") ?? "2048"), outputTokens = int.Parse(Arg("--tokens") ?? "64");
    ModelRunnerOptions On(string device) => cpu
        ? new() { Device = device, DataType = "float32", KvCacheBlocks = 1024 }
        : new() { Device = device, DataType = Arg("--dtype") ?? "bfloat16", KvCacheBytes = 8L << 30, UseNativePrefill = Arg("--native-prefill") != "0" };
    // --max-batched-tokens below the prompt splits its prefill into chunks, whose KV streams while the next chunk computes.
    int maxBatched = int.Parse(Arg("--max-batched-tokens") ?? Math.Max(2048, promptTokens).ToString(System.Globalization.CultureInfo.InvariantCulture));
    r["max_batched_tokens"] = maxBatched;
    var engineOptions = new LlmEngineOptions { Scheduler = new() { EnablePrefixCaching = false, MaxBatchedTokens = maxBatched } };

    var load = Stopwatch.StartNew();
    var colocatedExecutor = TorchModelExecutor.Load(model, On(prefillDevice));
    await using var colocated = new LlmEngine(colocatedExecutor, engineOptions);
    r["load_seconds"] = load.Elapsed.TotalSeconds;
    r["native_prefill"] = colocatedExecutor.NativePrefill; // prompt steps on libdisagg_cuda (--native-prefill 0 turns it off)
    await using var prefill = new LlmEngine(TorchModelExecutor.Load(model, On(prefillDevice)), engineOptions);
    await using var decode = new LlmEngine(TorchModelExecutor.Load(model, On(decodeDevice)), engineOptions);
    var transport = new InProcessKvTransport(prefill.BlockStore!, decode.BlockStore!);
    var transfers = new List<KvTransferResult>();
    var disaggregated = new DisaggregatedEngine([prefill], [decode], (_, _) => transport,
        new DisaggregationOptions { LocalPrefillMaxUncachedTokens = 0, TransferCompleted = transfers.Add });
    r["transport"] = transport.Name;

    var rng = new Random(7);
    int vocab = Math.Min(32000, colocatedExecutor.VocabularySize);
    int[] FreshPrompt() => [.. Enumerable.Range(0, promptTokens).Select(_ => rng.Next(vocab))];
    var fixedPrompt = Enumerable.Range(0, promptTokens).Select(_ => rng.Next(vocab)).ToArray();
    int[]? reference = null;
    // The native block copy (PagedKvCache.UseNativeBlockCopies, off by default) as a third configuration, when the library is there.
    var configurations = new List<(string Name, IInferenceEngine Engine, bool NativeCopies)> { ("colocated", colocated, false), ("disaggregated", disaggregated, false) };
    if (NativeCuda.IsAvailable) configurations.Add(("disaggregated_native_block_copies", disaggregated, true));
    foreach (var (name, engine, nativeCopies) in configurations)
    {
        PagedKvCache.UseNativeBlockCopies = nativeCopies;
        try
        {
            var (row, tokens) = await MeasureConfiguration(engine, fixedPrompt, 32, reference, FreshPrompt, outputTokens, transfers);
            reference ??= tokens;
            r.TryAdd("greedy_tokens", reference); // to compare runs with other chunk sizes
            r[name] = row;
        }
        finally
        {
            PagedKvCache.UseNativeBlockCopies = false;
        }
    }
    r["prompt_tokens"] = promptTokens;
    r["model"] = model;
}

async Task DecodeWorker()
{
    string model = Arg("--model")!, endpoint = Arg("--endpoint")!, device = Arg("--device") ?? "cuda:1";
    string? ipcOut = Arg("--ipc-out");
    var executor = TorchModelExecutor.Load(model, new ModelRunnerOptions { Device = device, DataType = "bfloat16", KvCacheBytes = 16L << 30 });
    await using var engine = new LlmEngine(executor, new LlmEngineOptions { Name = "decode", Scheduler = new() { EnablePrefixCaching = false } });
    var options = new SocketTransportOptions { SharedSecret = System.Text.Encoding.UTF8.GetBytes(Environment.GetEnvironmentVariable("DISAGG_SHARED_SECRET")!) };
    if (ipcOut is not null) options.DirectTransferDescriptor = CudaIpcKv.Export(executor); // clients get it in the handshake
    await using var server = new DecodeWorkerServer(engine, engine.BlockStore!, options);
    server.Start(new System.Net.Sockets.UnixDomainSocketEndPoint(endpoint));
    Console.WriteLine("ready");
    await Console.In.ReadToEndAsync();
    await server.StopAsync();
}

async Task TwoProcess(Dictionary<string, object?> r)
{
    string model = Arg("--model") ?? throw new ArgumentException("--model DIR is required");
    int promptTokens = int.Parse(Arg("--prompt-tokens") ?? "2048"), outputTokens = int.Parse(Arg("--tokens") ?? "64");
    // --decode equal to --prefill (a one-GPU machine) is a rehearsal of the code path, not the issue's measurement.
    string prefillDevice = Arg("--prefill") ?? "cuda:0", decodeDevice = Arg("--decode") ?? "cuda:1";
    string dir = Directory.CreateTempSubdirectory("disagg-2p").FullName;
    string endpoint = Path.Combine(dir, "decode.sock"), ipcFile = Path.Combine(dir, "kv.ipc");
    string secret = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
    bool direct = CudaIpcKv.IsAvailable;
    r["direct_available"] = direct;
    if (!direct) r["direct_unavailable_reason"] = CudaIpcKv.NativeUnavailableReason;

    var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardInput = true, RedirectStandardOutput = true };
    foreach (var a in new[] { "decode-worker", "--model", model, "--endpoint", endpoint, "--device", decodeDevice }) start.ArgumentList.Add(a);
    if (direct)
    {
        start.ArgumentList.Add("--ipc-out");
        start.ArgumentList.Add(ipcFile);
    }
    start.Environment["DISAGG_SHARED_SECRET"] = secret;
    using var child = Process.Start(start)!;
    try
    {
        string? line;
        while ((line = await child.StandardOutput.ReadLineAsync()) is not null && line != "ready") { } // skip its banner
        if (line != "ready") throw new InvalidOperationException("the decode worker did not start");
        var engineOptions = new LlmEngineOptions { Scheduler = new() { EnablePrefixCaching = false, MaxBatchedTokens = Math.Max(2048, promptTokens) } };
        ModelRunnerOptions OnPrefillDevice() => new() { Device = prefillDevice, DataType = "bfloat16", KvCacheBytes = 16L << 30 };
        await using var colocated = new LlmEngine(TorchModelExecutor.Load(model, OnPrefillDevice()), engineOptions);
        await using var prefill = new LlmEngine(TorchModelExecutor.Load(model, OnPrefillDevice()), engineOptions);
        await using var remote = await RemoteDecodeEngine.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(endpoint),
            new SocketTransportOptions { SharedSecret = System.Text.Encoding.UTF8.GetBytes(secret) });

        var configurations = new List<(string Name, IInferenceEngine Engine, List<KvTransferResult> Transfers)>
        {
            ($"colocated {prefillDevice}", colocated, []),
        };
        var socketTransfers = new List<KvTransferResult>();
        var socket = remote.CreateTransport(prefill.BlockStore!);
        configurations.Add(($"prefill {prefillDevice} / decode {decodeDevice} in another process, KV over the Unix socket",
            new DisaggregatedEngine([prefill], [remote], (_, _) => socket, new DisaggregationOptions { LocalPrefillMaxUncachedTokens = 0, TransferCompleted = socketTransfers.Add }),
            socketTransfers));
        PagedKvCache? pool = null;
        if (direct)
        {
            pool = CudaIpcKv.Open(remote.DirectTransferDescriptor ?? throw new InvalidOperationException("the worker published no descriptor"),
                torch.device(decodeDevice).index);
            var directTransfers = new List<KvTransferResult>();
            var transport = new DirectKvTransport(remote, new InProcessKvTransport(prefill.BlockStore!, pool));
            configurations.Add(($"prefill {prefillDevice} / decode {decodeDevice} in another process, KV GPU-direct (CUDA IPC)",
                new DisaggregatedEngine([prefill], [remote], (_, _) => transport, new DisaggregationOptions { LocalPrefillMaxUncachedTokens = 0, TransferCompleted = directTransfers.Add }),
                directTransfers));
        }

        var rng = new Random(11);
        var fixedPrompt = Enumerable.Range(0, promptTokens).Select(_ => rng.Next(32000)).ToArray();
        int[]? reference = null;
        var rows = new List<object>();
        int[] FreshPrompt() => [.. Enumerable.Range(0, promptTokens).Select(_ => rng.Next(32000))];
        foreach (var (name, engine, transfers) in configurations)
        {
            var (row, tokens) = await MeasureConfiguration(engine, fixedPrompt, 16, reference, FreshPrompt, outputTokens, transfers);
            reference ??= tokens;
            row["configuration"] = name;
            rows.Add(row);
            Console.WriteLine(JsonSerializer.Serialize(row));
        }
        pool?.Dispose();
        r["results"] = rows;
        r["prompt_tokens"] = promptTokens;
        r["model"] = model;
    }
    finally
    {
        child.StandardInput.Close();
        if (!child.WaitForExit(TimeSpan.FromSeconds(30))) child.Kill(entireProcessTree: true);
        Directory.Delete(dir, recursive: true);
    }
}

void Ipc(Dictionary<string, object?> r)
{
    var decodeDevice = torch.device(Arg("--decode") ?? "cuda:1");
    string prefillDevice = Arg("--prefill") ?? "cuda:0";
    var layout = new KvCacheLayout(32, 8, 128, 16, KvDataType.BFloat16);
    using var cache = new PagedKvCache(layout, 2048, decodeDevice);
    string dir = Directory.CreateTempSubdirectory("disagg-ipc").FullName;
    File.WriteAllBytes(Path.Combine(dir, "kv.desc"), cache.ExportIpc().ToBytes());
    var rng = new Random(3);
    int[] dstIds = [.. Enumerable.Range(0, 2048).OrderBy(_ => rng.Next()).Take(512)];
    File.WriteAllText(Path.Combine(dir, "ids.txt"), string.Join(',', dstIds));

    var child = Process.Start(new ProcessStartInfo(Environment.ProcessPath!, ["ipc-child", dir, prefillDevice, decodeDevice.index.ToString()])
    {
        RedirectStandardOutput = true,
    })!;
    string output = child.StandardOutput.ReadToEnd();
    child.WaitForExit();
    if (child.ExitCode != 0) throw new InvalidOperationException($"child failed ({child.ExitCode}): {output}");
    var sent = JsonSerializer.Deserialize<Dictionary<string, double>>(output.Trim().Split('\n')[^1])!;
    torch.cuda.synchronize(decodeDevice);
    double received = Checksum(cache, dstIds);
    r["child"] = sent;
    r["received_checksum"] = received;
    r["checksums_equal"] = Math.Abs(received - sent["checksum"]) <= 1e-6 * Math.Max(1, Math.Abs(received));
    r["kv_bytes"] = 512L * layout.BytesPerBlock;
    Directory.Delete(dir, recursive: true);
}

void IpcChild()
{
    string dir = args[1];
    var local = torch.device(args[2]);
    int remoteIndex = int.Parse(args[3]);
    var descriptor = KvIpcDescriptor.FromBytes(File.ReadAllBytes(Path.Combine(dir, "kv.desc")));
    int[] dstIds = [.. File.ReadAllText(Path.Combine(dir, "ids.txt")).Split(',').Select(int.Parse)];
    using var remote = PagedKvCache.OpenIpc(descriptor, remoteIndex);
    using var source = new PagedKvCache(descriptor.Layout, 2048, local);
    torch.manual_seed(11);
    for (int l = 0; l < descriptor.Layout.NumLayers; l++)
    {
        source.Keys(l).copy_(torch.randn_like(source.Keys(l)));
        source.Values(l).copy_(torch.randn_like(source.Values(l)));
    }
    var rng = new Random(5);
    int[] srcIds = [.. Enumerable.Range(0, 2048).OrderBy(_ => rng.Next()).Take(dstIds.Length)];
    int tokens = dstIds.Length * descriptor.Layout.BlockSize;
    var request = new InferenceRequest(new int[tokens], SamplingParameters.Greedy);
    using var reservation = new KvReservation(request, new KvHandle(request.Id, descriptor.Layout, dstIds, tokens), 0, () => { });
    var transport = new InProcessKvTransport(source, remote);
    var kv = new KvHandle(request.Id, descriptor.Layout, srcIds, tokens);
    transport.TransferAsync(kv, reservation).AsTask().GetAwaiter().GetResult();
    var sw = Stopwatch.StartNew();
    for (int i = 0; i < 5; i++) transport.TransferAsync(kv, reservation).AsTask().GetAwaiter().GetResult();
    double seconds = sw.Elapsed.TotalSeconds / 5;
    long bytes = (long)dstIds.Length * descriptor.Layout.BytesPerBlock;
    Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, double>
    {
        ["checksum"] = Checksum(source, srcIds), ["transfer_ms"] = seconds * 1e3, ["GBps"] = bytes / seconds / 1e9,
    }));
}

static double Checksum(PagedKvCache cache, int[] ids)
{
    using var scope = torch.NewDisposeScope();
    var index = torch.tensor(ids.Select(i => (long)i).ToArray(), device: cache.Device);
    int perBlock = cache.Layout.BlockSize * cache.Layout.ElementsPerToken;
    double sum = 0;
    for (int l = 0; l < cache.Layout.NumLayers; l++)
    {
        // Weighted by position so that blocks landing in the wrong place change the sum.
        var weights = torch.arange(1, ids.Length + 1, ScalarType.Float64, cache.Device).unsqueeze(1);
        sum += (cache.Keys(l).view(cache.BlockCount, perBlock).index_select(0, index).to(ScalarType.Float64) * weights).sum().item<double>() * (l + 1);
        sum += (cache.Values(l).view(cache.BlockCount, perBlock).index_select(0, index).to(ScalarType.Float64) * weights).sum().item<double>() * (l + 2);
    }
    return sum;
}

/// <summary>
/// One configuration of the latency modes: the greedy tokens of <paramref name="fixedPrompt"/> (<paramref name="checkTokens"/>
/// of them) against <paramref name="reference"/> (the first configuration's; equal when it is null), then five timed requests
/// on fresh prompts, with the medians of their latencies and of the KV transfers they made (<paramref name="transfers"/>
/// collects them and is cleared first). Transfer times run from the transfer's start, before the prefill computes: a
/// streamed transfer overlaps it.
/// </summary>
static async Task<(Dictionary<string, object> Row, int[] Tokens)> MeasureConfiguration(IInferenceEngine engine, int[] fixedPrompt, int checkTokens,
    int[]? reference, Func<int[]> freshPrompt, int outputTokens, List<KvTransferResult> transfers)
{
    var tokens = new List<int>();
    await foreach (var t in engine.GenerateAsync(new InferenceRequest(fixedPrompt, SamplingParameters.Greedy with { MaxTokens = checkTokens, IgnoreEndOfSequence = true })))
        tokens.Add(t.TokenId);
    transfers.Clear();
    var runs = new List<Latency>();
    for (int i = 0; i < 5; i++) runs.Add(await MeasureLatency(engine, freshPrompt(), outputTokens));
    var row = new Dictionary<string, object>
    {
        ["ttft_ms"] = Median.Of(runs.Select(x => x.First)),
        ["second_token_ms"] = Median.Of(runs.Select(x => x.Second)),
        ["itl_ms"] = Median.Of(runs.Select(x => x.Itl)),
        ["greedy_tokens_equal_colocated"] = tokens.SequenceEqual(reference ?? [.. tokens]),
    };
    if (transfers.Count > 0)
    {
        row["transfer_ms"] = Median.Of(transfers.Select(t => t.Elapsed.TotalMilliseconds));
        row["transfer_GBps"] = Median.Of(transfers.Select(t => t.BytesPerSecond / 1e9));
        row["transfer_bytes"] = transfers[0].Bytes;
    }
    return (row, [.. tokens]);
}

/// <summary>Runs one greedy request and times its first token, its second token (after any KV transfer) and the mean gap after that.</summary>
static async Task<Latency> MeasureLatency(IInferenceEngine engine, int[] prompt, int outputTokens)
{
    var request = new InferenceRequest(prompt, SamplingParameters.Greedy with { MaxTokens = outputTokens, IgnoreEndOfSequence = true });
    var stamps = new List<long>();
    long start = Stopwatch.GetTimestamp();
    await foreach (var _ in engine.GenerateAsync(request)) stamps.Add(Stopwatch.GetTimestamp());
    double Ms(long a, long b) => Stopwatch.GetElapsedTime(a, b).TotalMilliseconds;
    return new Latency(Ms(start, stamps[0]), Ms(start, stamps[1]), Ms(stamps[1], stamps[^1]) / (stamps.Count - 2));
}

static void Sync(Device a, Device b)
{
    torch.cuda.synchronize(a);
    torch.cuda.synchronize(b);
}

string? Arg(string flag) => cli.Get(flag);

/// <summary>First token, second token (ms from the request) and mean inter-token latency after the second (ms).</summary>
readonly record struct Latency(double First, double Second, double Itl);

/// <summary>Hides a store's device copy, so the transport stages through host memory (what a socket transport pays).</summary>
sealed class HostOnly(IKvBlockStore inner) : IKvBlockStore
{
    public KvCacheLayout Layout => inner.Layout;
    public int BlockCount => inner.BlockCount;
    public void ReadLayer(int layer, ReadOnlySpan<int> blockIds, Span<byte> destination) => inner.ReadLayer(layer, blockIds, destination);
    public void WriteLayer(int layer, ReadOnlySpan<int> blockIds, ReadOnlySpan<byte> source) => inner.WriteLayer(layer, blockIds, source);
}
