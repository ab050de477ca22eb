using Disagg.Tests.TestModel;
using Disagg.Kv;

namespace Disagg.Tests.Engines;

/// <summary>
/// A prefill's layer listener (what a streaming transport copies from) hears of every layer of every chunk exactly once,
/// in order, and only once that layer's KV is written: as the executor issues each layer when it reports layers, after the
/// whole step when it does not.
/// </summary>
public sealed class LayerReportingTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Listener_hears_each_layer_of_each_chunk_once_after_its_kv_is_written(bool executorReportsLayers)
    {
        const int Layers = 3;
        var executor = new ToyExecutor(blocks: 64, blockSize: 4, layers: Layers) { ReportsLayers = executorReportsLayers };
        await using var engine = new LlmEngine(executor, new LlmEngineOptions { Scheduler = new() { MaxBatchedTokens = 8, EnablePrefixCaching = false } });
        var listener = new RecordingListener(executor);
        int[] prompt = [.. Enumerable.Range(1, 21)];

        using (await engine.PrefillAsync(new InferenceRequest(prompt, SamplingParameters.Greedy with { MaxTokens = 4 }), listener)) { }

        // The prompt runs in chunks of at most 8 tokens; every layer of each, in order.
        (int, int, int)[] expected = [.. new[] { (0, 8), (8, 16), (16, 21) }.SelectMany(c => Enumerable.Range(0, Layers).Select(l => (l, c.Item1, c.Item2)))];
        Assert.Equal(expected, listener.Calls.Select(c => (c.Layer, c.Start, c.End)));
        Assert.All(listener.Calls, c => Assert.True(c.LayerWritten));
        // Reported as issued: during the step, before the next layer is written. Otherwise: after the step.
        Assert.All(listener.Calls, c => Assert.Equal(executorReportsLayers, c.DuringStep));
        Assert.All(listener.Calls.Where(c => c.Layer < Layers - 1), c => Assert.Equal(executorReportsLayers, c.NextLayerUnwritten));
    }

    private sealed record Call(int Layer, int Start, int End, bool DuringStep, bool LayerWritten, bool NextLayerUnwritten);

    private sealed class RecordingListener(ToyExecutor executor) : IKvLayerListener
    {
        public List<Call> Calls { get; } = [];

        public void OnLayerWritten(KvHandle kv, int layer, int startPosition, int endPosition)
        {
            int b = kv.Layout.BlockSize;
            bool Written(int l)
            {
                for (int p = startPosition; p < endPosition; p++)
                    if (float.IsNaN(executor.Store.K(l, kv.BlockIds.Span[p / b], p % b))) return false;
                return true;
            }
            bool nextUnwritten = layer + 1 < kv.Layout.NumLayers && !Written(layer + 1);
            Calls.Add(new Call(layer, startPosition, endPosition, executor.InStep, Written(layer), nextUnwritten));
        }
    }
}
