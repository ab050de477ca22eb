using Disagg.Kv;
using Disagg.Scheduling;

namespace Disagg.GpuBench;

/// <summary>
/// Lends a loaded model to one engine after another without letting the engine dispose it: every serving run gets a fresh
/// engine (empty queues, empty prefix cache) over weights loaded once per device. Runs must not overlap on one executor.
/// </summary>
internal sealed class SharedExecutor(IModelExecutor inner) : IModelExecutor
{
    public KvCacheLayout KvLayout => inner.KvLayout;
    public int KvBlockCount => inner.KvBlockCount;
    public int VocabularySize => inner.VocabularySize;
    public int MaxContextLength => inner.MaxContextLength;
    public IReadOnlyList<int> EndOfSequenceTokenIds => inner.EndOfSequenceTokenIds;
    public IKvBlockStore? BlockStore => inner.BlockStore;
    public void Execute(ScheduledBatch batch, Span<int> sampledTokens) => inner.Execute(batch, sampledTokens);
    public bool ReportsLayers => inner.ReportsLayers;
    public void Execute(ScheduledBatch batch, Span<int> sampledTokens, Action<int> layerIssued) => inner.Execute(batch, sampledTokens, layerIssued);
    public void Dispose() { } // the owner disposes the inner executor once, at the end
}
