namespace Disagg.Cuda.Loading;

/// <summary>
/// The model's default generation settings from <c>generation_config.json</c>. Every field is optional; null means the
/// file does not say.
/// </summary>
public sealed record GenerationConfig
{
    /// <summary>The file name Hugging Face uses.</summary>
    public const string FileName = "generation_config.json";

    /// <summary>A configuration that states nothing.</summary>
    public static GenerationConfig Empty { get; } = new();

    /// <summary>Beginning-of-sequence token ids (empty if unstated).</summary>
    public IReadOnlyList<int> BosTokenIds { get; init; } = [];

    /// <summary>End-of-sequence token ids; generation stops at any of them (empty if unstated).</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>Padding token id.</summary>
    public int? PadTokenId { get; init; }

    /// <summary>Whether to sample (true) or decode greedily (false).</summary>
    public bool? DoSample { get; init; }

    /// <summary>Sampling temperature.</summary>
    public double? Temperature { get; init; }

    /// <summary>Keep only the k most likely tokens (0 disables).</summary>
    public int? TopK { get; init; }

    /// <summary>Keep the smallest set of tokens whose probability reaches p.</summary>
    public double? TopP { get; init; }

    /// <summary>Drop tokens less likely than this fraction of the most likely one.</summary>
    public double? MinP { get; init; }

    /// <summary>Penalty for tokens already in the sequence (1 disables).</summary>
    public double? RepetitionPenalty { get; init; }

    /// <summary>Most tokens to generate.</summary>
    public int? MaxNewTokens { get; init; }

    /// <summary>Most tokens in prompt plus output.</summary>
    public int? MaxLength { get; init; }

    /// <summary>
    /// The sampling defaults this file states, laid over <paramref name="defaults"/>: <c>temperature</c>, <c>top_k</c>,
    /// <c>top_p</c>, <c>min_p</c> and <c>repetition_penalty</c> where present, and greedy decoding (temperature 0) where
    /// <c>do_sample</c> is false, as Hugging Face reads it. Token limits (<c>max_new_tokens</c>, <c>max_length</c>) are left
    /// to the host: a model's file should not decide how long a server's replies may be.
    /// </summary>
    public SamplingParameters ApplyTo(SamplingParameters defaults)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        var sampling = defaults;
        if (DoSample == false) sampling = sampling with { Temperature = 0f };
        else if (Temperature is { } temperature) sampling = sampling with { Temperature = (float)temperature };
        if (TopK is { } topK) sampling = sampling with { TopK = topK };
        if (TopP is { } topP and > 0) sampling = sampling with { TopP = (float)topP }; // top_p 0 in some files means "off"
        if (MinP is { } minP) sampling = sampling with { MinP = (float)minP };
        if (RepetitionPenalty is { } repetition) sampling = sampling with { RepetitionPenalty = (float)repetition };
        return sampling;
    }

    /// <summary>Reads a generation_config.json.</summary>
    /// <exception cref="ModelLoadException">Missing file, bad JSON, or a field of the wrong type or out of range.</exception>
    public static GenerationConfig Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = Path.GetFullPath(path);
        using var document = JsonFile.ReadObject(fullPath);
        var fields = new JsonFields(fullPath, document.RootElement);
        var config = new GenerationConfig
        {
            BosTokenIds = fields.TokenIds("bos_token_id"),
            EosTokenIds = fields.TokenIds("eos_token_id"),
            PadTokenId = fields.OptionalInt("pad_token_id"),
            DoSample = fields.OptionalBool("do_sample"),
            Temperature = fields.OptionalDouble("temperature"),
            TopK = fields.OptionalInt("top_k"),
            TopP = fields.OptionalDouble("top_p"),
            MinP = fields.OptionalDouble("min_p"),
            RepetitionPenalty = fields.OptionalDouble("repetition_penalty"),
            MaxNewTokens = fields.OptionalInt("max_new_tokens"),
            MaxLength = fields.OptionalInt("max_length"),
        };
        if (config.Temperature is < 0 or > 100) throw fields.Invalid("temperature", $"must lie in [0, 100], but is {config.Temperature}.");
        if (config.TopK is < 0) throw fields.Invalid("top_k", $"must not be negative, but is {config.TopK}.");
        if (config.TopP is < 0 or > 1) throw fields.Invalid("top_p", $"must lie in [0, 1], but is {config.TopP}.");
        if (config.MinP is < 0 or > 1) throw fields.Invalid("min_p", $"must lie in [0, 1], but is {config.MinP}.");
        if (config.RepetitionPenalty is <= 0 or > 100) throw fields.Invalid("repetition_penalty", $"must lie in (0, 100], but is {config.RepetitionPenalty}.");
        if (config.MaxNewTokens is < 0) throw fields.Invalid("max_new_tokens", $"must not be negative, but is {config.MaxNewTokens}.");
        if (config.MaxLength is < 0) throw fields.Invalid("max_length", $"must not be negative, but is {config.MaxLength}.");
        return config;
    }

    /// <summary>Reads <c>generation_config.json</c> from <paramref name="directory"/>, or returns null when it has none.</summary>
    /// <exception cref="ModelLoadException">The file exists but is invalid.</exception>
    public static GenerationConfig? TryLoadFromDirectory(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string path = Path.Combine(directory, FileName);
        return File.Exists(path) ? Load(path) : null;
    }
}
