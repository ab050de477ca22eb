namespace Disagg.Cuda.Loading;

/// <summary>
/// A local Hugging Face model directory (as <c>huggingface-cli download</c> or <c>save_pretrained</c> leaves it):
/// config.json, safetensors weights (single or sharded), optional generation_config.json and tokenizer files.
/// Opening it reads and validates the configs and checks that the weight files exist; nothing is fetched from the network.
/// </summary>
public sealed class HuggingFaceModelDirectory
{
    /// <summary>The fast-tokenizer file name.</summary>
    public const string TokenizerFileName = "tokenizer.json";

    /// <summary>The tokenizer settings file name (special tokens, chat template).</summary>
    public const string TokenizerConfigFileName = "tokenizer_config.json";

    private HuggingFaceModelDirectory(string directoryPath, ModelConfig config, GenerationConfig? generationConfig, SafetensorsIndex? index, IReadOnlyList<string> weightFiles)
    {
        DirectoryPath = directoryPath;
        Config = config;
        GenerationConfig = generationConfig;
        WeightIndex = index;
        WeightFiles = weightFiles;
        TokenizerPath = ExistingFile(TokenizerFileName);
        TokenizerConfigPath = ExistingFile(TokenizerConfigFileName);
    }

    /// <summary>Full path of the directory.</summary>
    public string DirectoryPath { get; }

    /// <summary>The model's config.json.</summary>
    public ModelConfig Config { get; }

    /// <summary>The model's generation_config.json, or null when the directory has none.</summary>
    public GenerationConfig? GenerationConfig { get; }

    /// <summary>The weight index of a sharded checkpoint, or null for a single model.safetensors.</summary>
    public SafetensorsIndex? WeightIndex { get; }

    /// <summary>Full paths of the weight files (all of which exist).</summary>
    public IReadOnlyList<string> WeightFiles { get; }

    /// <summary>Full path of tokenizer.json, or null when the directory has none.</summary>
    public string? TokenizerPath { get; }

    /// <summary>Full path of tokenizer_config.json, or null when the directory has none.</summary>
    public string? TokenizerConfigPath { get; }

    /// <summary>Whether the directory has a tokenizer.json.</summary>
    public bool HasTokenizer => TokenizerPath is not null;

    /// <summary>The tensors the config requires, with their shapes.</summary>
    public IReadOnlyList<ExpectedTensor> ExpectedTensors => ModelWeightLayout.ExpectedTensors(Config);

    /// <summary>Opens <paramref name="directory"/>.</summary>
    /// <exception cref="ModelLoadException">
    /// The directory, config.json or the weights are missing, a config is invalid or unsupported, or a shard is missing.
    /// </exception>
    public static HuggingFaceModelDirectory Open(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string fullPath = Path.GetFullPath(directory);
        if (!Directory.Exists(fullPath)) throw new ModelLoadException(fullPath, "the model directory does not exist.");

        string configPath = Path.Combine(fullPath, ModelConfig.FileName);
        if (!File.Exists(configPath))
        {
            throw new ModelLoadException(configPath, $"the model directory has no {ModelConfig.FileName}.");
        }
        var config = ModelConfig.Load(configPath);
        var generationConfig = GenerationConfig.TryLoadFromDirectory(fullPath);

        // Locating the weights this way checks that every shard exists without mapping any of them.
        using var checkpoint = SafetensorsCheckpoint.Open(fullPath);
        return new HuggingFaceModelDirectory(fullPath, config, generationConfig, checkpoint.Index, [.. checkpoint.FilePaths]);
    }

    /// <summary>Opens the weights. The caller owns (and disposes) the result.</summary>
    public SafetensorsCheckpoint OpenCheckpoint() =>
        WeightIndex is { } index ? SafetensorsCheckpoint.Open(index) : SafetensorsCheckpoint.OpenFile(WeightFiles[0]);

    /// <summary>Opens the weights and checks them against <see cref="ExpectedTensors"/>. The caller owns the result.</summary>
    /// <exception cref="ModelLoadException">A required tensor is missing, misshapen or of an unsupported dtype.</exception>
    public SafetensorsCheckpoint OpenValidatedCheckpoint()
    {
        var checkpoint = OpenCheckpoint();
        try
        {
            ModelWeightLayout.Validate(Config, checkpoint);
            return checkpoint;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    private string? ExistingFile(string name)
    {
        string path = Path.Combine(DirectoryPath, name);
        return File.Exists(path) ? path : null;
    }
}
