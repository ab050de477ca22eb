using System.Text.RegularExpressions;

namespace Disagg.Train.Tokenizer;

/// <summary>
/// Splits text into the pieces BPE merges within, with Llama 3's pattern: contractions, words with one leading
/// non-letter, digits in threes, punctuation runs, newlines and spaces. The same pattern goes into tokenizer.json as a
/// <c>Split</c> pre-tokenizer, so HF tokenizers and Disagg's loader split the same way. (The corpus is ASCII; for
/// ASCII .NET's and Rust's regex classes agree.)
/// </summary>
internal static partial class PreTokenizer
{
    public const string Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>The pieces of <paramref name="text"/>, in order; together they are the whole text.</summary>
    public static IEnumerable<string> Split(string text)
    {
        int end = 0;
        foreach (Match match in Regex().Matches(text))
        {
            if (match.Index > end) yield return text[end..match.Index]; // the pattern leaves no gaps, but keep any whole
            yield return match.Value;
            end = match.Index + match.Length;
        }
        if (end < text.Length) yield return text[end..];
    }

    [GeneratedRegex(Pattern)]
    private static partial Regex Regex();
}
