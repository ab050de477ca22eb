namespace Disagg;

/// <summary>Why a sequence stopped generating.</summary>
public enum FinishReason
{
    /// <summary>A stop token (end of sequence) was generated.</summary>
    StopToken,
    /// <summary>A stop string appeared in the generated text.</summary>
    StopString,
    /// <summary><see cref="SamplingParameters.MaxTokens"/> tokens were generated.</summary>
    MaxTokens,
    /// <summary>The sequence reached the model's context length.</summary>
    ContextLength,
    /// <summary>The caller cancelled the request.</summary>
    Cancelled,
}
