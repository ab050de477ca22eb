using System.Collections;
using System.Text.Json.Nodes;
using Disagg.Kv;

namespace Disagg.Cuda.Loading.Tests;

public sealed class ModelConfigTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private ModelConfig Load(string json) => ModelConfig.Load(_dir.WriteText(Guid.NewGuid().ToString("N") + ".json", json));

    private ModelLoadException LoadFails(string json)
    {
        string path = _dir.WriteText(Guid.NewGuid().ToString("N") + ".json", json);
        var ex = Assert.Throws<ModelLoadException>(() => ModelConfig.Load(path));
        Assert.Equal(path, ex.FilePath);
        Assert.StartsWith(path + ": ", ex.Message);
        return ex;
    }

    /// <summary>Takes a sample, applies an edit to its JSON, and returns the text.</summary>
    private static string Edit(string json, Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(json)!.AsObject();
        edit(node);
        return node.ToJsonString();
    }

    [Fact]
    public void ReadsLlama31ClassicStyle()
    {
        var config = Load(ConfigSamples.Llama31Classic);

        Assert.Equal(ModelArchitecture.Llama, config.Architecture);
        Assert.Equal("LlamaForCausalLM", config.ArchitectureName);
        Assert.Equal(128256, config.VocabSize);
        Assert.Equal(4096, config.HiddenSize);
        Assert.Equal(14336, config.IntermediateSize);
        Assert.Equal(32, config.NumHiddenLayers);
        Assert.Equal(32, config.NumAttentionHeads);
        Assert.Equal(8, config.NumKeyValueHeads);
        Assert.Equal(128, config.HeadDim);
        Assert.Equal(4, config.QueriesPerKeyValueHead);
        Assert.Equal(4096, config.QueryProjectionSize);
        Assert.Equal(1024, config.KeyValueProjectionSize);
        Assert.Equal(1e-5, config.RmsNormEps);
        Assert.Equal(new RopeParameters(500000.0, RopeScalingType.Llama3, 8.0, 1.0, 4.0, 8192), config.Rope);
        Assert.Equal(131072, config.MaxPositionEmbeddings);
        Assert.False(config.TieWordEmbeddings);
        Assert.False(config.HasQkvBias);
        Assert.False(config.HasOutputProjectionBias);
        Assert.False(config.HasMlpBias);
        Assert.False(config.HasQkNorm);
        Assert.Null(config.SlidingWindow);
        Assert.Equal(TensorDataType.BFloat16, config.DataType);
        Assert.Equal([128000], config.BosTokenIds);
        Assert.Equal([128001, 128008, 128009], config.EosTokenIds);
        Assert.Null(config.PadTokenId);
    }

    [Fact]
    public void BothConfigStylesParseToTheSameValues()
    {
        var classic = Load(ConfigSamples.Llama31Classic);
        var transformers5 = Load(ConfigSamples.Llama31Transformers5);
        AssertSameValues(classic, transformers5);
    }

    [Fact]
    public void BothStylesAgreeWithoutRopeScalingToo()
    {
        string classic = Edit(ConfigSamples.Llama31Classic, c => c["rope_scaling"] = null);
        string transformers5 = Edit(ConfigSamples.Llama31Transformers5,
            c => c["rope_parameters"] = new JsonObject { ["rope_theta"] = 500000.0, ["rope_type"] = "default" });
        var a = Load(classic);
        var b = Load(transformers5);
        AssertSameValues(a, b);
        Assert.Equal(new RopeParameters(500000.0), a.Rope);
    }

    [Fact]
    public void ReadsRopeThetaKeptInsideRopeScaling()
    {
        var config = Load(Edit(ConfigSamples.Qwen3Small, c =>
        {
            c.Remove("rope_theta");
            c["rope_scaling"] = new JsonObject { ["rope_theta"] = 1_000_000.0, ["rope_type"] = "default" };
        }));
        Assert.Equal(new RopeParameters(1_000_000.0), config.Rope);
    }

    [Fact]
    public void ReadsLinearScalingInBothSpellings()
    {
        var withType = Load(Edit(ConfigSamples.Mistral7B, c => c["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 2.0 }));
        var withRopeType = Load(Edit(ConfigSamples.Mistral7B, c => c["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = 2.0 }));
        Assert.Equal(new RopeParameters(10000.0, RopeScalingType.Linear, 2.0), withType.Rope);
        Assert.Equal(withType.Rope, withRopeType.Rope);
    }

    [Fact]
    public void ReadsQwen2WithTiedEmbeddingsAndImpliedQkvBias()
    {
        var config = Load(ConfigSamples.Qwen25Small);

        Assert.Equal(ModelArchitecture.Qwen2, config.Architecture);
        Assert.True(config.TieWordEmbeddings);
        Assert.True(config.HasQkvBias);
        Assert.False(config.HasOutputProjectionBias);
        Assert.False(config.HasQkNorm);
        Assert.Equal(64, config.HeadDim);
        Assert.Equal(7, config.QueriesPerKeyValueHead);
        Assert.Null(config.SlidingWindow); // present in the file but use_sliding_window is false
        Assert.Equal(new RopeParameters(1_000_000.0), config.Rope);
        Assert.Equal(1e-6, config.RmsNormEps);
        Assert.Equal([151645], config.EosTokenIds);
    }

    [Fact]
    public void ReadsQwen3WithExplicitHeadDimAndQkNorm()
    {
        var config = Load(ConfigSamples.Qwen3Small);

        Assert.Equal(ModelArchitecture.Qwen3, config.Architecture);
        Assert.Equal(128, config.HeadDim); // not 1024 / 16
        Assert.Equal(2048, config.QueryProjectionSize);
        Assert.Equal(1024, config.KeyValueProjectionSize);
        Assert.True(config.HasQkNorm);
        Assert.False(config.HasQkvBias);
        Assert.True(config.TieWordEmbeddings);
        Assert.Equal(new RopeParameters(1_000_000.0), config.Rope);
        Assert.Null(config.SlidingWindow);
        Assert.Equal(new KvCacheLayout(28, 8, 128, 16, KvDataType.BFloat16), config.CreateKvCacheLayout(16, KvDataType.BFloat16));
    }

    [Fact]
    public void ReadsMistralSlidingWindow()
    {
        var config = Load(ConfigSamples.Mistral7B);
        Assert.Equal(ModelArchitecture.Mistral, config.Architecture);
        Assert.Equal(4096, config.SlidingWindow);
        Assert.False(config.HasQkvBias);
        Assert.Equal(new RopeParameters(10000.0), config.Rope);

        var v02 = Load(Edit(ConfigSamples.Mistral7B, c => { c["sliding_window"] = null; c["rope_theta"] = 1e6; }));
        Assert.Null(v02.SlidingWindow);
        Assert.Equal(1e6, v02.Rope.Theta);
    }

    [Fact]
    public void AppliesDefaultsForOptionalFields()
    {
        var config = Load("""
        {
          "model_type": "llama",
          "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
          "num_attention_heads": 4, "vocab_size": 100, "max_position_embeddings": 256
        }
        """);
        Assert.Equal(ModelArchitecture.Llama, config.Architecture);
        Assert.Equal("LlamaForCausalLM", config.ArchitectureName);
        Assert.Equal(4, config.NumKeyValueHeads);
        Assert.Equal(16, config.HeadDim);
        Assert.Equal(1e-6, config.RmsNormEps);
        Assert.Equal(new RopeParameters(10000.0), config.Rope);
        Assert.False(config.TieWordEmbeddings);
        Assert.Null(config.DataType);
        Assert.Empty(config.BosTokenIds);
        Assert.Empty(config.EosTokenIds);
    }

    [Fact]
    public void LlamaAttentionAndMlpBiasFlagsAreHonoured()
    {
        var config = Load(Edit(ConfigSamples.Llama31Classic, c => { c["attention_bias"] = true; c["mlp_bias"] = true; }));
        Assert.True(config.HasQkvBias);
        Assert.True(config.HasOutputProjectionBias);
        Assert.True(config.HasMlpBias);
    }

    [Fact]
    public void UnknownArchitectureNamesItAndTheSupportedList()
    {
        var ex = LoadFails(Edit(ConfigSamples.Llama31Classic, c => c["architectures"] = new JsonArray("GPT2LMHeadModel")));
        Assert.Contains("'GPT2LMHeadModel'", ex.Message);
        foreach (string supported in ModelConfig.SupportedArchitectures) Assert.Contains(supported, ex.Message);
        Assert.Equal(["LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM"], ModelConfig.SupportedArchitectures);
    }

    [Fact]
    public void UnknownModelTypeWithoutArchitecturesIsRejected()
    {
        var ex = LoadFails(Edit(ConfigSamples.Llama31Classic, c => { c.Remove("architectures"); c["model_type"] = "gemma"; }));
        Assert.Contains("model_type 'gemma'", ex.Message);
    }

    [Theory]
    [InlineData("vocab_size")]
    [InlineData("hidden_size")]
    [InlineData("intermediate_size")]
    [InlineData("num_hidden_layers")]
    [InlineData("num_attention_heads")]
    [InlineData("max_position_embeddings")]
    public void MissingRequiredFieldIsNamed(string field)
    {
        var ex = LoadFails(Edit(ConfigSamples.Llama31Classic, c => c.Remove(field)));
        Assert.Contains($"missing required field '{field}'", ex.Message);
    }

    [Fact]
    public void MissingArchitectureAndModelTypeIsNamed()
    {
        var ex = LoadFails(Edit(ConfigSamples.Llama31Classic, c => { c.Remove("architectures"); c.Remove("model_type"); }));
        Assert.Contains("missing required field 'architectures'", ex.Message);
    }

    [Theory]
    [InlineData("hidden_size", 0, "must be positive")]
    [InlineData("vocab_size", -5, "must be positive")]
    [InlineData("num_hidden_layers", 0, "must be positive")]
    [InlineData("num_key_value_heads", 0, "must be positive")]
    [InlineData("num_key_value_heads", 5, "must divide num_attention_heads")]
    [InlineData("num_key_value_heads", 64, "must divide num_attention_heads")]
    [InlineData("num_attention_heads", 24, "must divide hidden_size")]
    [InlineData("rms_norm_eps", 0, "must be positive")]
    [InlineData("rope_theta", -1, "must be positive")]
    public void InvalidValuesAreNamed(string field, double value, string problem)
    {
        var ex = LoadFails(Edit(ConfigSamples.Llama31Classic, c => c[field] = value));
        Assert.Contains($"'{field}'", ex.Message);
        Assert.Contains(problem, ex.Message);
    }

    [Theory]
    [InlineData("hidden_size", "\"4096\"", "must be an integer")]
    [InlineData("hidden_size", "4096.5", "must be an integer")]
    [InlineData("tie_word_embeddings", "\"yes\"", "must be true or false")]
    [InlineData("eos_token_id", "\"2\"", "integer or a list")]
    [InlineData("eos_token_id", "[1, \"x\"]", "item 1")]
    [InlineData("torch_dtype", "\"int4\"", "'torch_dtype' is 'int4'")]
    [InlineData("hidden_act", "\"gelu\"", "'hidden_act' is 'gelu'")]
    [InlineData("rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", "'yarn', which is not supported")]
    [InlineData("rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0}", "missing required field 'rope_scaling.low_freq_factor'")]
    [InlineData("rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0, \"high_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192}", "must exceed low_freq_factor")]
    [InlineData("rope_scaling", "{\"type\": \"linear\"}", "missing required field 'rope_scaling.factor'")]
    [InlineData("rope_scaling", "[]", "'rope_scaling' must be an object")]
    [InlineData("rope_parameters", "{\"full_attention\": {\"rope_theta\": 10000}}", "per-layer-type")]
    [InlineData("quantization_config", "{\"quant_method\": \"awq\"}", "quantized")]
    public void WrongTypesAndUnsupportedFeaturesAreNamed(string field, string rawValue, string problem)
    {
        var ex = LoadFails(Edit(ConfigSamples.Llama31Classic, c => c[field] = JsonNode.Parse(rawValue)));
        Assert.Contains(problem, ex.Message);
    }

    [Fact]
    public void QwenSlidingWindowTurnedOnIsRejected()
    {
        var ex = LoadFails(Edit(ConfigSamples.Qwen25Small, c => c["use_sliding_window"] = true));
        Assert.Contains("'use_sliding_window'", ex.Message);
    }

    [Fact]
    public void MistralNonPositiveSlidingWindowIsRejected()
    {
        var ex = LoadFails(Edit(ConfigSamples.Mistral7B, c => c["sliding_window"] = 0));
        Assert.Contains("'sliding_window'", ex.Message);
    }

    [Fact]
    public void IntegralFloatsAreAcceptedAsIntegers()
    {
        var config = Load(Edit(ConfigSamples.Mistral7B, c => c["hidden_size"] = 4096.0));
        Assert.Equal(4096, config.HiddenSize);
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("[]", "must hold a JSON object")]
    [InlineData("{\"hidden_size\": 1, \"hidden_size\": 2}", "not valid JSON")]
    public void MalformedFileIsATypedError(string json, string problem)
    {
        Assert.Contains(problem, LoadFails(json).Message);
    }

    [Fact]
    public void ExplicitHeadDimNeedNotDivideHiddenSize()
    {
        // Mistral Nemo: 5120 / 32 = 160, but head_dim is 128.
        var config = Load(Edit(ConfigSamples.Mistral7B, c => { c["hidden_size"] = 5120; c["head_dim"] = 128; c["num_attention_heads"] = 32; }));
        Assert.Equal(128, config.HeadDim);
        Assert.Equal(4096, config.QueryProjectionSize);
        var ex = LoadFails(Edit(ConfigSamples.Mistral7B, c => c["head_dim"] = 0));
        Assert.Contains("'head_dim' must be positive", ex.Message);
    }

    [Fact]
    public void AcceptsAByteOrderMark()
    {
        string path = _dir.File("bom.json");
        File.WriteAllBytes(path, [0xEF, 0xBB, 0xBF, .. System.Text.Encoding.UTF8.GetBytes(ConfigSamples.Mistral7B)]);
        Assert.Equal(4096, ModelConfig.Load(path).HiddenSize);
    }

    [Fact]
    public void InvalidUtf8IsATypedError()
    {
        string path = _dir.File("bad.json");
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(ConfigSamples.Mistral7B);
        bytes[ConfigSamples.Mistral7B.IndexOf("MistralForCausalLM", StringComparison.Ordinal) + 2] = 0xC3; // truncated 2-byte sequence
        var ex = Assert.Throws<ModelLoadException>(() => ModelConfig.Load(WriteBytes(path, bytes)));
        Assert.Contains("not valid UTF-8", ex.Message);
    }

    private static string WriteBytes(string path, byte[] bytes)
    {
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void MissingFileIsATypedError()
    {
        string path = _dir.File("config.json");
        var ex = Assert.Throws<ModelLoadException>(() => ModelConfig.Load(path));
        Assert.Equal(path, ex.FilePath);
        Assert.Contains("does not exist", ex.Message);
    }

    /// <summary>Compares every public property, lists by their items, so a new property is covered automatically.</summary>
    internal static void AssertSameValues(ModelConfig expected, ModelConfig actual)
    {
        foreach (var property in typeof(ModelConfig).GetProperties())
        {
            if (property.GetIndexParameters().Length > 0 || property.GetMethod!.IsStatic) continue;
            object? a = property.GetValue(expected), b = property.GetValue(actual);
            if (a is IEnumerable listA and not string && b is IEnumerable listB)
            {
                Assert.True(listA.Cast<object>().SequenceEqual(listB.Cast<object>()), $"{property.Name} differs");
            }
            else
            {
                Assert.True(Equals(a, b), $"{property.Name} differs: {a} vs {b}");
            }
        }
    }
}
