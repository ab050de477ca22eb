using Disagg.Kv;
using Disagg.Scheduling;

namespace Disagg.Benchmarks.Transport;

/// <summary>A decode engine's executor that only holds KV (a <see cref="HostKvStore"/>): the worker needs an engine to
/// reserve blocks in, and a transfer benchmark never runs a step.</summary>
internal sealed class KvOnlyExecutor(KvCacheLayout layout, int blocks) : IModelExecutor
{
    private readonly HostKvStore _store = new(layout, blocks);

    public KvCacheLayout KvLayout => layout;

    public int KvBlockCount => blocks;

    public int VocabularySize => 256;

    public int MaxContextLength => 1 << 20;

    public IReadOnlyList<int> EndOfSequenceTokenIds => [];

    public IKvBlockStore BlockStore => _store;

    public void Execute(ScheduledBatch batch, Span<int> sampledTokens) => sampledTokens.Fill(1);

    public void Dispose() { }
}
