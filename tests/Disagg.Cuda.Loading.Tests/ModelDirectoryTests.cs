using System.Text.Json;

namespace Disagg.Cuda.Loading.Tests;

public sealed class ModelDirectoryTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>
    /// Writes config.json and a checkpoint holding every tensor the config requires (BF16, distinct bytes per tensor),
    /// optionally altered, in one file or split across two shards.
    /// </summary>
    private ModelConfig WriteModel(
        string configJson,
        Func<ExpectedTensor, (string Name, TensorDataType Type, long[] Shape)?>? alter = null,
        bool sharded = false,
        IEnumerable<string>? extraTensors = null)
    {
        string configPath = _dir.WriteText(ModelConfig.FileName, configJson);
        var config = ModelConfig.Load(configPath);
        var tensors = new List<(SafetensorsTensorDescriptor, ReadOnlyMemory<byte>)>();
        int seed = 0;
        foreach (var expected in ModelWeightLayout.ExpectedTensors(config))
        {
            var spec = alter is null ? (expected.Name, TensorDataType.BFloat16, expected.Shape.ToArray()) : alter(expected);
            if (spec is not { } s) continue;
            var descriptor = new SafetensorsTensorDescriptor(s.Name, s.Type, s.Shape);
            tensors.Add((descriptor, RawSafetensors.Pattern((int)descriptor.ByteLength, seed++)));
        }
        foreach (string extra in extraTensors ?? [])
        {
            tensors.Add((new SafetensorsTensorDescriptor(extra, TensorDataType.Float32, [2]), new byte[8]));
        }

        if (!sharded)
        {
            SafetensorsWriter.WriteFile(_dir.File(SafetensorsCheckpoint.SingleFileName), tensors);
            return config;
        }
        int half = tensors.Count / 2;
        var shards = new[] { ("model-00001-of-00002.safetensors", tensors[..half]), ("model-00002-of-00002.safetensors", tensors[half..]) };
        var weightMap = new Dictionary<string, string>();
        foreach (var (file, part) in shards)
        {
            SafetensorsWriter.WriteFile(_dir.File(file), part);
            foreach (var (descriptor, _) in part) weightMap[descriptor.Name] = file;
        }
        _dir.WriteText(SafetensorsIndex.FileName, JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = weightMap }));
        return config;
    }

    [Fact]
    public void ExpectedTensorsOfLlamaFollowTheConfig()
    {
        var config = ModelConfig.Load(_dir.WriteText("c.json", ConfigSamples.Llama31Classic));
        var expected = ModelWeightLayout.ExpectedTensors(config).ToDictionary(t => t.Name, t => t.Shape.ToArray());

        Assert.Equal(2 + 32 * 9 + 1, expected.Count);
        Assert.Equal([128256L, 4096L], expected["model.embed_tokens.weight"]);
        Assert.Equal([4096L, 4096L], expected["model.layers.0.self_attn.q_proj.weight"]);
        Assert.Equal([1024L, 4096L], expected["model.layers.31.self_attn.k_proj.weight"]);
        Assert.Equal([1024L, 4096L], expected["model.layers.31.self_attn.v_proj.weight"]);
        Assert.Equal([4096L, 4096L], expected["model.layers.5.self_attn.o_proj.weight"]);
        Assert.Equal([14336L, 4096L], expected["model.layers.5.mlp.gate_proj.weight"]);
        Assert.Equal([14336L, 4096L], expected["model.layers.5.mlp.up_proj.weight"]);
        Assert.Equal([4096L, 14336L], expected["model.layers.5.mlp.down_proj.weight"]);
        Assert.Equal([4096L], expected["model.layers.5.input_layernorm.weight"]);
        Assert.Equal([4096L], expected["model.layers.5.post_attention_layernorm.weight"]);
        Assert.Equal([4096L], expected["model.norm.weight"]);
        Assert.Equal([128256L, 4096L], expected["lm_head.weight"]);
        Assert.DoesNotContain(expected.Keys, n => n.Contains("bias") || n.Contains("q_norm"));
        Assert.DoesNotContain("model.layers.32.input_layernorm.weight", expected.Keys);
    }

    [Fact]
    public void ExpectedTensorsOfQwen2IncludeQkvBiasesAndOmitTiedHead()
    {
        var config = ModelConfig.Load(_dir.WriteText("c.json", ConfigSamples.Qwen25Small));
        var expected = ModelWeightLayout.ExpectedTensors(config).ToDictionary(t => t.Name, t => t.Shape.ToArray());

        Assert.Equal([896L], expected["model.layers.0.self_attn.q_proj.bias"]);
        Assert.Equal([128L], expected["model.layers.23.self_attn.k_proj.bias"]);
        Assert.Equal([128L], expected["model.layers.23.self_attn.v_proj.bias"]);
        Assert.DoesNotContain("model.layers.0.self_attn.o_proj.bias", expected.Keys);
        Assert.DoesNotContain("lm_head.weight", expected.Keys);
        Assert.Equal(1 + 24 * 12 + 1, expected.Count);
    }

    [Fact]
    public void ExpectedTensorsOfQwen3IncludeQkNormsSizedByHeadDim()
    {
        var config = ModelConfig.Load(_dir.WriteText("c.json", ConfigSamples.Qwen3Small));
        var expected = ModelWeightLayout.ExpectedTensors(config).ToDictionary(t => t.Name, t => t.Shape.ToArray());

        Assert.Equal([128L], expected["model.layers.0.self_attn.q_norm.weight"]);
        Assert.Equal([128L], expected["model.layers.27.self_attn.k_norm.weight"]);
        Assert.Equal([2048L, 1024L], expected["model.layers.0.self_attn.q_proj.weight"]);
        Assert.Equal([1024L, 2048L], expected["model.layers.0.self_attn.o_proj.weight"]);
        Assert.DoesNotContain(expected.Keys, n => n.EndsWith(".bias", StringComparison.Ordinal));
    }

    [Fact]
    public void ExpectedTensorsOfLlamaWithBiasesIncludeThem()
    {
        var config = ModelConfig.Load(_dir.WriteText("c.json", ConfigSamples.Tiny(extra: ",\"attention_bias\": true, \"mlp_bias\": true")));
        var names = ModelWeightLayout.ExpectedTensors(config).Select(t => t.Name).ToHashSet();
        foreach (string bias in new[] { "self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias", "self_attn.o_proj.bias", "mlp.gate_proj.bias", "mlp.up_proj.bias", "mlp.down_proj.bias" })
        {
            Assert.Contains("model.layers.1." + bias, names);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void OpensAValidModelDirectory(bool sharded)
    {
        WriteModel(ConfigSamples.Tiny(), sharded: sharded, extraTensors: ["model.layers.0.self_attn.rotary_emb.inv_freq"]);
        _dir.WriteText(HuggingFaceModelDirectory.TokenizerFileName, "{}");
        _dir.WriteText(GenerationConfig.FileName, """{"eos_token_id": 2}""");

        var model = HuggingFaceModelDirectory.Open(_dir.Path);

        Assert.Equal(_dir.Path, model.DirectoryPath);
        Assert.Equal(ModelArchitecture.Llama, model.Config.Architecture);
        Assert.Equal([2], model.GenerationConfig!.EosTokenIds);
        Assert.True(model.HasTokenizer);
        Assert.Equal(_dir.File("tokenizer.json"), model.TokenizerPath);
        Assert.Null(model.TokenizerConfigPath);
        Assert.Equal(sharded ? 2 : 1, model.WeightFiles.Count);
        Assert.Equal(sharded, model.WeightIndex is not null);

        using var checkpoint = model.OpenValidatedCheckpoint();
        var embed = checkpoint.GetTensor(ModelWeightLayout.EmbedTokens);
        Assert.Equal(RawSafetensors.Pattern(10 * 8 * 2, seed: 0), embed.Span.ToArray());
    }

    [Fact]
    public void DirectoryWithoutTokenizerOrGenerationConfigReportsTheirAbsence()
    {
        WriteModel(ConfigSamples.Tiny());
        var model = HuggingFaceModelDirectory.Open(_dir.Path);
        Assert.False(model.HasTokenizer);
        Assert.Null(model.TokenizerPath);
        Assert.Null(model.GenerationConfig);
    }

    [Fact]
    public void MissingTensorIsNamedWithItsExpectedShape()
    {
        WriteModel(ConfigSamples.Tiny(), t => t.Name == "model.layers.1.mlp.down_proj.weight" ? null : (t.Name, TensorDataType.BFloat16, t.Shape.ToArray()));
        var model = HuggingFaceModelDirectory.Open(_dir.Path);
        var ex = Assert.Throws<ModelLoadException>(model.OpenValidatedCheckpoint);
        Assert.Equal(_dir.File(SafetensorsCheckpoint.SingleFileName), ex.FilePath);
        Assert.Contains("tensor 'model.layers.1.mlp.down_proj.weight' is missing (expected shape [8, 12])", ex.Message);
        Assert.Contains("1 problem)", ex.Message);
    }

    [Fact]
    public void WrongShapeIsNamedWithExpectedAndActual()
    {
        WriteModel(ConfigSamples.Tiny(), t => t.Name == "model.layers.0.self_attn.k_proj.weight" ? (t.Name, TensorDataType.BFloat16, [8, 8]) : (t.Name, TensorDataType.BFloat16, t.Shape.ToArray()), sharded: true);
        var model = HuggingFaceModelDirectory.Open(_dir.Path);
        var ex = Assert.Throws<ModelLoadException>(model.OpenValidatedCheckpoint);
        Assert.Equal(_dir.File(SafetensorsIndex.FileName), ex.FilePath);
        Assert.Contains("tensor 'model.layers.0.self_attn.k_proj.weight' has shape [8, 8], expected [4, 8]", ex.Message);
    }

    [Fact]
    public void UnsupportedDtypeIsNamed()
    {
        WriteModel(ConfigSamples.Tiny(), t => (t.Name, t.Name == ModelWeightLayout.FinalNorm ? TensorDataType.Int32 : TensorDataType.Float16, t.Shape.ToArray()));
        var model = HuggingFaceModelDirectory.Open(_dir.Path);
        var ex = Assert.Throws<ModelLoadException>(model.OpenValidatedCheckpoint);
        Assert.Contains("tensor 'model.norm.weight' has dtype I32, expected one of BF16, F16, F32", ex.Message);
    }

    [Fact]
    public void ManyProblemsAreListedUpToALimit()
    {
        WriteModel(ConfigSamples.Tiny(), t => t.Name.Contains("layers.", StringComparison.Ordinal) ? null : (t.Name, TensorDataType.BFloat16, t.Shape.ToArray()));
        var model = HuggingFaceModelDirectory.Open(_dir.Path);
        var ex = Assert.Throws<ModelLoadException>(model.OpenValidatedCheckpoint);
        Assert.Contains("(18 problems)", ex.Message);
        Assert.Contains("model.layers.0.input_layernorm.weight", ex.Message);
        Assert.DoesNotContain("model.layers.1.mlp.down_proj.weight", ex.Message);
        Assert.Contains("and 8 more", ex.Message);
    }

    [Fact]
    public void TiedModelMayStillShipAnLmHead()
    {
        WriteModel(ConfigSamples.Tiny(extra: ",\"tie_word_embeddings\": true"), extraTensors: [ModelWeightLayout.LmHead]);
        var model = HuggingFaceModelDirectory.Open(_dir.Path);
        Assert.DoesNotContain(model.ExpectedTensors, t => t.Name == ModelWeightLayout.LmHead);
        using var checkpoint = model.OpenValidatedCheckpoint();
        Assert.True(checkpoint.ContainsTensor(ModelWeightLayout.LmHead));
    }

    [Fact]
    public void UntiedModelWithoutLmHeadIsRejected()
    {
        WriteModel(ConfigSamples.Tiny(), t => t.Name == ModelWeightLayout.LmHead ? null : (t.Name, TensorDataType.BFloat16, t.Shape.ToArray()));
        var model = HuggingFaceModelDirectory.Open(_dir.Path);
        var ex = Assert.Throws<ModelLoadException>(model.OpenValidatedCheckpoint);
        Assert.Contains("'lm_head.weight' is missing (expected shape [10, 8])", ex.Message);
    }

    [Fact]
    public void MissingConfigIsNamed()
    {
        SafetensorsWriter.WriteFile(_dir.File(SafetensorsCheckpoint.SingleFileName), []);
        var ex = Assert.Throws<ModelLoadException>(() => HuggingFaceModelDirectory.Open(_dir.Path));
        Assert.Equal(_dir.File("config.json"), ex.FilePath);
        Assert.Contains("no config.json", ex.Message);
    }

    [Fact]
    public void MissingWeightsAreNamed()
    {
        _dir.WriteText(ModelConfig.FileName, ConfigSamples.Tiny());
        var ex = Assert.Throws<ModelLoadException>(() => HuggingFaceModelDirectory.Open(_dir.Path));
        Assert.Equal(_dir.Path, ex.FilePath);
        Assert.Contains("no weights", ex.Message);
    }

    [Fact]
    public void MissingShardIsNamed()
    {
        WriteModel(ConfigSamples.Tiny(), sharded: true);
        File.Delete(_dir.File("model-00001-of-00002.safetensors"));
        var ex = Assert.Throws<ModelLoadException>(() => HuggingFaceModelDirectory.Open(_dir.Path));
        Assert.Equal(_dir.File("model-00001-of-00002.safetensors"), ex.FilePath);
    }

    [Fact]
    public void MissingDirectoryIsNamed()
    {
        string path = _dir.File("nope");
        var ex = Assert.Throws<ModelLoadException>(() => HuggingFaceModelDirectory.Open(path));
        Assert.Equal(path, ex.FilePath);
        Assert.Contains("does not exist", ex.Message);
    }
}
