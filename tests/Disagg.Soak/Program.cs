// The reliability soak on a real model: prefill on --device, decode on --decode-device, the KV moved by the in-process transport
// (device to device), random cancellations at every point and random faults (dropped and stalled transfers, a prefill worker
// gone). Two equal rounds; prints a JSON summary per round and the process's memory after each. Exit code 0 only when no
// request was lost, none of the checked ones diverged from the reference engine, and no block leaked.
using System.Diagnostics;
using System.Text.Json;
using Disagg;
using Disagg.Cuda;
using Disagg.Cuda.Model;
using Disagg.Soak;
using Disagg.Tests.Reliability;
using Disagg.Transport.InProcess;

SoakArguments arguments;
try
{
    arguments = SoakArguments.Parse(args);
}
catch (Exception ex) when (ex is ArgumentException or FormatException or OverflowException)
{
    Console.Error.WriteLine(ex.Message);
    Console.Error.WriteLine(SoakArguments.Usage);
    return 2;
}

TorchModelExecutor Load(string device) => TorchModelExecutor.Load(arguments.Model, new ModelRunnerOptions
{
    Device = device, DataType = arguments.DataType, BlockSize = arguments.BlockSize, KvCacheBlocks = arguments.KvBlocks,
});

string decodeDevice = arguments.DecodeDevice ?? arguments.Device;
var prefillExecutor = Load(arguments.Device);
var decodeExecutor = Load(decodeDevice);
int vocabulary = prefillExecutor.VocabularySize;
int maxPrompt = Math.Min(arguments.MaxPromptTokens, prefillExecutor.MaxContextLength - arguments.MaxNewTokens - 1);
await using var prefill = new LlmEngine(prefillExecutor, new LlmEngineOptions { Name = "prefill" });
await using var decode = new LlmEngine(decodeExecutor, new LlmEngineOptions { Name = "decode" });
await using var reference = arguments.VerifyEvery > 0 ? new LlmEngine(Load(arguments.Device), new LlmEngineOptions { Name = "reference" }) : null;

// A few long "system prompts" shared by the requests, so that both prefix caches hit and evict.
var prompts = new Random(arguments.Seed);
var systemPrompts = Enumerable.Range(0, 4)
    .Select(_ => Enumerable.Range(0, prompts.Next(maxPrompt / 8, maxPrompt / 2 + 1)).Select(_ => prompts.Next(1, vocabulary)).ToArray())
    .ToArray();
InferenceRequest NewRequest(Random random)
{
    var head = systemPrompts[random.Next(systemPrompts.Length)];
    var prompt = head.Concat(Enumerable.Range(0, random.Next(0, maxPrompt - head.Length)).Select(_ => random.Next(1, vocabulary))).ToArray();
    int maxTokens = random.Next(1, arguments.MaxNewTokens + 1);
    var sampling = random.Next(2) == 0
        ? SamplingParameters.Greedy with { MaxTokens = maxTokens }
        : new SamplingParameters { Temperature = 0.8f, TopK = 40, TopP = 0.95f, Seed = (ulong)random.Next(), MaxTokens = maxTokens };
    return new InferenceRequest(prompt, sampling);
}

long verified = 0;
async ValueTask<IReadOnlyList<int>?> Reference(InferenceRequest request)
{
    if (reference is null || Interlocked.Increment(ref verified) % arguments.VerifyEvery != 0) return null;
    var tokens = new List<int>();
    await foreach (var t in reference.GenerateAsync(request)) tokens.Add(t.TokenId);
    return tokens;
}

var runner = new SoakRunner(prefill, decode, new InProcessKvTransport(prefill.BlockStore!, decode.BlockStore!), NewRequest, Reference,
    new SoakOptions { Concurrency = arguments.Concurrency, Seed = arguments.Seed, KvLease = TimeSpan.FromSeconds(5), RequestBound = TimeSpan.FromMinutes(10) });

int half = arguments.Requests / 2;
var rounds = new List<object>();
bool clean = true;
for (int round = 0; round < 2; round++)
{
    var summary = await runner.RunAsync(half, firstIndex: round * half);
    GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
    GC.WaitForPendingFinalizers();
    using var process = Process.GetCurrentProcess();
    rounds.Add(new
    {
        round = round + 1,
        summary,
        managedMemoryBytes = GC.GetTotalMemory(forceFullCollection: true),
        workingSetBytes = process.WorkingSet64,
        tokensPerSecond = summary.TokensDelivered / summary.Seconds,
    });
    clean &= summary.Lost == 0 && summary.Diverged == 0 && summary.LeakedBlocks == 0;
    Console.Error.WriteLine(JsonSerializer.Serialize(rounds[^1])); // each round as it ends, in case a time limit cuts the next
}
Console.WriteLine(JsonSerializer.Serialize(new
{
    model = arguments.Model, prefillDevice = arguments.Device, decodeDevice, decodePath = decodeExecutor.DecodePath, dataType = prefill.KvLayout.DataType.ToString(),
    kvBlocks = arguments.KvBlocks, arguments.BlockSize, arguments.Concurrency, requests = 2 * half, rounds, ok = clean,
}, new JsonSerializerOptions { WriteIndented = true }));
return clean ? 0 : 1;
