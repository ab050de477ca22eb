namespace Disagg.Tokenization;

/// <summary>
/// The single-sequence form of tokenizer.json's <c>post_processor</c>: the special token ids placed before and
/// after the encoded text when special tokens are requested (Llama's BOS; nothing for Qwen's ByteLevel processor).
/// </summary>
internal sealed record SpecialTokenTemplate(IReadOnlyList<int> Prefix, IReadOnlyList<int> Suffix)
{
    public static SpecialTokenTemplate None { get; } = new([], []);
}
