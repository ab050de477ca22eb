using Disagg.Kv;

namespace Disagg.Cuda.Loading;

/// <summary>
/// The parts of a Hugging Face <c>config.json</c> that a Llama-family runner needs, with defaults resolved and values
/// validated. Reads both the classic style (<c>rope_theta</c> + <c>rope_scaling</c>, <c>torch_dtype</c>) and the
/// transformers 5 style (<c>rope_parameters</c>, <c>dtype</c>).
/// </summary>
/// <remarks>
/// <see cref="Load"/> validates; a copy made with <c>with</c> is not re-validated.
/// </remarks>
public sealed record ModelConfig
{
    /// <summary>The file name Hugging Face uses.</summary>
    public const string FileName = "config.json";

    private static readonly (string Name, string ModelType, ModelArchitecture Architecture)[] s_supported =
    [
        ("LlamaForCausalLM", "llama", ModelArchitecture.Llama),
        ("Qwen2ForCausalLM", "qwen2", ModelArchitecture.Qwen2),
        ("Qwen3ForCausalLM", "qwen3", ModelArchitecture.Qwen3),
        ("MistralForCausalLM", "mistral", ModelArchitecture.Mistral),
    ];

    /// <summary>The <c>architectures</c> names this library can run.</summary>
    public static IReadOnlyList<string> SupportedArchitectures { get; } = [.. s_supported.Select(s => s.Name)];

    /// <summary>The model family.</summary>
    public required ModelArchitecture Architecture { get; init; }

    /// <summary>The architecture name as written in the config (e.g. <c>LlamaForCausalLM</c>).</summary>
    public required string ArchitectureName { get; init; }

    /// <summary>Tokens in the vocabulary (rows of the embedding and of lm_head).</summary>
    public required int VocabSize { get; init; }

    /// <summary>Width of the residual stream.</summary>
    public required int HiddenSize { get; init; }

    /// <summary>Width of the MLP's hidden layer.</summary>
    public required int IntermediateSize { get; init; }

    /// <summary>Transformer blocks.</summary>
    public required int NumHiddenLayers { get; init; }

    /// <summary>Query heads per layer.</summary>
    public required int NumAttentionHeads { get; init; }

    /// <summary>Key/value heads per layer (equal to the query heads without grouped-query attention).</summary>
    public required int NumKeyValueHeads { get; init; }

    /// <summary>Size of one attention head (explicit in the config, or hidden size / heads).</summary>
    public required int HeadDim { get; init; }

    /// <summary>Epsilon of every RMS norm.</summary>
    public required double RmsNormEps { get; init; }

    /// <summary>Rotary embedding base and scaling.</summary>
    public required RopeParameters Rope { get; init; }

    /// <summary>Longest context the model supports.</summary>
    public required int MaxPositionEmbeddings { get; init; }

    /// <summary>Whether lm_head reuses the embedding matrix (then a checkpoint need not store lm_head.weight).</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>The config's <c>attention_bias</c> flag as written (see <see cref="HasQkvBias"/> for its effect).</summary>
    public bool AttentionBias { get; init; }

    /// <summary>The config's <c>mlp_bias</c> flag as written (only Llama honours it).</summary>
    public bool MlpBias { get; init; }

    /// <summary>Attention window in tokens for sliding-window models (Mistral v0.1), or null for full attention.</summary>
    public int? SlidingWindow { get; init; }

    /// <summary>The dtype the weights were saved in (<c>torch_dtype</c> or <c>dtype</c>), if stated.</summary>
    public TensorDataType? DataType { get; init; }

    /// <summary>Beginning-of-sequence token ids (usually one; empty if unstated).</summary>
    public IReadOnlyList<int> BosTokenIds { get; init; } = [];

    /// <summary>End-of-sequence token ids (Llama 3.1 lists several; empty if unstated).</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>Padding token id, if stated.</summary>
    public int? PadTokenId { get; init; }

    /// <summary>Whether q_proj, k_proj and v_proj have biases: always for Qwen2, else when attention_bias is set (Llama, Qwen3).</summary>
    public bool HasQkvBias => Architecture == ModelArchitecture.Qwen2 || (HonoursAttentionBias && AttentionBias);

    /// <summary>Whether o_proj has a bias: when attention_bias is set (Llama, Qwen3; never Qwen2 or Mistral).</summary>
    public bool HasOutputProjectionBias => HonoursAttentionBias && AttentionBias;

    /// <summary>Whether gate/up/down projections have biases (Llama's mlp_bias).</summary>
    public bool HasMlpBias => Architecture == ModelArchitecture.Llama && MlpBias;

    /// <summary>Whether queries and keys pass through a per-head RMS norm before RoPE (Qwen3).</summary>
    public bool HasQkNorm => Architecture == ModelArchitecture.Qwen3;

    /// <summary>Output width of q_proj: heads times head size.</summary>
    public int QueryProjectionSize => NumAttentionHeads * HeadDim;

    /// <summary>Output width of k_proj and of v_proj: key/value heads times head size.</summary>
    public int KeyValueProjectionSize => NumKeyValueHeads * HeadDim;

    /// <summary>Query heads sharing each key/value head.</summary>
    public int QueriesPerKeyValueHead => NumAttentionHeads / NumKeyValueHeads;

    private bool HonoursAttentionBias => Architecture is ModelArchitecture.Llama or ModelArchitecture.Qwen3;

    /// <summary>The KV cache layout this model needs with the given block size and element type.</summary>
    public KvCacheLayout CreateKvCacheLayout(int blockSize, KvDataType dataType) =>
        new(NumHiddenLayers, NumKeyValueHeads, HeadDim, blockSize, dataType);

    /// <summary>Reads and validates a config.json.</summary>
    /// <exception cref="ModelLoadException">Missing file, bad JSON, a missing or invalid field, or an unsupported model.</exception>
    public static ModelConfig Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = Path.GetFullPath(path);
        using var document = JsonFile.ReadObject(fullPath);
        var fields = new JsonFields(fullPath, document.RootElement);

        if (fields.OptionalObject("quantization_config") is { } quantization)
        {
            string method = quantization.OptionalString("quant_method") ?? "unknown";
            throw new ModelLoadException(fullPath, $"the model is quantized (quantization_config.quant_method '{method}'); quantized checkpoints are not supported.");
        }

        var (architecture, architectureName) = ReadArchitecture(fields);

        string activation = fields.OptionalString("hidden_act") ?? "silu";
        if (activation != "silu") throw fields.Invalid("hidden_act", $"is '{activation}', but the supported models use 'silu'.");

        int hiddenSize = Positive(fields, "hidden_size", fields.RequiredInt("hidden_size"));
        int heads = Positive(fields, "num_attention_heads", fields.RequiredInt("num_attention_heads"));
        int kvHeads = Positive(fields, "num_key_value_heads", fields.OptionalInt("num_key_value_heads") ?? heads);
        if (kvHeads > heads || heads % kvHeads != 0)
        {
            throw fields.Invalid("num_key_value_heads", $"({kvHeads}) must divide num_attention_heads ({heads}).");
        }
        int headDim;
        if (fields.OptionalInt("head_dim") is int explicitHeadDim)
        {
            headDim = Positive(fields, "head_dim", explicitHeadDim);
        }
        else
        {
            if (hiddenSize % heads != 0)
            {
                throw fields.Invalid("num_attention_heads", $"({heads}) must divide hidden_size ({hiddenSize}) when head_dim is not given.");
            }
            headDim = hiddenSize / heads;
        }

        double rmsNormEps = fields.OptionalDouble("rms_norm_eps") ?? 1e-6; // the transformers default for all four
        if (rmsNormEps <= 0) throw fields.Invalid("rms_norm_eps", $"must be positive, but is {rmsNormEps}.");

        return new ModelConfig
        {
            Architecture = architecture,
            ArchitectureName = architectureName,
            VocabSize = Positive(fields, "vocab_size", fields.RequiredInt("vocab_size")),
            HiddenSize = hiddenSize,
            IntermediateSize = Positive(fields, "intermediate_size", fields.RequiredInt("intermediate_size")),
            NumHiddenLayers = Positive(fields, "num_hidden_layers", fields.RequiredInt("num_hidden_layers")),
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            RmsNormEps = rmsNormEps,
            Rope = RopeParameters.Read(fields),
            MaxPositionEmbeddings = Positive(fields, "max_position_embeddings", fields.RequiredInt("max_position_embeddings")),
            TieWordEmbeddings = fields.OptionalBool("tie_word_embeddings") ?? false,
            AttentionBias = fields.OptionalBool("attention_bias") ?? false,
            MlpBias = fields.OptionalBool("mlp_bias") ?? false,
            SlidingWindow = ReadSlidingWindow(fields, architecture),
            DataType = ReadDataType(fields),
            BosTokenIds = fields.TokenIds("bos_token_id"),
            EosTokenIds = fields.TokenIds("eos_token_id"),
            PadTokenId = fields.OptionalInt("pad_token_id"),
        };
    }

    private static (ModelArchitecture, string) ReadArchitecture(JsonFields fields)
    {
        var names = fields.StringList("architectures");
        string supported = string.Join(", ", SupportedArchitectures);
        if (names.Count > 0)
        {
            foreach (string name in names)
            {
                foreach (var s in s_supported)
                {
                    if (s.Name == name) return (s.Architecture, s.Name);
                }
            }
            throw new ModelLoadException(fields.Path, $"architecture '{string.Join(", ", names)}' is not supported (supported: {supported}).");
        }
        string modelType = fields.OptionalString("model_type") ?? throw fields.Missing("architectures");
        foreach (var s in s_supported)
        {
            if (s.ModelType == modelType) return (s.Architecture, s.Name);
        }
        throw new ModelLoadException(fields.Path, $"model_type '{modelType}' is not supported (supported: {string.Join(", ", s_supported.Select(s => s.ModelType))}).");
    }

    private static int? ReadSlidingWindow(JsonFields fields, ModelArchitecture architecture)
    {
        switch (architecture)
        {
            case ModelArchitecture.Mistral:
                int? window = fields.OptionalInt("sliding_window");
                if (window is <= 0) throw fields.Invalid("sliding_window", $"must be positive or null, but is {window}.");
                return window;
            case ModelArchitecture.Qwen2 or ModelArchitecture.Qwen3:
                // Qwen configs carry a sliding_window value that only applies when use_sliding_window is true
                // (and then only to some layers); no released Qwen2/Qwen3 model turns it on.
                if (fields.OptionalBool("use_sliding_window") == true)
                {
                    throw fields.Invalid("use_sliding_window", "is true; Qwen sliding-window attention is not supported.");
                }
                return null;
            default:
                return null;
        }
    }

    private static TensorDataType? ReadDataType(JsonFields fields)
    {
        string field = fields.Has("dtype") ? "dtype" : "torch_dtype";
        return fields.OptionalString(field) switch
        {
            null => null,
            "bfloat16" => TensorDataType.BFloat16,
            "float16" or "half" => TensorDataType.Float16,
            "float32" or "float" => TensorDataType.Float32,
            "float64" or "double" => TensorDataType.Float64,
            var other => throw fields.Invalid(field, $"is '{other}'; expected bfloat16, float16 or float32."),
        };
    }

    private static int Positive(JsonFields fields, string name, int value) =>
        value > 0 ? value : throw fields.Invalid(name, $"must be positive, but is {value}.");
}
