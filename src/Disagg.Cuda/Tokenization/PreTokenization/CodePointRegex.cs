using System.Buffers;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Disagg.Tokenization;

/// <summary>
/// A .NET regex that behaves like HF's Oniguruma regex on text with characters outside the BMP.
/// </summary>
/// <remarks>
/// .NET matches UTF-16 code units, so a surrogate pair is two "characters" of category Cs: <c>\p{L}+</c> misses
/// astral letters and <c>[^\r\n\p{L}\p{N}]?</c> can swallow half of an emoji. Oniguruma matches code points. To get
/// Oniguruma's answer, text with surrogate pairs is matched in a shadow copy where each astral code point is replaced
/// by one BMP stand-in of the same Unicode general category (the tokenizer patterns only test categories, \s and BMP
/// literals), and match boundaries are mapped back to the original text.
/// </remarks>
internal sealed class CodePointRegex
{
    private static readonly char[] s_standIns = BuildStandIns();
    private readonly Regex _regex;

    public CodePointRegex(string pattern)
    {
        // Oniguruma's case folding is culture-free; the timeout keeps a pathological pattern from hanging a request.
        _regex = new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled, TimeSpan.FromSeconds(10));
    }

    /// <summary>
    /// Appends the pieces of HF's <c>Split</c> with behavior <c>Isolated</c>: each match is a piece and so is each gap
    /// between matches. Pieces are (start, length) in <paramref name="text"/>; empty matches are ignored.
    /// </summary>
    public void SplitIsolated(ReadOnlySpan<char> text, List<(int Start, int Length)> pieces)
    {
        if (text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            AddPieces(text, pieces, map: default);
            return;
        }

        char[] shadow = ArrayPool<char>.Shared.Rent(text.Length);
        int[] map = ArrayPool<int>.Shared.Rent(text.Length + 1);
        try
        {
            int n = 0;
            for (int i = 0; i < text.Length; i++, n++)
            {
                map[n] = i;
                if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    var category = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]));
                    shadow[n] = s_standIns[(int)category];
                    i++;
                }
                else
                {
                    shadow[n] = text[i];
                }
            }
            map[n] = text.Length;
            AddPieces(shadow.AsSpan(0, n), pieces, map.AsSpan(0, n + 1));
        }
        finally
        {
            ArrayPool<char>.Shared.Return(shadow);
            ArrayPool<int>.Shared.Return(map);
        }
    }

    private void AddPieces(ReadOnlySpan<char> text, List<(int Start, int Length)> pieces, ReadOnlySpan<int> map)
    {
        int end = 0;
        foreach (var match in _regex.EnumerateMatches(text))
        {
            if (match.Length == 0) continue;
            int start = match.Index;
            if (start > end) Add(pieces, map, end, start);
            Add(pieces, map, start, start + match.Length);
            end = start + match.Length;
        }
        if (end < text.Length) Add(pieces, map, end, text.Length);
    }

    private static void Add(List<(int, int)> pieces, ReadOnlySpan<int> map, int start, int end)
    {
        if (!map.IsEmpty)
        {
            start = map[start];
            end = map[end];
        }
        pieces.Add((start, end - start));
    }

    /// <summary>For each general category, a BMP character of that category from outside ASCII/Latin-1.</summary>
    private static char[] BuildStandIns()
    {
        var standIns = new char[32];
        var found = new bool[32];
        for (int c = 0x100; c < 0x10000; c++)
        {
            if (c is >= 0xD800 and <= 0xDFFF) continue;
            int category = (int)CharUnicodeInfo.GetUnicodeCategory((char)c);
            if (!found[category])
            {
                found[category] = true;
                standIns[category] = (char)c;
            }
        }
        // Categories with no BMP member past Latin-1 (none today) fall back to an unassigned code point.
        for (int i = 0; i < standIns.Length; i++) if (!found[i]) standIns[i] = '\u0378';
        return standIns;
    }
}
