using Disagg.Cuda.Loading;
using Disagg.Cuda.Runtime;
using Disagg.Kv;
using Disagg.Sampling;
using Disagg.Scheduling;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Cuda.Model;

/// <summary>
/// Runs a Hugging Face Llama-family checkpoint on TorchSharp as an <see cref="IModelExecutor"/>: the model runner behind
/// <see cref="LlmEngine"/>. Greedy tokens are picked on the device; other sampling copies the step's logits to the host and
/// uses the reference <see cref="TokenSampler"/>, so every device agrees on the draw.
/// </summary>
public sealed class TorchModelExecutor : IModelExecutor
{
    private readonly LlamaModel _model;
    private readonly TokenSampler _sampler = new();
    private float[] _hostLogits = [];

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
        return new TorchModelExecutor(config, new LlamaModel(config, weights, cache, maxContext, device), layout, blocks, maxContext, eos, device);
    }

    /// <inheritdoc />
    public void Execute(ScheduledBatch batch, Span<int> sampledTokens)
    {
        using var scope = torch.NewDisposeScope();
        var logits = _model.Forward(batch); // [samplingChunks, vocab]
        if (batch.SamplingCount == 0) return;
        var chunks = batch.Chunks;

        bool allGreedy = true;
        foreach (var c in chunks) if (c.SamplesToken && !c.Sequence.Sampling.IsGreedy) allGreedy = false;
        if (allGreedy)
        {
            var picked = logits.argmax(1).to(ScalarType.Int64).cpu();
            var ids = picked.data<long>();
            for (int i = 0, row = 0; i < chunks.Length; i++)
                if (chunks[i].SamplesToken) sampledTokens[i] = (int)ids[row++];
            return;
        }

        int vocab = (int)logits.shape[1];
        var host = logits.cpu().contiguous();
        int needed = batch.SamplingCount * vocab;
        if (_hostLogits.Length < needed) _hostLogits = new float[needed];
        host.data<float>().CopyTo(_hostLogits.AsSpan(0, needed));
        for (int i = 0, row = 0; i < chunks.Length; i++)
        {
            if (!chunks[i].SamplesToken) continue;
            var seq = chunks[i].Sequence;
            var rowLogits = _hostLogits.AsSpan(row++ * vocab, vocab);
            sampledTokens[i] = _sampler.Sample(rowLogits, seq.Sampling, seq.Request.Seed, seq.GeneratedCount);
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
    public void Dispose() => _model.Dispose();
}
