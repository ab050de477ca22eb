using System.Text;
using System.Text.Json;
using Disagg.Tokenization;

namespace Disagg.Cuda.Tests.Tokenization;

/// <summary>
/// Small tokenizer.json files written by hand, whose encodings can be worked out on paper.
/// </summary>
internal static class TinyTokenizers
{
    public const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>
    /// GPT-2's byte-to-character table, written out here from its published definition (printable Latin-1 bytes map
    /// to themselves, the others to U+0100 onwards in byte order) so that test vocabularies do not depend on the
    /// code under test.
    /// </summary>
    private static readonly char[] s_byteLevel = BuildByteLevelTable();

    /// <summary>The byte-level spelling of the UTF-8 bytes of <paramref name="text"/>.</summary>
    public static string ByteLevel(string text) => new(Encoding.UTF8.GetBytes(text).Select(b => s_byteLevel[b]).ToArray());

    private static char[] BuildByteLevelTable()
    {
        var table = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[b] = printable ? (char)b : (char)(256 + next++);
        }
        return table;
    }

    /// <summary>
    /// A Llama-3-style byte-level tokenizer: ids 0..255 are the single bytes (id = byte value), then
    /// <paramref name="extraTokens"/> from id 256 on, then added tokens &lt;|bos|&gt; (1000) and &lt;|eot|&gt; (1001).
    /// </summary>
    public static ModelTokenizer ByteLevelBpe(
        string[] extraTokens, string[][] merges, bool ignoreMerges = false, bool mergesAsStrings = false,
        object? normalizer = null, bool addBos = true)
    {
        var vocab = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++) vocab[s_byteLevel[b].ToString()] = b;
        for (int i = 0; i < extraTokens.Length; i++) vocab[extraTokens[i]] = 256 + i;
        var json = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["added_tokens"] = new[] { Added(1000, "<|bos|>"), Added(1001, "<|eot|>") },
            ["normalizer"] = normalizer,
            ["pre_tokenizer"] = new
            {
                type = "Sequence",
                pretokenizers = new object[]
                {
                    new { type = "Split", pattern = new { Regex = Llama3Pattern }, behavior = "Isolated", invert = false },
                    new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = false },
                },
            },
            ["post_processor"] = addBos ? BosTemplate("<|bos|>", 1000) : new { type = "ByteLevel", add_prefix_space = true, trim_offsets = false, use_regex = true },
            ["decoder"] = new { type = "ByteLevel", add_prefix_space = true, trim_offsets = true, use_regex = true },
            ["model"] = new Dictionary<string, object?>
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["ignore_merges"] = ignoreMerges,
                ["vocab"] = vocab,
                ["merges"] = mergesAsStrings ? merges.Select(m => (object)$"{m[0]} {m[1]}").ToArray() : merges,
            },
        };
        return Load(json, new { bos_token = "<|bos|>", eos_token = "<|eot|>" });
    }

    /// <summary>
    /// A Llama-2-style tokenizer: &lt;unk&gt; 0, &lt;s&gt; 1, &lt;/s&gt; 2, &lt;0x00&gt;..&lt;0xFF&gt; 3..258,
    /// "▁" 259, "a" 260, "b" 261, "▁a" 262 with the single merge "▁ a". With <paramref name="metaspace"/> the
    /// dummy prefix comes from a Metaspace pre-tokenizer (prepend_scheme "first") instead of the normalizer.
    /// </summary>
    public static ModelTokenizer SentencePieceBpe(bool metaspace = false)
    {
        var vocab = new Dictionary<string, int> { ["<unk>"] = 0, ["<s>"] = 1, ["</s>"] = 2 };
        for (int b = 0; b < 256; b++) vocab[$"<0x{b:X2}>"] = 3 + b;
        vocab["▁"] = 259;
        vocab["a"] = 260;
        vocab["b"] = 261;
        vocab["▁a"] = 262;
        var json = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["added_tokens"] = new[] { Added(0, "<unk>"), Added(1, "<s>"), Added(2, "</s>") },
            ["normalizer"] = metaspace ? null : new
            {
                type = "Sequence",
                normalizers = new object[]
                {
                    new { type = "Prepend", prepend = "▁" },
                    new { type = "Replace", pattern = new { String = " " }, content = "▁" },
                },
            },
            ["pre_tokenizer"] = metaspace ? new { type = "Metaspace", replacement = "▁", prepend_scheme = "first", split = false } : null,
            ["post_processor"] = BosTemplate("<s>", 1),
            ["decoder"] = metaspace
                ? new { type = "Metaspace", replacement = "▁", prepend_scheme = "first", split = false }
                : new
                {
                    type = "Sequence",
                    decoders = new object[]
                    {
                        new { type = "Replace", pattern = new { String = "▁" }, content = " " },
                        new { type = "ByteFallback" },
                        new { type = "Fuse" },
                        new { type = "Strip", content = " ", start = 1, stop = 0 },
                    },
                },
            ["model"] = new Dictionary<string, object?>
            {
                ["type"] = "BPE",
                ["unk_token"] = "<unk>",
                ["fuse_unk"] = true,
                ["byte_fallback"] = true,
                ["vocab"] = vocab,
                ["merges"] = new[] { new[] { "▁", "a" } },
            },
        };
        return Load(json, new { bos_token = "<s>", eos_token = "</s>", chat_template = "{{ bos_token }}[INST] ... [/INST]" });
    }

    public static ModelTokenizer Load(object tokenizerJson, object tokenizerConfig)
    {
        using var tokenizer = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(tokenizerJson));
        using var config = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(tokenizerConfig));
        return ModelTokenizer.Load(tokenizer, config);
    }

    private static object Added(int id, string content) =>
        new { id, content, single_word = false, lstrip = false, rstrip = false, normalized = false, special = true };

    private static object BosTemplate(string bos, int id) => new
    {
        type = "TemplateProcessing",
        single = new object[] { new { SpecialToken = new { id = bos, type_id = 0 } }, new { Sequence = new { id = "A", type_id = 0 } } },
        pair = new object[] { new { Sequence = new { id = "A", type_id = 0 } } },
        special_tokens = new Dictionary<string, object> { [bos] = new { id = bos, ids = new[] { id }, tokens = new[] { bos } } },
    };
}
