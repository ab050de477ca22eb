using Disagg.Cuda.Loading;

namespace Disagg.GpuBench;

/// <summary>The model's shape for result files, and which of the named shapes it is.</summary>
internal static class ModelShape
{
    public static string Identify(ModelConfig c) => (c.Architecture, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads, c.VocabSize) switch
    {
        (ModelArchitecture.Llama, 4096, 14336, 32, 32, 8, 128256) => "llama3-8b",
        (ModelArchitecture.Qwen2, 896, 4864, 24, 14, 2, 151936) => "qwen2.5-0.5b",
        _ => "other",
    };

    public static Dictionary<string, object> Describe(string path, ModelConfig c, string dataType) => new()
    {
        ["path"] = path,
        ["shape"] = Identify(c),
        ["architecture"] = c.ArchitectureName,
        ["hidden_size"] = c.HiddenSize,
        ["intermediate_size"] = c.IntermediateSize,
        ["layers"] = c.NumHiddenLayers,
        ["attention_heads"] = c.NumAttentionHeads,
        ["kv_heads"] = c.NumKeyValueHeads,
        ["head_dim"] = c.HeadDim,
        ["vocab_size"] = c.VocabSize,
        ["dtype"] = dataType,
    };
}
