using Disagg.Cuda.Loading;
using Disagg.Cuda.Runtime;
using Disagg.Kv;
using Disagg.Sampling;
using Disagg.Scheduling;
using Disagg.Cuda.Native;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Cuda.Model;

/// <summary>
/// Runs a Hugging Face Llama-family checkpoint on TorchSharp as an <see cref="IModelExecutor"/>: the model runner behind
/// <see cref="LlmEngine"/>. Tokens are picked on the device (<see cref="DeviceSampler"/> follows the reference
/// <see cref="TokenSampler"/> exactly), so only token ids cross to the host.
/// </summary>
public sealed class TorchModelExecutor : IModelExecutor
{
    private readonly LlamaModel _model;
    private readonly StepPartition _partition = new();
    private readonly PenaltyTable _penalties = new(); // the loop thread's alone, as Execute is
    private readonly int _decodeRowLimit;
    private CudaGraphDecoder? _decoder;
    private long _mixedSteps, _splitSteps;

    private TorchModelExecutor(ModelConfig config, LlamaModel model, KvCacheLayout layout, int blocks, int maxContext, IReadOnlyList<int> eos, Device device,
        int decodeRowLimit)
    {
        Config = config;
        _decodeRowLimit = decodeRowLimit;
        _model = model;
        KvLayout = layout;
        KvBlockCount = blocks;
        MaxContextLength = maxContext;
        EndOfSequenceTokenIds = eos;
        Device = device;
    }

    /// <summary>The model's configuration.</summary>
    public ModelConfig Config { get; }

    /// <summary>The device the model runs on.</summary>
    public Device Device { get; }

    /// <inheritdoc />
    public KvCacheLayout KvLayout { get; }

    /// <inheritdoc />
    public int KvBlockCount { get; }

    /// <inheritdoc />
    public int VocabularySize => Config.VocabSize;

    /// <inheritdoc />
    public int MaxContextLength { get; }

    /// <inheritdoc />
    public IReadOnlyList<int> EndOfSequenceTokenIds { get; }

    /// <inheritdoc />
    public IKvBlockStore BlockStore => _model.Cache;

    /// <summary>
    /// How decode steps run: "cuda-graphs" (fused native kernels replayed from CUDA graphs), "fused-eager" (the native
    /// kernels without graphs) or "torchsharp" (plain TorchSharp ops; always the path of prompt chunks). A mixed step runs
    /// its decode rows on the native path and its prompt chunks on TorchSharp ops (<see cref="SplitSteps"/>).
    /// </summary>
    public string DecodePath => _decoder?.Path ?? "torchsharp";

    /// <summary>Steps so far that held both decode rows (single-token chunks) and prompt chunks.</summary>
    public long MixedSteps => Interlocked.Read(ref _mixedSteps);

    /// <summary>
    /// Of the <see cref="MixedSteps"/>, those split in two: their decode rows ran on the native decode path while their
    /// prompt chunks ran on TorchSharp ops as their own sub-batch. The others (no native path) ran whole on TorchSharp ops.
    /// </summary>
    public long SplitSteps => Interlocked.Read(ref _splitSteps);

    /// <summary>
    /// For tests on CPU, where there is no native decode path: split mixed steps anyway, the decode rows running as their
    /// own TorchSharp sub-batch in the decoder's place, through the same split and merge as on the GPU.
    /// </summary>
    internal bool SplitMixedStepsWithoutDecoder { get; set; }

    /// <summary>Test-only: hears each sampling row's float32 logits with its sequence, before the token is picked (so that a
    /// test can tell a round-off near tie from a wrong row when two runs pick different tokens).</summary>
    internal Action<Sequence, float[]>? SamplingLogitsObserved { get; set; }

    /// <summary>Why the native decode path is not in use, or why its graphs are not (null when everything asked for is in use).</summary>
    public string? DecodePathNote { get; private set; }

    /// <summary>Whether prompt steps run on libdisagg_cuda's kernels (see <see cref="ModelRunnerOptions.UseNativePrefill"/>):
    /// "fused+flash", "fused" (float32: no FlashAttention), or null (TorchSharp ops).</summary>
    public string? NativePrefill => _model.NativePrefill ? (_model.FlashPromptAttention ? "fused+flash" : "fused") : _model.FlashPromptAttention ? "flash" : null;

    /// <summary>The native decode path, when in use (for profiling).</summary>
    internal CudaGraphDecoder? Decoder => _decoder;

    /// <summary>The KV pool itself.</summary>
    internal PagedKvCache KvCache => _model.Cache;

    /// <summary>
    /// Loads the model in <paramref name="directory"/> (config.json, safetensors, generation_config.json) onto the device the
    /// options name. Throws <see cref="ModelLoadException"/> naming the file and the problem when the directory is unusable.
    /// </summary>
    public static TorchModelExecutor Load(string directory, ModelRunnerOptions? options = null)
    {
        options ??= new ModelRunnerOptions();
        options.Validate();
        bool cuda = options.Device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase);
        TorchRuntime.Initialize(cuda ? TorchBackend.Cuda : TorchBackend.Cpu);
        var device = torch.device(options.Device);
        var model = HuggingFaceModelDirectory.Open(directory);
        var config = model.Config;
        var dtype = options.DataType switch
        {
            "float32" => ScalarType.Float32,
            "bfloat16" => ScalarType.BFloat16,
            "float16" => ScalarType.Float16,
            _ => device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32,
        };
        var kvType = dtype switch
        {
            ScalarType.BFloat16 => KvDataType.BFloat16,
            ScalarType.Float16 => KvDataType.Float16,
            _ => KvDataType.Float32,
        };
        var layout = config.CreateKvCacheLayout(options.BlockSize, kvType);
        int maxContext = Math.Min(config.MaxPositionEmbeddings, options.MaxContextLength ?? int.MaxValue);
        int blocks = options.KvCacheBlocks ?? (int)Math.Clamp(options.KvCacheBytes / layout.BytesPerBlock, 1, int.MaxValue);

        using var checkpoint = model.OpenValidatedCheckpoint();
        var weights = LlamaWeights.Load(config, checkpoint, device, dtype);
        var cache = new PagedKvCache(layout, blocks, device);
        var eos = (model.GenerationConfig?.EosTokenIds is { Count: > 0 } fromGeneration ? fromGeneration : config.EosTokenIds).ToArray();
        var executor = new TorchModelExecutor(config, new LlamaModel(config, weights, cache, maxContext, device), layout, blocks, maxContext, eos, device,
            options.NativeDecodeMaxBatchSize);
        executor._model.FlashPromptAttention = options.UseNativePrefill && executor._model.SupportsFlashPromptAttention;
        executor._model.NativePrefill = options.UseNativePrefill && executor._model.SupportsFusedDecode;
        if (device.type == DeviceType.CUDA && options.UseNativeKernels) executor.StartNativeDecode(options);
        return executor;
    }

    private void StartNativeDecode(ModelRunnerOptions options)
    {
        if (!_model.SupportsFusedDecode)
        {
            DecodePathNote = NativeCuda.LoadError ?? $"the native kernels do not handle this model's attention shape (head dim {_model.HeadDim}, {_model.Heads} heads)";
            return;
        }
        try
        {
            _decoder = CudaGraphDecoder.Create(_model, options.NativeDecodeMaxBatchSize, options.UseCudaGraphs, MaxContextLength, VocabularySize, Device);
            DecodePathNote = _decoder.GraphError is { } error ? $"CUDA graph capture failed, fused kernels run eagerly: {error}" : null;
        }
        catch (Exception e) when (e is TorchRuntimeException or ExternalException)
        {
            DecodePathNote = $"the native decode path failed its warm-up and is off: {e.Message}";
        }
    }

    /// <inheritdoc />
    public void Execute(ScheduledBatch batch, Span<int> sampledTokens) => Execute(batch, sampledTokens, null);

    /// <inheritdoc />
    public bool ReportsLayers => true;

    /// <inheritdoc />
    public void Execute(ScheduledBatch batch, Span<int> sampledTokens, Action<int>? layerIssued)
    {
        using var scope = torch.NewDisposeScope();
        var chunks = batch.Chunks;
        int drawnRows = 0; // rows sampled on the device; greedy ones without penalties take the argmax. Only token ids reach the host.
        foreach (var c in chunks) if (c.SamplesToken && !TakesArgMax(c.Sequence.Sampling)) drawnRows++;
        try
        {
            var observe = SamplingLogitsObserved;
            var (logits, argmax) = Run(chunks, drawnRows > 0 || observe is not null, layerIssued, out bool argmaxOnHost);
            if (batch.SamplingCount == 0) return; // TorchSharp cannot read an empty tensor
            if (observe is not null && logits is not null)
            {
                var rows = _partition.RowChunks;
                using var host = logits.cpu();
                for (int row = 0; row < rows.Length; row++) observe(chunks[rows[row]].Sequence, host[row].data<float>().ToArray());
            }
            long[] greedy = argmaxOnHost ? _decoder!.ReadArgmax(chunks.Length) : argmax.cpu().data<long>().ToArray();
            Pick(chunks, logits, greedy, drawnRows, sampledTokens);
        }
        finally
        {
            _partition.Release();
        }
    }

    /// <summary>
    /// Runs the step on the fastest path that takes it and returns, for the sampling rows in the order of
    /// <see cref="StepPartition.RowChunks"/>, their float32 logits [rows, vocab] (null unless <paramref name="needLogits"/>
    /// or the path had them anyway) and argmax [rows]. Decode-only steps replay a graph; mixed steps run their decode rows
    /// there and their prompt chunks on TorchSharp ops, both on the current stream, the graph first; the rest runs whole
    /// on TorchSharp ops. <paramref name="argmaxOnHost"/>: the step ran whole on the decoder with every row sampling, so the
    /// decoder's <see cref="CudaGraphDecoder.ReadArgmax"/> has the argmax without a copy of its own.
    /// </summary>
    private (Tensor? Logits, Tensor Argmax) Run(ReadOnlySpan<ScheduledChunk> chunks, bool needLogits, Action<int>? layerIssued, out bool argmaxOnHost)
    {
        var decoder = _decoder;
        argmaxOnHost = false;
        if (decoder is not null && decoder.CanRun(chunks))
        {
            _partition.Whole(chunks);
            var outputs = decoder.Run(chunks);
            if (layerIssued is not null) // the graph runs every layer in one launch: all of them are issued now
                for (int l = 0; l < KvLayout.NumLayers; l++) layerIssued(l);
            return SamplingRows(outputs, chunks.Length, out argmaxOnHost);
        }
        bool mixed = StepPartition.IsMixed(chunks);
        if (mixed) Interlocked.Increment(ref _mixedSteps);
        if (mixed && (decoder is not null || SplitMixedStepsWithoutDecoder)
            && _partition.Split(chunks, decoder?.MaxBatch ?? _decodeRowLimit, decoder?.MaxBlocks ?? int.MaxValue))
        {
            Interlocked.Increment(ref _splitSteps);
            var rows = _partition.DecodeRows;
            Tensor decodeLogits, decodeArgmax;
            if (decoder is not null) (decodeLogits, decodeArgmax) = SamplingRows(decoder.Run(rows), rows.Length, out _);
            else
            {
                decodeLogits = _model.Forward(rows); // the CPU tests' stand-in for the decoder
                decodeArgmax = decodeLogits.argmax(1);
            }
            // Issued after the graph on the same stream; the graph's outputs are read (argmax, cat) before the next step.
            // Its layers need no report of their own: each one is issued before the forward's report of that layer.
            var forwardLogits = _model.Forward(_partition.ForwardChunks, layerIssued);
            return (needLogits ? torch.cat([decodeLogits, forwardLogits]) : null, torch.cat([decodeArgmax, forwardLogits.argmax(1)]));
        }
        _partition.Whole(chunks);
        var logits = _model.Forward(chunks, layerIssued);
        return (logits, logits.argmax(1));
    }

    /// <summary>The decoder's outputs for the rows that sample (<paramref name="everyRow"/>: all of them, nearly always, and
    /// then no copy).</summary>
    private (Tensor Logits, Tensor Argmax) SamplingRows((Tensor Logits, Tensor Argmax) outputs, int rows, out bool everyRow)
    {
        var sampling = _partition.DecodeSamplingRows;
        everyRow = sampling.Length == rows;
        if (everyRow) return outputs;
        using var index = torch.tensor(sampling.ToArray(), device: Device);
        return (outputs.Logits.index_select(0, index), outputs.Argmax.index_select(0, index));
    }

    /// <summary>Writes each sampling row's token to its chunk's slot: the argmax for greedy rows without penalties, the
    /// others sampled on the device with their own penalties, temperature, top-k, top-p, min-p and the counter-based uniform
    /// of their seed and position.</summary>
    private void Pick(ReadOnlySpan<ScheduledChunk> chunks, Tensor? logits, long[] greedy, int drawnRows, Span<int> sampledTokens)
    {
        var rowChunks = _partition.RowChunks;
        long[]? drawn = null;
        if (drawnRows > 0)
        {
            var rows = new long[drawnRows];
            var sampling = new SamplingRow[drawnRows];
            int vocab = (int)logits!.shape[1]; // read once: each Tensor.shape call allocates and crosses into native code
            _penalties.Clear();
            for (int row = 0, n = 0; row < rowChunks.Length; row++)
            {
                var seq = chunks[rowChunks[row]].Sequence;
                var p = seq.Sampling;
                if (TakesArgMax(p)) continue;
                rows[n] = row;
                sampling[n] = SamplingRow.For(p, vocab, seq.Request.Seed, seq.GeneratedCount);
                if (p.HasPenalties)
                {
                    // Counted incrementally: each step adds the sequence's new tokens, not its whole history.
                    if (seq.ExecutorState is not TokenPenalties counts) seq.ExecutorState = counts = new TokenPenalties();
                    counts.Update(seq.Tokens, seq.PromptLength);
                    _penalties.Add(n, vocab, counts);
                }
                n++;
            }
            using var selected = logits!.index_select(0, torch.tensor(rows, device: logits.device));
            drawn = DeviceSampler.Sample(selected, sampling, _penalties);
        }
        for (int row = 0, n = 0; row < rowChunks.Length; row++)
        {
            int i = rowChunks[row];
            sampledTokens[i] = TakesArgMax(chunks[i].Sequence.Sampling) ? (int)greedy[row] : (int)drawn![n++];
        }
    }

    /// <summary>Greedy without penalties: the step's argmax is the token, and the logits need not be read.</summary>
    private static bool TakesArgMax(SamplingParameters p) => p.IsGreedy && !p.HasPenalties;

    /// <summary>Float32 logits of the last position of each sampling chunk, for tests against reference outputs.</summary>
    internal float[] ForwardLogits(ScheduledBatch batch)
    {
        using var scope = torch.NewDisposeScope();
        var logits = _model.Forward(batch.Chunks);
        return batch.SamplingCount == 0 ? [] : logits.cpu().data<float>().ToArray(); // TorchSharp cannot read an empty tensor
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Interlocked.Exchange(ref _decoder, null)?.Dispose();
        _model.Dispose();
    }
}
