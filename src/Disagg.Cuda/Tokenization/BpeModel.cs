using System.Collections.Concurrent;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace Disagg.Tokenization;

/// <summary>
/// The BPE model of a tokenizer.json: turns one pre-tokenized word into ids.
/// </summary>
/// <remarks>
/// The merge loop itself is Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> (same rank-ordered merging as HF).
/// Two HF features it lacks are added here:
/// <list type="bullet">
/// <item><c>ignore_merges</c>: a word that is itself in the vocabulary is emitted whole without merging.</item>
/// <item><c>byte_fallback</c>: a character missing from the vocabulary becomes the <c>&lt;0xXX&gt;</c> tokens of its
/// UTF-8 bytes. The inner tokenizer is given the unknown token with fusing off, so each unknown character comes back
/// as one unknown token with its offset, which is then expanded to byte tokens. This equals HF exactly because the
/// loader rejects vocabularies where merges involve the unknown or byte tokens.</item>
/// </list>
/// Results per word are cached (the inner tokenizer allocates a list per call), so common words cost one lookup.
/// <para>
/// SentencePiece-style tokenizers have no pre-tokenizer, so a whole prompt is one "word", and the inner merge loop
/// is quadratic in word length (it compacts its symbol list one removal at a time). When no merge can produce a
/// token with a "▁" after another character, no merge can cross the start of a run of "▁", so long words are cut
/// there and merged piece by piece, with identical results.
/// </para>
/// </remarks>
internal sealed class BpeModel
{
    private const int MaxCachedWordLength = 64;
    private const int MaxCacheEntries = 100_000;
    private const char MetaspaceChar = '\u2581';

    private readonly BpeTokenizer _inner;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocab;
    private readonly bool _ignoreMerges;
    private readonly int _unknownId;
    private readonly int[]? _byteIds;
    private readonly bool _splitAtMetaspaceRuns;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheLookup;

    /// <param name="inner">The merge engine, built without pre-tokenizer, normalizer or special tokens.</param>
    /// <param name="vocabulary">The model vocabulary.</param>
    /// <param name="ignoreMerges">HF <c>ignore_merges</c>.</param>
    /// <param name="unknownId">Id of the unknown token, or -1.</param>
    /// <param name="byteIds">For byte fallback, the id of <c>&lt;0xXX&gt;</c> for each byte; null without byte fallback.</param>
    /// <param name="mergedTokens">The tokens the merges produce.</param>
    public BpeModel(BpeTokenizer inner, Dictionary<string, int> vocabulary, bool ignoreMerges, int unknownId, int[]? byteIds, IEnumerable<string> mergedTokens)
    {
        _splitAtMetaspaceRuns = !mergedTokens.Any(HasMetaspaceAfterOtherChar);
        _inner = inner;
        _vocab = vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
        _ignoreMerges = ignoreMerges;
        _unknownId = unknownId;
        _byteIds = byteIds;
        _cacheLookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public BpeTokenizer Inner => _inner;

    /// <summary>Appends the ids of <paramref name="word"/> to <paramref name="output"/>.</summary>
    public void EncodeWord(ReadOnlySpan<char> word, List<int> output)
    {
        if (_ignoreMerges && _vocab.TryGetValue(word, out int whole))
        {
            output.Add(whole);
            return;
        }
        if (_splitAtMetaspaceRuns && word.Length > MaxCachedWordLength)
        {
            int start = 0;
            for (int i = 1; i < word.Length; i++)
            {
                if (word[i] == MetaspaceChar && word[i - 1] != MetaspaceChar)
                {
                    EncodeChunk(word[start..i], output);
                    start = i;
                }
            }
            EncodeChunk(word[start..], output);
            return;
        }
        EncodeChunk(word, output);
    }

    /// <summary>Merges one piece of a word; ignore_merges does not apply to pieces, only to whole words.</summary>
    private void EncodeChunk(ReadOnlySpan<char> word, List<int> output)
    {
        if (_cacheLookup.TryGetValue(word, out int[]? cached))
        {
            output.AddRange(cached);
            return;
        }

        int before = output.Count;
        var ids = _inner.EncodeToIds(word, considerPreTokenization: false, considerNormalization: false);
        if (_byteIds is not null && _unknownId >= 0 && ids.Contains(_unknownId)) ExpandUnknownToBytes(word, output);
        else output.AddRange(ids);

        if (word.Length <= MaxCachedWordLength)
        {
            // A full cache is cleared rather than evicted piecemeal: simple, and rare words refill it cheaply.
            if (_cache.Count >= MaxCacheEntries) _cache.Clear();
            _cacheLookup.TryAdd(word, output.GetRange(before, output.Count - before).ToArray());
        }
    }

    private static bool HasMetaspaceAfterOtherChar(string token)
    {
        for (int i = 1; i < token.Length; i++)
        {
            if (token[i] == MetaspaceChar && token[i - 1] != MetaspaceChar) return true;
        }
        return false;
    }

    private void ExpandUnknownToBytes(ReadOnlySpan<char> word, List<int> output)
    {
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var token in _inner.EncodeToTokens(word, out _, considerPreTokenization: false, considerNormalization: false))
        {
            if (token.Id != _unknownId)
            {
                output.Add(token.Id);
                continue;
            }
            var (offset, length) = token.Offset.GetOffsetAndLength(word.Length);
            int count = Encoding.UTF8.GetBytes(word.Slice(offset, length), utf8);
            for (int i = 0; i < count; i++) output.Add(_byteIds![utf8[i]]);
        }
    }
}
