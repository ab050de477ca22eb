namespace Disagg;

/// <summary>
/// How the next token is chosen, and when generation stops. Immutable; validate with <see cref="Validate"/>
/// (engines call it on admission, so an invalid value fails the request before any work is done).
/// </summary>
public sealed record SamplingParameters
{
    /// <summary>Greedy decoding (temperature 0) with the default token limit.</summary>
    public static SamplingParameters Greedy { get; } = new() { Temperature = 0f };

    /// <summary>Softmax temperature. 0 selects the most likely token (greedy). Must be in [0, 100].</summary>
    public float Temperature { get; init; } = 1f;

    /// <summary>Keep only the <c>TopK</c> most likely tokens; 0 disables the filter.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches <c>TopP</c>; 1 disables it. Must be in (0, 1].</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Min-p: drop candidates less likely than <c>MinP</c> times the most likely one (after top-k and top-p, as
    /// Hugging Face applies it); 0 disables it. Must be in [0, 1].</summary>
    public float MinP { get; init; }

    /// <summary>Repetition penalty (the CTRL paper's, as Hugging Face and vLLM apply it): the logit of every token already in
    /// the prompt or the output is divided by it when positive and multiplied by it when not. 1 disables it; above 1
    /// discourages repeats. Must be in (0, 100].</summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>Presence penalty (OpenAI's): subtracted once from the logit of every token the output already holds. 0
    /// disables it. Must be in [-2, 2].</summary>
    public float PresencePenalty { get; init; }

    /// <summary>Frequency penalty (OpenAI's): subtracted from a token's logit once per time the output already holds it. 0
    /// disables it. Must be in [-2, 2].</summary>
    public float FrequencyPenalty { get; init; }

    /// <summary>Seed of the request's random stream. The same seed, prompt and parameters give the same tokens on every engine and device.
    /// <see langword="null"/> draws a seed at random.</summary>
    public ulong? Seed { get; init; }

    /// <summary>The most tokens to generate, the first one included. At least 1.</summary>
    public int MaxTokens { get; init; } = 256;

    /// <summary>Token ids that end generation (typically the model's end-of-sequence tokens). The stop token is reported, not hidden.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>Strings that end generation when the decoded text contains them. Needs a tokenizer; engines without one ignore them.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Keep generating past the model's end-of-sequence token (benchmarks use this to fix the output length).</summary>
    public bool IgnoreEndOfSequence { get; init; }

    /// <summary>True when the next token is always the most likely one.</summary>
    public bool IsGreedy => Temperature == 0f || TopK == 1;

    /// <summary>True when a penalty changes logits by the tokens the sequence already holds (greedy decoding then takes the
    /// argmax of the penalized logits).</summary>
    public bool HasPenalties => RepetitionPenalty != 1f || PresencePenalty != 0f || FrequencyPenalty != 0f;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid parameter.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0f && Temperature <= 100f))
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "Temperature must be in [0, 100].");
        if (TopK < 0)
            throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "TopK must be 0 (disabled) or positive.");
        if (!(TopP > 0f && TopP <= 1f))
            throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "TopP must be in (0, 1].");
        if (!(MinP >= 0f && MinP <= 1f))
            throw new ArgumentOutOfRangeException(nameof(MinP), MinP, "MinP must be in [0, 1].");
        if (!(RepetitionPenalty > 0f && RepetitionPenalty <= 100f))
            throw new ArgumentOutOfRangeException(nameof(RepetitionPenalty), RepetitionPenalty, "RepetitionPenalty must be in (0, 100].");
        if (!(PresencePenalty >= -2f && PresencePenalty <= 2f))
            throw new ArgumentOutOfRangeException(nameof(PresencePenalty), PresencePenalty, "PresencePenalty must be in [-2, 2].");
        if (!(FrequencyPenalty >= -2f && FrequencyPenalty <= 2f))
            throw new ArgumentOutOfRangeException(nameof(FrequencyPenalty), FrequencyPenalty, "FrequencyPenalty must be in [-2, 2].");
        if (MaxTokens < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxTokens), MaxTokens, "MaxTokens must be at least 1.");
        ArgumentNullException.ThrowIfNull(StopTokenIds);
        ArgumentNullException.ThrowIfNull(StopStrings);
        foreach (var id in StopTokenIds)
            if (id < 0) throw new ArgumentOutOfRangeException(nameof(StopTokenIds), id, "Stop token ids must be non-negative.");
        foreach (var s in StopStrings)
            if (string.IsNullOrEmpty(s)) throw new ArgumentException("Stop strings must be non-empty.", nameof(StopStrings));
    }
}
