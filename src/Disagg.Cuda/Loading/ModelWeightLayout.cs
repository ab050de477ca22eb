using System.Collections.Immutable;
using System.Globalization;
using System.Text;

namespace Disagg.Cuda.Loading;

/// <summary>
/// The tensors a Llama-family checkpoint must hold for a given config, with their shapes, and the check of a
/// checkpoint against them.
/// </summary>
public static class ModelWeightLayout
{
    /// <summary>Element types the runner accepts for weights (it converts among them when loading).</summary>
    public static IReadOnlyList<TensorDataType> SupportedWeightTypes { get; } =
        [TensorDataType.BFloat16, TensorDataType.Float16, TensorDataType.Float32];

    /// <summary>Name of the token embedding.</summary>
    public const string EmbedTokens = "model.embed_tokens.weight";

    /// <summary>Name of the final RMS norm.</summary>
    public const string FinalNorm = "model.norm.weight";

    /// <summary>Name of the output projection (absent from checkpoints with tied embeddings).</summary>
    public const string LmHead = "lm_head.weight";

    /// <summary>Prefix of layer <paramref name="layer"/>'s tensor names, e.g. <c>model.layers.3.</c>.</summary>
    public static string LayerPrefix(int layer) => string.Create(CultureInfo.InvariantCulture, $"model.layers.{layer}.");

    /// <summary>Every tensor <paramref name="config"/> requires, in a stable order (embedding, layers, norm, lm_head).</summary>
    public static IReadOnlyList<ExpectedTensor> ExpectedTensors(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        long hidden = config.HiddenSize, inter = config.IntermediateSize;
        long q = config.QueryProjectionSize, kv = config.KeyValueProjectionSize;
        var tensors = new List<ExpectedTensor>(config.NumHiddenLayers * 16 + 3);
        void Add(string name, params long[] shape) => tensors.Add(new ExpectedTensor(name, ImmutableArray.Create(shape)));

        Add(EmbedTokens, config.VocabSize, hidden);
        for (int layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            string p = LayerPrefix(layer);
            Add(p + "input_layernorm.weight", hidden);
            Add(p + "self_attn.q_proj.weight", q, hidden);
            Add(p + "self_attn.k_proj.weight", kv, hidden);
            Add(p + "self_attn.v_proj.weight", kv, hidden);
            if (config.HasQkvBias)
            {
                Add(p + "self_attn.q_proj.bias", q);
                Add(p + "self_attn.k_proj.bias", kv);
                Add(p + "self_attn.v_proj.bias", kv);
            }
            if (config.HasQkNorm)
            {
                Add(p + "self_attn.q_norm.weight", config.HeadDim);
                Add(p + "self_attn.k_norm.weight", config.HeadDim);
            }
            Add(p + "self_attn.o_proj.weight", hidden, q);
            if (config.HasOutputProjectionBias) Add(p + "self_attn.o_proj.bias", hidden);
            Add(p + "post_attention_layernorm.weight", hidden);
            Add(p + "mlp.gate_proj.weight", inter, hidden);
            Add(p + "mlp.up_proj.weight", inter, hidden);
            Add(p + "mlp.down_proj.weight", hidden, inter);
            if (config.HasMlpBias)
            {
                Add(p + "mlp.gate_proj.bias", inter);
                Add(p + "mlp.up_proj.bias", inter);
                Add(p + "mlp.down_proj.bias", hidden);
            }
        }
        Add(FinalNorm, hidden);
        if (!config.TieWordEmbeddings) Add(LmHead, config.VocabSize, hidden);
        return tensors;
    }

    /// <summary>
    /// Checks that <paramref name="checkpoint"/> holds every tensor <paramref name="config"/> requires, with the expected
    /// shape and a supported element type. Extra tensors (e.g. a tied lm_head, rotary inv_freq buffers) are ignored.
    /// Opens every shard it needs.
    /// </summary>
    /// <exception cref="ModelLoadException">
    /// Lists the problems found (missing tensor, wrong shape, unsupported dtype), each with the tensor name, expected and actual.
    /// </exception>
    public static void Validate(ModelConfig config, SafetensorsCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(checkpoint);
        const int MaxListed = 10;
        var problems = new List<string>();
        int total = 0;
        foreach (var expected in ExpectedTensors(config))
        {
            string? problem = Check(expected, checkpoint);
            if (problem is null) continue;
            total++;
            if (problems.Count < MaxListed) problems.Add(problem);
        }
        if (total == 0) return;

        var message = new StringBuilder();
        message.Append(CultureInfo.InvariantCulture, $"the checkpoint does not match {config.ArchitectureName} as configured ({total} problem{(total == 1 ? "" : "s")}): ");
        message.AppendJoin("; ", problems);
        if (total > problems.Count) message.Append(CultureInfo.InvariantCulture, $"; and {total - problems.Count} more");
        message.Append('.');
        throw new ModelLoadException(checkpoint.Path, message.ToString());
    }

    private static string? Check(ExpectedTensor expected, SafetensorsCheckpoint checkpoint)
    {
        if (!checkpoint.TryGetTensor(expected.Name, out var actual))
        {
            return $"tensor '{expected.Name}' is missing (expected shape {expected.ShapeText})";
        }
        if (!actual.Shape.AsSpan().SequenceEqual(expected.Shape.AsSpan()))
        {
            return $"tensor '{expected.Name}' has shape {actual.Info.ShapeText}, expected {expected.ShapeText} (in {Path.GetFileName(actual.FilePath)})";
        }
        if (!SupportedWeightTypes.Contains(actual.DataType))
        {
            return $"tensor '{expected.Name}' has dtype {actual.DataType.ToSafetensorsName()}, expected one of BF16, F16, F32 (in {Path.GetFileName(actual.FilePath)})";
        }
        return null;
    }
}
