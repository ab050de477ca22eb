using System.Globalization;

namespace Disagg.Tokenization;

/// <summary>
/// Finds added tokens in text the way HF's AddedVocabulary does: leftmost-longest, non-overlapping matches, then
/// the <c>single_word</c>, <c>lstrip</c> and <c>rstrip</c> rules. The input is cut into pieces that are either an
/// added token or text for the normalizer/model.
/// </summary>
internal sealed class AddedTokenMatcher
{
    // Candidates by first character, longest first, so the first hit at a position is the longest match.
    private readonly Dictionary<char, AddedToken[]> _byFirstChar;

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens)
    {
        _byFirstChar = tokens
            .Where(t => t.Content.Length > 0)
            .GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());
    }

    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <summary>
    /// Appends the pieces of <paramref name="text"/>: (start, length, token) where token is null for plain text.
    /// Together the pieces cover the text in order.
    /// </summary>
    public void Split(string text, List<(int Start, int Length, AddedToken? Token)> pieces)
    {
        int emitted = 0;
        int position = 0;
        while (position < text.Length)
        {
            var match = LongestAt(text, position);
            if (match is null)
            {
                position++;
                continue;
            }
            int start = position;
            int stop = position + match.Content.Length;
            // Matches are non-overlapping whatever the rules below decide, as with HF's Aho-Corasick iterator.
            position = stop;
            if (match.SingleWord && (EndsWithWord(text.AsSpan(0, start)) || StartsWithWord(text.AsSpan(stop)))) continue;
            if (match.LeftStrip)
            {
                while (start > emitted && IsWhiteSpace(text, start - 1)) start--;
            }
            if (match.RightStrip)
            {
                while (stop < text.Length && IsWhiteSpace(text, stop)) stop++;
            }
            if (start > emitted) pieces.Add((emitted, start - emitted, null));
            pieces.Add((start, stop - start, match));
            emitted = stop;
            position = stop;
        }
        if (emitted < text.Length) pieces.Add((emitted, text.Length - emitted, null));
    }

    private AddedToken? LongestAt(string text, int position)
    {
        if (!_byFirstChar.TryGetValue(text[position], out var candidates)) return null;
        foreach (var candidate in candidates)
        {
            if (text.AsSpan(position).StartsWith(candidate.Content, StringComparison.Ordinal)) return candidate;
        }
        return null;
    }

    private static bool IsWhiteSpace(string text, int index) => char.IsWhiteSpace(text[index]);

    // HF tests these with the regexes \w$ and ^\w (Unicode word characters).
    private static bool EndsWithWord(ReadOnlySpan<char> text) => !text.IsEmpty && IsWordChar(text, text.Length - 1, fromEnd: true);

    private static bool StartsWithWord(ReadOnlySpan<char> text) => !text.IsEmpty && IsWordChar(text, 0, fromEnd: false);

    private static bool IsWordChar(ReadOnlySpan<char> text, int index, bool fromEnd)
    {
        int codePoint = text[index];
        if (fromEnd && index > 0 && char.IsLowSurrogate(text[index]) && char.IsHighSurrogate(text[index - 1])) codePoint = char.ConvertToUtf32(text[index - 1], text[index]);
        else if (!fromEnd && char.IsHighSurrogate(text[index]) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1])) codePoint = char.ConvertToUtf32(text[index], text[index + 1]);
        var category = CharUnicodeInfo.GetUnicodeCategory(codePoint);
        return codePoint == '_' || category is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter
            or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter
            or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.ConnectorPunctuation;
    }
}
