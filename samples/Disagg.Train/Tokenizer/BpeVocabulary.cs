using System.Text;

namespace Disagg.Train.Tokenizer;

/// <summary>
/// A trained byte-level BPE: ids 0..255 are the bytes, each merge that makes a new byte string adds the next id (one
/// that rebuilds an existing token's bytes from another pair yields that token, as HF's trainer does), and the special
/// tokens follow.
/// <see cref="Encode"/> is the textbook algorithm (merge the lowest-ranked adjacent pair, leftmost first, until none is
/// left), the reference the tests hold HF's and Disagg's tokenizers to.
/// </summary>
internal sealed class BpeVocabulary
{
    private readonly Dictionary<(int Left, int Right), int> _rank = [];

    public BpeVocabulary(IReadOnlyList<(int Left, int Right, int Result)> merges, IReadOnlyList<string> specialTokens)
    {
        Merges = merges;
        SpecialTokens = specialTokens;
        var bytes = new List<byte[]>(256 + merges.Count);
        for (int b = 0; b < 256; b++) bytes.Add([(byte)b]);
        for (int i = 0; i < merges.Count; i++)
        {
            var (left, right, result) = merges[i];
            if (left >= bytes.Count || right >= bytes.Count || result > bytes.Count) throw new ArgumentException($"Merge {i} uses an id not yet defined.", nameof(merges));
            byte[] joined = [.. bytes[left], .. bytes[right]];
            if (result == bytes.Count) bytes.Add(joined);
            else if (!bytes[result].AsSpan().SequenceEqual(joined)) throw new ArgumentException($"Merge {i} does not spell token {result}.", nameof(merges));
            _rank.Add((left, right), i);
        }
        TokenBytes = bytes;
    }

    /// <summary>The merges in rank order, each with the id it produces.</summary>
    public IReadOnlyList<(int Left, int Right, int Result)> Merges { get; }

    public IReadOnlyList<string> SpecialTokens { get; }

    /// <summary>The bytes of every learned token (not the special tokens), by id.</summary>
    public IReadOnlyList<byte[]> TokenBytes { get; }

    /// <summary>Learned tokens plus special tokens.</summary>
    public int Size => TokenBytes.Count + SpecialTokens.Count;

    public int SpecialTokenId(string token)
    {
        int index = SpecialTokens.ToList().IndexOf(token);
        return index >= 0 ? TokenBytes.Count + index : throw new ArgumentException($"'{token}' is not a special token.", nameof(token));
    }

    /// <summary>Encodes text: special-token texts become their ids, the rest is pre-tokenized and merged.</summary>
    public List<int> Encode(string text)
    {
        var ids = new List<int>();
        int start = 0;
        while (start < text.Length)
        {
            var (at, special) = NextSpecial(text, start);
            foreach (string piece in PreTokenizer.Split(text[start..at])) ids.AddRange(EncodePiece(piece));
            if (special < 0) break;
            ids.Add(TokenBytes.Count + special);
            start = at + SpecialTokens[special].Length;
        }
        return ids;
    }

    /// <summary>Merges one pre-tokenized piece.</summary>
    public List<int> EncodePiece(string piece)
    {
        var symbols = new List<int>();
        foreach (byte b in Encoding.UTF8.GetBytes(piece)) symbols.Add(b);
        while (symbols.Count > 1)
        {
            int best = int.MaxValue;
            for (int i = 0; i + 1 < symbols.Count; i++)
            {
                if (_rank.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank < best) best = rank;
            }
            if (best == int.MaxValue) break;
            ApplyMerge(symbols, (Merges[best].Left, Merges[best].Right), Merges[best].Result);
        }
        return symbols;
    }

    /// <summary>Replaces each non-overlapping occurrence of <paramref name="pair"/>, left to right, by <paramref name="merged"/>.</summary>
    public static void ApplyMerge(List<int> symbols, (int Left, int Right) pair, int merged)
    {
        int write = 0;
        for (int read = 0; read < symbols.Count; read++)
        {
            if (read + 1 < symbols.Count && symbols[read] == pair.Left && symbols[read + 1] == pair.Right)
            {
                symbols[write++] = merged;
                read++;
            }
            else
            {
                symbols[write++] = symbols[read];
            }
        }
        symbols.RemoveRange(write, symbols.Count - write);
    }

    public string Decode(IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if (id < TokenBytes.Count) bytes.AddRange(TokenBytes[id]);
            else bytes.AddRange(Encoding.UTF8.GetBytes(SpecialTokens[id - TokenBytes.Count]));
        }
        return Encoding.UTF8.GetString([.. bytes]);
    }

    private (int At, int Special) NextSpecial(string text, int start)
    {
        int at = text.Length, special = -1;
        for (int s = 0; s < SpecialTokens.Count; s++)
        {
            int found = text.IndexOf(SpecialTokens[s], start, StringComparison.Ordinal);
            if (found >= 0 && found < at) (at, special) = (found, s);
        }
        return (at, special);
    }
}
