using System.Text.Json;
using Disagg.Cuda.Loading;
using Microsoft.ML.Tokenizers;

namespace Disagg.Tokenization;

/// <summary>Builds the <see cref="BpeModel"/> from the <c>model</c> section of tokenizer.json.</summary>
internal static class BpeModelReader
{
    public static BpeModel Read(JsonSection model)
    {
        string? type = model.OptionalString("type");
        if (type is not null && type != "BPE")
        {
            throw model.Error("type", $"is '{type}', but only BPE tokenizers (Llama, Mistral, Qwen families) are supported.");
        }
        if (type is null && !model.TryGet("merges", out _))
        {
            throw model.Error("type", "is missing and the model has no merges, so it is not a BPE tokenizer; only BPE is supported.");
        }
        if (model.TryGet("dropout", out var dropout) && !(dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() == 0))
        {
            throw model.Error("dropout", "is set; BPE dropout makes encoding random and is not supported for inference.");
        }

        var vocabulary = ReadVocabulary(model);
        var merges = ReadMerges(model);
        string? unknownToken = model.OptionalString("unk_token");
        bool byteFallback = model.Bool("byte_fallback", false);
        int unknownId = -1;
        if (unknownToken is not null && !vocabulary.TryGetValue(unknownToken, out unknownId))
        {
            throw model.Error("unk_token", $"'{unknownToken}' is not in the vocabulary.");
        }

        int[]? byteIds = null;
        if (byteFallback)
        {
            byteIds = ReadByteTokens(model, vocabulary);
            CheckMergesAvoid(model, merges, vocabulary, byteIds, unknownId);
        }

        BpeTokenizer inner;
        try
        {
            inner = BpeTokenizer.Create(new BpeOptions(vocabulary)
            {
                Merges = merges.Select(m => $"{m.Left} {m.Right}"),
                UnknownToken = unknownToken,
                // With byte fallback each unknown character must come back alone so it can be expanded to bytes.
                FuseUnknownTokens = !byteFallback && model.Bool("fuse_unk", false),
                ContinuingSubwordPrefix = model.OptionalString("continuing_subword_prefix"),
                EndOfWordSuffix = model.OptionalString("end_of_word_suffix"),
            });
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
        {
            throw new ModelLoadException(model.File, $"the BPE model is invalid: {ex.Message}", ex);
        }
        return new BpeModel(inner, vocabulary, model.Bool("ignore_merges", false), unknownId, byteIds, merges.Select(m => m.Left + m.Right));
    }

    private static Dictionary<string, int> ReadVocabulary(JsonSection model)
    {
        var vocab = model.Object("vocab");
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        var seenIds = new HashSet<int>();
        foreach (var entry in vocab.Element.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
            {
                throw vocab.Error(entry.Name, "must be a non-negative integer id.");
            }
            if (!seenIds.Add(id)) throw vocab.Error(entry.Name, $"reuses id {id}.");
            result[entry.Name] = id;
        }
        if (result.Count == 0) throw model.Error("vocab", "is empty.");
        return result;
    }

    /// <summary>
    /// Merges as "a b" strings or ["a", "b"] pairs. A repeated pair keeps its last rank, as HF's map does.
    /// </summary>
    private static List<(string Left, string Right)> ReadMerges(JsonSection model)
    {
        var merges = new List<(string, string)>();
        foreach (var (item, path) in model.Array("merges"))
        {
            string? left = null, right = null;
            if (item.ValueKind == JsonValueKind.String)
            {
                string[] parts = item.GetString()!.Split(' ');
                if (parts.Length == 2) (left, right) = (parts[0], parts[1]);
            }
            else if (item.ValueKind == JsonValueKind.Array && item.GetArrayLength() == 2
                && item[0].ValueKind == JsonValueKind.String && item[1].ValueKind == JsonValueKind.String)
            {
                (left, right) = (item[0].GetString()!, item[1].GetString()!);
            }
            if (left is null || right is null || left.Length == 0 || right.Length == 0)
            {
                throw new ModelLoadException(model.File, $"'{path}' must be \"a b\" or [\"a\", \"b\"].");
            }
            if (left.Contains(' ', StringComparison.Ordinal) || right.Contains(' ', StringComparison.Ordinal))
            {
                // The merge engine takes "a b" strings, so a token with a space cannot be expressed.
                throw new ModelLoadException(model.File, $"'{path}' merges a token that contains a space, which is not supported.");
            }
            merges.Add((left, right));
        }
        var lastIndex = new Dictionary<(string, string), int>();
        for (int i = 0; i < merges.Count; i++) lastIndex[merges[i]] = i;
        return lastIndex.Count == merges.Count ? merges : merges.Where((m, i) => lastIndex[m] == i).ToList();
    }

    private static int[] ReadByteTokens(JsonSection model, Dictionary<string, int> vocabulary)
    {
        var ids = new int[256];
        for (int b = 0; b < 256; b++)
        {
            if (!vocabulary.TryGetValue($"<0x{b:X2}>", out ids[b]))
            {
                throw model.Error("byte_fallback", $"is true but the vocabulary lacks the byte token <0x{b:X2}>; only complete byte vocabularies are supported.");
            }
        }
        return ids;
    }

    /// <summary>
    /// Byte fallback is emulated by expanding unknown tokens after merging, which equals HF only when no merge
    /// involves a byte token or the unknown token (true of SentencePiece-converted vocabularies).
    /// </summary>
    private static void CheckMergesAvoid(JsonSection model, List<(string Left, string Right)> merges, Dictionary<string, int> vocabulary, int[] byteIds, int unknownId)
    {
        var reserved = new HashSet<int>(byteIds);
        if (unknownId >= 0) reserved.Add(unknownId);
        foreach (var (left, right) in merges)
        {
            bool involves = (vocabulary.TryGetValue(left, out int a) && reserved.Contains(a))
                || (vocabulary.TryGetValue(right, out int b) && reserved.Contains(b))
                || (vocabulary.TryGetValue(left + right, out int c) && reserved.Contains(c));
            if (involves) throw model.Error("merges", $"merge '{left} {right}' involves a byte or unknown token, which is not supported with byte_fallback.");
        }
    }
}
