using System.Text;

namespace Disagg.Train.Tokenizer;

/// <summary>
/// Learns byte-level BPE merges from text (Microsoft.ML.Tokenizers reads and runs BPE vocabularies but cannot train one).
/// The text is cut at special-token texts and pre-tokenized; each distinct piece is counted once with its frequency.
/// Each round merges the most frequent adjacent pair of symbols (ties: the smaller left id, then the smaller right id,
/// so training is deterministic) until the vocabulary is full or no pair occurs twice. Pair counts are updated only for
/// the pieces a merge touches.
/// </summary>
internal static class BpeTrainer
{
    public static BpeVocabulary Train(IEnumerable<string> texts, int vocabularySize, IReadOnlyList<string> specialTokens)
    {
        int learnedTokens = vocabularySize - specialTokens.Count;
        if (learnedTokens < 256) throw new ArgumentOutOfRangeException(nameof(vocabularySize), vocabularySize, "Too small for the 256 bytes and the special tokens.");

        var (words, frequencies) = CountPieces(texts, specialTokens);
        var pairCounts = new Dictionary<(int, int), long>();
        var pairWords = new Dictionary<(int, int), HashSet<int>>();
        for (int w = 0; w < words.Count; w++) AddPairs(words[w], w, frequencies[w], pairCounts, pairWords);

        var merges = new List<(int, int, int)>();
        var tokens = new Dictionary<string, int>(StringComparer.Ordinal);
        var tokenBytes = new List<byte[]>();
        for (int b = 0; b < 256; b++) tokenBytes.Add([(byte)b]);
        while (tokenBytes.Count < learnedTokens)
        {
            var best = (Left: -1, Right: -1);
            long bestCount = 1;
            foreach (var (pair, count) in pairCounts)
            {
                if (count > bestCount || (count == bestCount && best.Left >= 0 && pair.CompareTo(best) < 0)) (best, bestCount) = (pair, count);
            }
            if (best.Left < 0) break; // no pair occurs twice: more merges would only memorise single pieces

            byte[] joined = [.. tokenBytes[best.Left], .. tokenBytes[best.Right]];
            string key = Convert.ToHexString(joined);
            if (!tokens.TryGetValue(key, out int merged))
            {
                tokens[key] = merged = tokenBytes.Count;
                tokenBytes.Add(joined);
            }
            merges.Add((best.Left, best.Right, merged));
            foreach (int w in pairWords[best].ToArray())
            {
                RemovePairs(words[w], w, frequencies[w], pairCounts, pairWords);
                BpeVocabulary.ApplyMerge(words[w], best, merged);
                AddPairs(words[w], w, frequencies[w], pairCounts, pairWords);
            }
        }
        return new BpeVocabulary(merges, specialTokens);
    }

    private static (List<List<int>> Words, List<long> Frequencies) CountPieces(IEnumerable<string> texts, IReadOnlyList<string> specialTokens)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string text in texts)
        {
            foreach (string segment in text.Split([.. specialTokens], StringSplitOptions.None))
            {
                foreach (string piece in PreTokenizer.Split(segment)) counts[piece] = counts.GetValueOrDefault(piece) + 1;
            }
        }
        var words = new List<List<int>>(counts.Count);
        var frequencies = new List<long>(counts.Count);
        foreach (var (piece, count) in counts.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            words.Add([.. Encoding.UTF8.GetBytes(piece).Select(b => (int)b)]);
            frequencies.Add(count);
        }
        return (words, frequencies);
    }

    private static void AddPairs(List<int> word, int index, long frequency, Dictionary<(int, int), long> counts, Dictionary<(int, int), HashSet<int>> words)
    {
        for (int i = 0; i + 1 < word.Count; i++)
        {
            var pair = (word[i], word[i + 1]);
            counts[pair] = counts.GetValueOrDefault(pair) + frequency;
            if (!words.TryGetValue(pair, out var set)) words[pair] = set = [];
            set.Add(index);
        }
    }

    private static void RemovePairs(List<int> word, int index, long frequency, Dictionary<(int, int), long> counts, Dictionary<(int, int), HashSet<int>> words)
    {
        for (int i = 0; i + 1 < word.Count; i++)
        {
            var pair = (word[i], word[i + 1]);
            long left = counts[pair] - frequency;
            if (left == 0) counts.Remove(pair);
            else counts[pair] = left;
            words[pair].Remove(index);
        }
    }
}
