using Disagg.Kv;
using Disagg.Scheduling;

namespace Disagg.GpuBench;

/// <summary>An executor that passes everything to another; subclasses change what they need (running a step, disposal).</summary>
internal abstract class DelegatingExecutor(IModelExecutor inner) : IModelExecutor
{
    protected IModelExecutor Inner => inner;

    public KvCacheLayout KvLayout => inner.KvLayout;
    public int KvBlockCount => inner.KvBlockCount;
    public int VocabularySize => inner.VocabularySize;
    public int MaxContextLength => inner.MaxContextLength;
    public IReadOnlyList<int> EndOfSequenceTokenIds => inner.EndOfSequenceTokenIds;
    public IKvBlockStore? BlockStore => inner.BlockStore;
    public bool ReportsLayers => inner.ReportsLayers;
    public virtual void Execute(ScheduledBatch batch, Span<int> sampledTokens) => inner.Execute(batch, sampledTokens);
    public virtual void Execute(ScheduledBatch batch, Span<int> sampledTokens, Action<int> layerIssued) => inner.Execute(batch, sampledTokens, layerIssued);
    public virtual void Dispose() => inner.Dispose();
}
