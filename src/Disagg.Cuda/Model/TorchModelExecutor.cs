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
    private CudaGraphDecoder? _decoder;

    private TorchModelExecutor(ModelConfig config, LlamaModel model, KvCacheLayout layout, int blocks, int maxContext, IReadOnlyList<int> eos, Device device)
    {
        Config = config;
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
    /// kernels without graphs) or "torchsharp" (plain TorchSharp ops; always the path of prompt chunks).
    /// </summary>
    public string DecodePath => _decoder?.Path ?? "torchsharp";

    /// <summary>Why the native decode path is not in use, or why its graphs are not (null when everything asked for is in use).</summary>
    public string? DecodePathNote { get; private set; }

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
        var executor = new TorchModelExecutor(config, new LlamaModel(config, weights, cache, maxContext, device), layout, blocks, maxContext, eos, device);
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
        Tensor logits; // [samplingChunks, vocab], float32
        long[] greedy;  // their argmax: greedy rows take it; the others are sampled on the device. Only token ids reach the host.
        if (_decoder is { } decoder && decoder.CanRun(batch))
        {
            // Every chunk is one token, and nearly always every chunk samples: the decoder's rows are then the chunks.
            var (all, argmax) = decoder.Run(batch);
            if (layerIssued is not null) // the graph runs every layer in one launch: all of them are issued now
                for (int l = 0; l < KvLayout.NumLayers; l++) layerIssued(l);
            if (batch.SamplingCount == chunks.Length)
            {
                logits = all;
                greedy = argmax.cpu().data<long>().ToArray();
            }
            else
            {
                if (batch.SamplingCount == 0) return;
                var rows = new long[batch.SamplingCount];
                for (int i = 0, r = 0; i < chunks.Length; i++) if (chunks[i].SamplesToken) rows[r++] = i;
                using var index = torch.tensor(rows, device: Device);
                logits = all.index_select(0, index);
                greedy = argmax.index_select(0, index).cpu().data<long>().ToArray();
            }
        }
        else
        {
            logits = _model.Forward(batch, layerIssued);
            if (batch.SamplingCount == 0) return;
            greedy = logits.argmax(1).cpu().data<long>().ToArray();
        }
        int sampledRows = 0;
        foreach (var c in chunks) if (c.SamplesToken && !c.Sequence.Sampling.IsGreedy) sampledRows++;
        long[]? drawn = null;
        if (sampledRows > 0)
        {
            var rows = new long[sampledRows];
            var inverseTemperature = new double[sampledRows];
            var topK = new long[sampledRows];
            var topP = new double[sampledRows];
            var uniform = new double[sampledRows];
            for (int i = 0, row = 0, n = 0; i < chunks.Length; i++)
            {
                if (!chunks[i].SamplesToken) continue;
                var seq = chunks[i].Sequence;
                var p = seq.Sampling;
                if (!p.IsGreedy)
                {
                    rows[n] = row;
                    inverseTemperature[n] = 1.0 / p.Temperature;
                    topK[n] = p.TopK > 0 ? p.TopK : logits.shape[1];
                    topP[n] = p.TopP < 1f ? p.TopP : 2.0;
                    uniform[n] = SamplingRandom.Uniform(seq.Request.Seed, seq.GeneratedCount);
                    n++;
                }
                row++;
            }
            using var selected = logits.index_select(0, torch.tensor(rows, device: logits.device));
            drawn = DeviceSampler.Sample(selected, inverseTemperature, topK, topP, uniform);
        }
        for (int i = 0, row = 0, n = 0; i < chunks.Length; i++)
        {
            if (!chunks[i].SamplesToken) continue;
            sampledTokens[i] = chunks[i].Sequence.Sampling.IsGreedy ? (int)greedy[row] : (int)drawn![n++];
            row++;
        }
    }

    /// <summary>Float32 logits of the last position of each sampling chunk, for tests against reference outputs.</summary>
    internal float[] ForwardLogits(ScheduledBatch batch)
    {
        using var scope = torch.NewDisposeScope();
        var logits = _model.Forward(batch);
        return batch.SamplingCount == 0 ? [] : logits.cpu().data<float>().ToArray(); // TorchSharp cannot read an empty tensor
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Interlocked.Exchange(ref _decoder, null)?.Dispose();
        _model.Dispose();
    }
}
