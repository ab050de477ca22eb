using System.Text;

namespace Disagg.Tokenization;

/// <summary>
/// One step of a tokenizer.json <c>normalizer</c>, applied to each piece of raw text that lies between added tokens.
/// Only the steps that the supported model families use are implemented; offsets are not tracked because encoding
/// here only produces ids.
/// </summary>
internal abstract class TextNormalizer
{
    public abstract string Normalize(string text);

    /// <summary>Runs each step in order, as HF's <c>Sequence</c> normalizer does.</summary>
    public sealed class Sequence(IReadOnlyList<TextNormalizer> steps) : TextNormalizer
    {
        public override string Normalize(string text)
        {
            foreach (var step in steps) text = step.Normalize(text);
            return text;
        }
    }

    /// <summary>HF <c>Prepend</c>: prefixes non-empty text (SentencePiece's dummy-prefix "▁").</summary>
    public sealed class Prepend(string prefix) : TextNormalizer
    {
        public override string Normalize(string text) => text.Length == 0 ? text : prefix + text;
    }

    /// <summary>HF <c>Replace</c> with a literal pattern: every non-overlapping occurrence, left to right.</summary>
    public sealed class Replace(string pattern, string content) : TextNormalizer
    {
        public override string Normalize(string text) => text.Replace(pattern, content, StringComparison.Ordinal);
    }

    /// <summary>HF <c>NFC</c>/<c>NFD</c>/<c>NFKC</c>/<c>NFKD</c>.</summary>
    public sealed class Unicode(NormalizationForm form) : TextNormalizer
    {
        // Input has no lone surrogates (ModelTokenizer replaces them first). Of the scalar values, .NET's normalization refuses
        // only U+FFFE (every scalar value was tried), a noncharacter with no decomposition, which the Unicode forms leave as
        // it is. It is a starter that composes with nothing, so normalizing the runs between its occurrences gives what
        // normalizing the whole would. Not compared with HF here: no golden text holds it.
        public override string Normalize(string text) =>
            text.Contains('\uFFFE') ? string.Join('\uFFFE', text.Split('\uFFFE').Select(NormalizeRun)) : NormalizeRun(text);

        private string NormalizeRun(string text) => text.IsNormalized(form) ? text : text.Normalize(form);
    }
}
