using Disagg.Cuda.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Cuda.Model;

/// <summary>One decoder layer's weights. Q, K and V are fused into one matrix, and gate and up into another, so that each
/// projection is a single matrix product.</summary>
internal sealed class LayerWeights : IDisposable
{
    public required Tensor InputNorm { get; init; }
    public required Tensor QkvProjection { get; init; }     // [(heads + 2 * kvHeads) * headDim, hidden]
    public Tensor? QkvBias { get; init; }
    public required Tensor OutputProjection { get; init; }  // [hidden, heads * headDim]
    public Tensor? OutputBias { get; init; }
    public Tensor? QueryNorm { get; init; }                 // [headDim] (Qwen3)
    public Tensor? KeyNorm { get; init; }
    public required Tensor PostAttentionNorm { get; init; }
    public required Tensor GateUpProjection { get; init; }  // [2 * intermediate, hidden]
    public Tensor? GateUpBias { get; init; }
    public required Tensor DownProjection { get; init; }    // [hidden, intermediate]
    public Tensor? DownBias { get; init; }

    public void Dispose()
    {
        foreach (var t in new[] { InputNorm, QkvProjection, QkvBias, OutputProjection, OutputBias, QueryNorm, KeyNorm,
                     PostAttentionNorm, GateUpProjection, GateUpBias, DownProjection, DownBias })
            t?.Dispose();
    }
}

/// <summary>All weights of a Llama-family model, on one device in one dtype.</summary>
internal sealed class LlamaWeights : IDisposable
{
    public required Tensor Embedding { get; init; }    // [vocab, hidden]
    public required LayerWeights[] Layers { get; init; }
    public required Tensor FinalNorm { get; init; }
    public required Tensor LanguageModelHead { get; init; } // [vocab, hidden]; the embedding itself when tied

    /// <summary>Reads every tensor the config calls for from <paramref name="checkpoint"/> (validated beforehand).</summary>
    public static LlamaWeights Load(ModelConfig config, SafetensorsCheckpoint checkpoint, Device device, ScalarType dtype)
    {
        Tensor Read(string name) => SafetensorsTensorFactory.ToTensor(checkpoint.GetTensor(name), device, dtype);
        Tensor? ReadOptional(string name, bool present) => present ? Read(name) : null;
        static Tensor Fuse(params Tensor[] parts)
        {
            var fused = torch.cat(parts, 0);
            foreach (var p in parts) p.Dispose();
            return fused;
        }

        var layers = new LayerWeights[config.NumHiddenLayers];
        for (int i = 0; i < layers.Length; i++)
        {
            string p = $"model.layers.{i}.";
            string a = p + "self_attn.", m = p + "mlp.";
            bool qkvBias = config.HasQkvBias, outBias = config.HasOutputProjectionBias, mlpBias = config.HasMlpBias;
            layers[i] = new LayerWeights
            {
                InputNorm = Read(p + "input_layernorm.weight"),
                QkvProjection = Fuse(Read(a + "q_proj.weight"), Read(a + "k_proj.weight"), Read(a + "v_proj.weight")),
                QkvBias = qkvBias ? Fuse(Read(a + "q_proj.bias"), Read(a + "k_proj.bias"), Read(a + "v_proj.bias")) : null,
                OutputProjection = Read(a + "o_proj.weight"),
                OutputBias = ReadOptional(a + "o_proj.bias", outBias),
                QueryNorm = ReadOptional(a + "q_norm.weight", config.HasQkNorm),
                KeyNorm = ReadOptional(a + "k_norm.weight", config.HasQkNorm),
                PostAttentionNorm = Read(p + "post_attention_layernorm.weight"),
                GateUpProjection = Fuse(Read(m + "gate_proj.weight"), Read(m + "up_proj.weight")),
                GateUpBias = mlpBias ? Fuse(Read(m + "gate_proj.bias"), Read(m + "up_proj.bias")) : null,
                DownProjection = Read(m + "down_proj.weight"),
                DownBias = ReadOptional(m + "down_proj.bias", mlpBias),
            };
        }
        var embedding = Read("model.embed_tokens.weight");
        return new LlamaWeights
        {
            Embedding = embedding,
            Layers = layers,
            FinalNorm = Read("model.norm.weight"),
            LanguageModelHead = config.TieWordEmbeddings ? embedding : Read("lm_head.weight"),
        };
    }

    public void Dispose()
    {
        foreach (var layer in Layers) layer.Dispose();
        FinalNorm.Dispose();
        if (!ReferenceEquals(LanguageModelHead, Embedding)) LanguageModelHead.Dispose();
        Embedding.Dispose();
    }
}
