using System.Runtime.InteropServices;
using Disagg.Kv;
using Disagg.Sampling;
using Disagg.Scheduling;

namespace Disagg.Tests.TestModel;

/// <summary>
/// A deterministic stand-in for a transformer, small enough to reason about, that really depends on its KV cache:
/// each position writes K/V values derived from (token, position, layer) into its block, and the next token's logits are
/// computed from the K values of every earlier position, read back through the block table. Wrong blocks, a missed copy
/// or a stale cache entry therefore change the output. <see cref="ReferenceLogits"/> computes the same logits straight from
/// the tokens, with no cache at all: the naive reference the engine is checked against.
/// </summary>
internal static class ToyModel
{
    public const int VocabularySize = 48;

    public static float KValue(int token, int position, int layer) => Mix((uint)token, (uint)position, (uint)layer, 1) % 997;

    public static float VValue(int token, int position, int layer) => Mix((uint)token, (uint)position, (uint)layer, 2) % 991;

    /// <summary>What one position contributes to the next token: a K of the last layer and a V of the first (exact in float32).</summary>
    public static float Key(float lastLayerK, float firstLayerV) => lastLayerK * 1000 + firstLayerV;

    /// <summary>Logits for the position after <paramref name="keys"/>' last, from one K value per position of the last layer.</summary>
    public static void Logits(ReadOnlySpan<float> keys, Span<float> logits)
    {
        ulong state = 1469598103934665603UL;
        foreach (float k in keys) state = (state ^ (ulong)k) * 1099511628211UL;
        for (int v = 0; v < logits.Length; v++)
            logits[v] = Mix((uint)state, (uint)(state >> 32), (uint)v, 3) % 4096 / 256f;
    }

    public static void ReferenceLogits(ReadOnlySpan<int> tokens, Span<float> logits, int layers)
    {
        var keys = new float[tokens.Length];
        for (int p = 0; p < tokens.Length; p++) keys[p] = Key(KValue(tokens[p], p, layers - 1), VValue(tokens[p], p, 0));
        Logits(keys, logits);
    }

    /// <summary>The tokens a request must produce, computed without any cache.</summary>
    public static List<int> ReferenceGenerate(InferenceRequest request, int layers, IReadOnlyCollection<int> endOfSequence, int maxContext)
    {
        var sampler = new TokenSampler();
        var tokens = request.PromptTokens.ToArray().ToList();
        var output = new List<int>();
        var logits = new float[VocabularySize];
        var stops = new HashSet<int>(request.Sampling.StopTokenIds.Concat(endOfSequence));
        while (true)
        {
            ReferenceLogits(CollectionsMarshal.AsSpan(tokens), logits, layers);
            int next = sampler.Sample(logits, request.Sampling, request.Seed, CollectionsMarshal.AsSpan(tokens), request.PromptTokens.Length);
            tokens.Add(next);
            output.Add(next);
            if (!request.Sampling.IgnoreEndOfSequence && stops.Contains(next)) break;
            if (output.Count >= request.Sampling.MaxTokens || tokens.Count >= maxContext) break;
        }
        return output;
    }

    private static uint Mix(uint a, uint b, uint c, uint salt)
    {
        uint h = 2166136261u ^ salt;
        h = (h ^ a) * 16777619u; h ^= h >> 13;
        h = (h ^ b) * 16777619u; h ^= h >> 15;
        h = (h ^ c) * 16777619u; h ^= h >> 16;
        return h * 2246822519u >> 8;
    }
}

/// <summary>KV memory for the toy model: one float array per layer, in the canonical block byte order.</summary>
internal sealed class ToyKvStore : IKvBlockStore
{
    private readonly float[][] _layers;

    public ToyKvStore(KvCacheLayout layout, int blocks)
    {
        Layout = layout;
        BlockCount = blocks;
        _layers = Enumerable.Range(0, layout.NumLayers).Select(_ => new float[blocks * FloatsPerBlock]).ToArray();
        foreach (var layer in _layers) layer.AsSpan().Fill(float.NaN); // unwritten KV poisons whatever reads it
    }

    public KvCacheLayout Layout { get; }

    public int BlockCount { get; }

    private int FloatsPerBlock => 2 * Layout.BlockSize * Layout.ElementsPerToken;

    public ref float K(int layer, int block, int slot) => ref _layers[layer][block * FloatsPerBlock + slot * Layout.ElementsPerToken];

    public ref float V(int layer, int block, int slot) =>
        ref _layers[layer][block * FloatsPerBlock + (Layout.BlockSize + slot) * Layout.ElementsPerToken];

    public void ReadLayer(int layer, ReadOnlySpan<int> blockIds, Span<byte> destination)
    {
        int bytes = FloatsPerBlock * sizeof(float);
        if (destination.Length != blockIds.Length * bytes) throw new ArgumentException("Wrong destination size.", nameof(destination));
        for (int i = 0; i < blockIds.Length; i++)
            MemoryMarshal.AsBytes(_layers[layer].AsSpan(blockIds[i] * FloatsPerBlock, FloatsPerBlock)).CopyTo(destination[(i * bytes)..]);
    }

    public void WriteLayer(int layer, ReadOnlySpan<int> blockIds, ReadOnlySpan<byte> source)
    {
        int bytes = FloatsPerBlock * sizeof(float);
        if (source.Length != blockIds.Length * bytes) throw new ArgumentException("Wrong source size.", nameof(source));
        for (int i = 0; i < blockIds.Length; i++)
            source.Slice(i * bytes, bytes).CopyTo(MemoryMarshal.AsBytes(_layers[layer].AsSpan(blockIds[i] * FloatsPerBlock, FloatsPerBlock)));
    }
}

/// <summary>The toy model as an <see cref="IModelExecutor"/>, computing through the paged KV cache.</summary>
internal sealed class ToyExecutor : IModelExecutor
{
    private readonly ToyKvStore _store;
    private readonly TokenSampler _sampler = new();
    private readonly float[] _logits = new float[ToyModel.VocabularySize];

    public ToyExecutor(int blocks, int blockSize = 4, int layers = 2, int maxContext = 4096, params int[] endOfSequence)
    {
        KvLayout = new KvCacheLayout(layers, 1, 1, blockSize, KvDataType.Float32);
        _store = new ToyKvStore(KvLayout, blocks);
        MaxContextLength = maxContext;
        EndOfSequenceTokenIds = endOfSequence;
    }

    public KvCacheLayout KvLayout { get; }
    public int KvBlockCount => _store.BlockCount;
    public int VocabularySize => ToyModel.VocabularySize;
    public int MaxContextLength { get; }
    public IReadOnlyList<int> EndOfSequenceTokenIds { get; }
    public IKvBlockStore BlockStore => _store;
    public int Steps { get; private set; }
    public long ComputedPositions { get; private set; }
    public Action<ScheduledBatch>? BeforeStep { get; set; }
    public bool Disposed { get; private set; }

    /// <summary>When set, the executor reports each layer as it writes it (<see cref="IModelExecutor.ReportsLayers"/>).</summary>
    public bool ReportsLayers { get; init; }

    /// <summary>True while a step runs.</summary>
    public bool InStep { get; private set; }

    public ToyKvStore Store => _store;

    public void Execute(ScheduledBatch batch, Span<int> sampledTokens) => Execute(batch, sampledTokens, null);

    public void Execute(ScheduledBatch batch, Span<int> sampledTokens, Action<int>? layerIssued)
    {
        BeforeStep?.Invoke(batch);
        Steps++;
        InStep = true;
        var chunks = batch.Chunks;
        int b = KvLayout.BlockSize, layers = KvLayout.NumLayers;
        for (int l = 0; l < layers; l++) // layer by layer, as a real model computes
        {
            foreach (var c in chunks)
            {
                var table = c.Sequence.BlockTable;
                var tokens = c.Sequence.Tokens;
                for (int p = c.Start; p < c.End; p++)
                {
                    _store.K(l, table[p / b], p % b) = ToyModel.KValue(tokens[p], p, l);
                    _store.V(l, table[p / b], p % b) = ToyModel.VValue(tokens[p], p, l);
                }
            }
            if (ReportsLayers) layerIssued?.Invoke(l);
        }
        InStep = false;
        for (int i = 0; i < chunks.Length; i++)
        {
            var c = chunks[i];
            var seq = c.Sequence;
            var table = seq.BlockTable;
            ComputedPositions += c.Count;
            if (!c.SamplesToken) continue;
            var keys = new float[c.End];
            for (int p = 0; p < c.End; p++)
            {
                keys[p] = ToyModel.Key(_store.K(layers - 1, table[p / b], p % b), _store.V(0, table[p / b], p % b));
                if (float.IsNaN(keys[p])) throw new InvalidOperationException($"Position {p} of {seq.Id} has no KV.");
            }
            ToyModel.Logits(keys, _logits);
            sampledTokens[i] = _sampler.Sample(_logits, seq.Sampling, seq.Request.Seed, seq.Tokens, seq.PromptLength);
        }
    }

    public void Dispose() => Disposed = true;
}
