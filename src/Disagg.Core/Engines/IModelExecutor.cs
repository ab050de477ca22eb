using Disagg.Kv;
using Disagg.Scheduling;

namespace Disagg;

/// <summary>
/// Runs a model over one scheduled step. The only piece of an engine that knows about tensors and devices:
/// <see cref="LlmEngine"/> drives it, and Disagg.Cuda implements it on TorchSharp.
/// </summary>
/// <remarks>Called from the engine's loop thread only, one step at a time.</remarks>
public interface IModelExecutor : IDisposable
{
    /// <summary>Layout of the executor's KV memory.</summary>
    KvCacheLayout KvLayout { get; }

    /// <summary>Blocks of KV memory the executor allocated (the engine's allocator manages exactly these ids).</summary>
    int KvBlockCount { get; }

    /// <summary>Vocabulary size of the model.</summary>
    int VocabularySize { get; }

    /// <summary>Longest sequence the model supports.</summary>
    int MaxContextLength { get; }

    /// <summary>Tokens that end a sequence unless the request ignores end-of-sequence (from the model's generation config).</summary>
    IReadOnlyList<int> EndOfSequenceTokenIds { get; }

    /// <summary>Byte access to the KV memory for host-staged transports, or null when the executor offers none.</summary>
    IKvBlockStore? BlockStore { get; }

    /// <summary>
    /// Runs one step: for every chunk, computes positions [Start, End) of its sequence, writing their KV into the sequence's
    /// blocks (reading earlier positions' KV from them), and for each chunk that <see cref="ScheduledChunk.SamplesToken"/>
    /// samples the next token into <paramref name="sampledTokens"/>[i] (others get -1). Sampling must follow
    /// <see cref="Sampling.TokenSampler"/> with the request's <see cref="InferenceRequest.Seed"/> and the index of the token
    /// being generated (<see cref="Sequence.GeneratedCount"/>), so that engines agree.
    /// </summary>
    void Execute(ScheduledBatch batch, Span<int> sampledTokens);

    /// <summary>True when the executor reports each layer as it goes (<see cref="Execute(ScheduledBatch, Span{int}, Action{int})"/>).</summary>
    bool ReportsLayers => false;

    /// <summary>
    /// <see cref="Execute(ScheduledBatch, Span{int})"/>, calling <paramref name="layerIssued"/>(layer), in layer order, once the
    /// step's work for that layer has been issued: its KV written, or on a GPU queued on the executor's stream, so that a
    /// device transport ordering its copy after that work can move the layer while later layers compute. Executors that do
    /// not report layers (<see cref="ReportsLayers"/> false) ignore the callback.
    /// </summary>
    void Execute(ScheduledBatch batch, Span<int> sampledTokens, Action<int> layerIssued) => Execute(batch, sampledTokens);
}
