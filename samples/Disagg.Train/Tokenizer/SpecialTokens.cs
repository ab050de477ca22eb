namespace Disagg.Train.Tokenizer;

/// <summary>The added tokens of the demo tokenizer, placed after the learned vocabulary (as Qwen places them).</summary>
internal static class SpecialTokens
{
    /// <summary>Ends every training document; also the padding token.</summary>
    public const string EndOfText = "<|endoftext|>";

    /// <summary>Opens a ChatML message.</summary>
    public const string ImStart = "<|im_start|>";

    /// <summary>Closes a ChatML message: generation of an answer stops here.</summary>
    public const string ImEnd = "<|im_end|>";

    public static IReadOnlyList<string> All { get; } = [EndOfText, ImStart, ImEnd];
}
