using System.Buffers;

namespace Disagg.Tokenization;

/// <summary>When HF's <c>Metaspace</c> prefixes the replacement character to a piece.</summary>
internal enum PrependScheme
{
    /// <summary>Every piece that does not already start with it.</summary>
    Always,

    /// <summary>Only the piece at the very start of the input (not pieces after an added token).</summary>
    First,

    /// <summary>Never.</summary>
    Never,
}

/// <summary>
/// HF <c>Metaspace</c> pre-tokenizer (SentencePiece style): spaces become the replacement character ("▁"), a
/// replacement is prefixed per <see cref="PrependScheme"/> unless the piece already starts with one, and with
/// <c>split</c> each replacement starts a new piece.
/// </summary>
internal sealed class MetaspacePreTokenizer(char replacement, PrependScheme scheme, bool split) : PreTokenizerStep
{
    public override void Process(ReadOnlySpan<char> piece, bool atTextStart, PreTokenizedSink sink, int nextStep)
    {
        char[] rented = ArrayPool<char>.Shared.Rent(piece.Length + 1);
        try
        {
            // The prefix test looks at the text after spaces were replaced, as HF does.
            bool startsWithReplacement = piece[0] is ' ' || piece[0] == replacement;
            bool prepend = !startsWithReplacement && (scheme == PrependScheme.Always || (scheme == PrependScheme.First && atTextStart));
            int length = 0;
            if (prepend) rented[length++] = replacement;
            piece.Replace(rented.AsSpan(length), ' ', replacement);
            length += piece.Length;
            var text = rented.AsSpan(0, length);
            if (!split)
            {
                sink.Continue(text, atTextStart, nextStep);
                return;
            }
            // Split with MergedWithNext: every replacement character starts a new piece.
            int start = 0;
            for (int i = 1; i <= text.Length; i++)
            {
                if (i == text.Length || text[i] == replacement)
                {
                    sink.Continue(text[start..i], atTextStart && start == 0, nextStep);
                    start = i;
                }
            }
        }
        finally
        {
            ArrayPool<char>.Shared.Return(rented);
        }
    }
}
