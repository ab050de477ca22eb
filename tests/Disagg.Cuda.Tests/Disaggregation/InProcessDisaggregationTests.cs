using Disagg.Coordination;
using Disagg.Cuda.Model;
using Disagg.Transport.InProcess;

namespace Disagg.Cuda.Tests.Disaggregation;

/// <summary>
/// A real model (the HF fixtures, CPU float32) with prefill and decode on two engines, the KV moved by the in-process
/// transport (device-to-device path, streaming each prefill chunk as it is written): token for token what one engine alone produces.
/// </summary>
public class InProcessDisaggregationTests
{
    public static TheoryData<string> Models() => new(Fixtures.ModelNames);

    [Fact]
    public async Task The_model_reports_each_layer_of_each_prefill_chunk_in_order()
    {
        var executor = Load("llama3");
        Assert.True(executor.ReportsLayers);
        await using var engine = new LlmEngine(executor, Options(maxBatchedTokens: 7));
        var listener = new LayerLog();
        int[] prompt = Fixtures.LoadGolden("llama3").Prompts[0].Ids;
        using (await engine.PrefillAsync(new InferenceRequest(prompt, SamplingParameters.Greedy with { MaxTokens = 2 }), listener)) { }

        var expected = Enumerable.Range(0, (prompt.Length + 6) / 7)
            .SelectMany(c => Enumerable.Range(0, executor.KvLayout.NumLayers).Select(l => (l, c * 7, Math.Min(prompt.Length, c * 7 + 7))));
        Assert.Equal(expected, listener.Calls);
    }

    private sealed class LayerLog : IKvLayerListener
    {
        public List<(int Layer, int Start, int End)> Calls { get; } = [];

        public void OnLayerWritten(Kv.KvHandle kv, int layer, int startPosition, int endPosition) => Calls.Add((layer, startPosition, endPosition));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task Disaggregated_tokens_equal_colocated_tokens(string name)
    {
        var golden = Fixtures.LoadGolden(name);
        await using var colocated = new LlmEngine(Load(name));
        await using var prefill = new LlmEngine(Load(name), Options(maxBatchedTokens: 7)); // small chunks: the stream copies as it goes
        var decodeExecutor = Load(name);
        await using var decode = new LlmEngine(decodeExecutor);
        var prefillStore = (Kv.IKvBlockStore)prefill.BlockStore!;
        var transport = new InProcessKvTransport(prefillStore, decode.BlockStore!);
        Assert.True(transport.IsDeviceToDevice);
        var transfers = new List<KvTransferResult>();
        var coordinator = new DisaggregatedEngine([prefill], [decode], (_, _) => transport,
            new DisaggregationOptions { LocalPrefillMaxUncachedTokens = 0, TransferCompleted = transfers.Add });

        foreach (var sampling in new[]
        {
            SamplingParameters.Greedy with { MaxTokens = 16, IgnoreEndOfSequence = true },
            new SamplingParameters { Temperature = 0.9f, TopK = 50, TopP = 0.95f, Seed = 1234, MaxTokens = 16, IgnoreEndOfSequence = true },
        })
        {
            foreach (var prompt in golden.Prompts)
            {
                var request = new InferenceRequest(prompt.Ids, sampling);
                var expected = await Generate(colocated, request);
                Assert.Equal(expected, await Generate(coordinator, request));
            }
        }
        Assert.True(coordinator.DisaggregatedCount >= golden.Prompts.Length); // local only when a prompt was cached whole

        // The second round found the prompts in the decode worker's prefix cache: only the rest crossed.
        Assert.Contains(transfers, t => t.Blocks < golden.Prompts.Max(p => p.Ids.Length) / 4);
        await WaitForAllBlocks(prefill);
        await WaitForAllBlocks(decode);
    }

    /// <summary>Cancelled right after the first token (before the KV moves) and in the middle of decoding: every block comes back on both engines.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    public async Task Cancellation_returns_every_block_on_both_engines(int cancelAfterTokens)
    {
        await using var prefill = new LlmEngine(Load("qwen3"), Options(maxBatchedTokens: 16));
        await using var decode = new LlmEngine(Load("qwen3"));
        var transport = new InProcessKvTransport(prefill.BlockStore!, decode.BlockStore!);
        var coordinator = new DisaggregatedEngine([prefill], [decode], (_, _) => transport, new DisaggregationOptions { LocalPrefillMaxUncachedTokens = 0 });
        var prompt = Fixtures.LoadGolden("qwen3").Prompts.MaxBy(p => p.Ids.Length)!.Ids;
        using var cts = new CancellationTokenSource();
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            var request = new InferenceRequest(prompt, SamplingParameters.Greedy with { MaxTokens = 200, IgnoreEndOfSequence = true });
            await foreach (var _ in coordinator.GenerateAsync(request, cts.Token))
                if (++seen == cancelAfterTokens) cts.Cancel();
        });
        Assert.Equal(cancelAfterTokens, seen);
        await WaitForAllBlocks(prefill);
        await WaitForAllBlocks(decode);
    }

    private static ModelRunnerOptions RunnerOptions => new() { Device = "cpu", DataType = "float32", BlockSize = 4, KvCacheBlocks = 256 };

    private static TorchModelExecutor Load(string name) => TorchModelExecutor.Load(Fixtures.ModelDirectory(name), RunnerOptions);

    private static LlmEngineOptions Options(int maxBatchedTokens) => new() { Scheduler = new() { MaxBatchedTokens = maxBatchedTokens } };

    private static async Task<int[]> Generate(IInferenceEngine engine, InferenceRequest request)
    {
        var tokens = new List<int>();
        await foreach (var t in engine.GenerateAsync(request)) tokens.Add(t.TokenId);
        return [.. tokens];
    }

    private static async Task WaitForAllBlocks(LlmEngine engine)
    {
        for (int i = 0; i < 10_000; i++)
        {
            var load = engine.GetLoad();
            if (load.RunningSequences == 0 && load.WaitingRequests == 0 && engine.Allocator.FreeCount + engine.PrefixCachedBlockCount == engine.Allocator.Capacity)
                return;
            await Task.Delay(1);
        }
        Assert.Fail($"{engine.Name}: blocks leaked ({engine.Allocator.FreeCount} free, {engine.PrefixCachedBlockCount} cached of {engine.Allocator.Capacity}).");
    }
}
