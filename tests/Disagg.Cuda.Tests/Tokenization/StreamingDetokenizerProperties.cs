using System.Text;
using Disagg.Tokenization;
using FsCheck;
using FsCheck.Fluent;

namespace Disagg.Cuda.Tests.Tokenization;

/// <summary>
/// Properties of the streaming detokenizer and of encode/decode round trips, over random ids and random unicode
/// text, on every fixture tokenizer plus the hand-written ones.
/// </summary>
public sealed class StreamingDetokenizerProperties
{
    private static readonly Lazy<IReadOnlyDictionary<string, ModelTokenizer>> s_tokenizers = new(() =>
    {
        var all = FixtureModels.WithTokenizerGolden().ToDictionary(name => name, name => ModelTokenizer.Load(FixtureModels.Directory_(name)));
        all["tiny-byte-level"] = TinyTokenizers.ByteLevelBpe(["ab"], [["a", "b"]]);
        all["tiny-sentencepiece"] = TinyTokenizers.SentencePieceBpe();
        all["tiny-metaspace"] = TinyTokenizers.SentencePieceBpe(metaspace: true);
        return all;
    });

    public static TheoryData<string> Tokenizers() => [.. s_tokenizers.Value.Keys.Order(StringComparer.Ordinal)];

    /// <summary>Fragments that stress tokenizers: multi-byte and astral characters, combining marks, whitespace runs.</summary>
    private static readonly string[] s_fragments =
    [
        "🚀", "🔥", "👩\u200d💻", "🇯🇵", "日本語", "テキスト", "한국어", "e\u0301", "a\u0308\u0323", "ǅ", "𠀀", "𝐀𝐁",
        " ", "   ", "\t", "\n", "\n\n", "\r\n", "\u00A0", "\u3000", "hello", "Hello", " world", "'s", "'LL", "123456",
        "3.14", "—", "∑∫√", "!?", "<", "|", "<|eot_id|>", "<|im_end|>", "<s>", "</s>",
    ];

    private static Gen<string> UnicodeText()
    {
        var randomCodePoint = Gen.Choose(0x20, 0x10FFFF).Where(c => c is < 0xD800 or > 0xDFFF).Select(char.ConvertFromUtf32);
        var fragment = Gen.Frequency((3, Gen.Elements(s_fragments)), (1, randomCodePoint), (1, Gen.Choose('a', 'z').Select(c => ((char)c).ToString())));
        return fragment.ListOf().Select(parts => string.Concat(parts));
    }

    private static Gen<int[]> Ids(ModelTokenizer tokenizer)
    {
        // Mostly valid ids, weighted towards the special and byte tokens at the low and high ends, plus some invalid ones.
        int size = tokenizer.VocabularySize;
        var id = Gen.Frequency(
            (6, Gen.Choose(0, size - 1)),
            (2, Gen.Choose(0, Math.Min(300, size - 1))),
            (1, Gen.Elements(tokenizer.SpecialTokenIds.DefaultIfEmpty(0).ToArray())),
            (1, Gen.Choose(size, size + 10)));
        return id.ArrayOf();
    }

    private static string Stream(ModelTokenizer tokenizer, IEnumerable<int> ids, bool skipSpecialTokens)
    {
        var detokenizer = tokenizer.CreateStreamingDetokenizer(skipSpecialTokens);
        var text = new StringBuilder();
        foreach (int id in ids) text.Append(detokenizer.Append(id));
        return text.Append(detokenizer.Flush()).ToString();
    }

    private static void Check(Property property) => property.Check(Config.QuickThrowOnFailure.WithMaxTest(300));

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void Streamed_deltas_concatenate_to_decode_of_random_ids(string name)
    {
        var tokenizer = s_tokenizers.Value[name];
        Check(Prop.ForAll(Ids(tokenizer).ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (ids, skip) =>
            Stream(tokenizer, ids, skip) == tokenizer.Decode(ids, skip)));
    }

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void Streamed_deltas_concatenate_to_decode_of_encoded_random_text(string name)
    {
        var tokenizer = s_tokenizers.Value[name];
        Check(Prop.ForAll(UnicodeText().ToArbitrary(), text =>
        {
            var ids = tokenizer.Encode(text);
            return Stream(tokenizer, ids, false) == tokenizer.Decode(ids.ToArray())
                && Stream(tokenizer, ids, true) == tokenizer.Decode(ids.ToArray(), skipSpecialTokens: true);
        }));
    }

    [Fact]
    public void A_detokenizer_is_reusable_after_flush()
    {
        var tokenizer = s_tokenizers.Value["tiny-sentencepiece"];
        var ids = tokenizer.Encode("a b a", false).ToArray();
        var detokenizer = tokenizer.CreateStreamingDetokenizer();
        string first = string.Concat(ids.Select(detokenizer.Append)) + detokenizer.Flush();
        string second = string.Concat(ids.Select(detokenizer.Append)) + detokenizer.Flush();
        Assert.Equal("a b a", first);
        Assert.Equal(first, second);
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("llama2")]
    [InlineData("mistral")]
    [InlineData("qwen2")]
    [InlineData("qwen3")]
    public void Decode_of_encode_gives_back_the_text(string name)
    {
        var tokenizer = s_tokenizers.Value[name];
        bool nfc = name.StartsWith("qwen", StringComparison.Ordinal);
        // Special-token texts encode as specials, and SentencePiece decodes its own "▁" as a space: both excluded.
        var text = UnicodeText().Where(t => !tokenizer.SpecialTokenIds.Any(id => t.Contains(tokenizer.IdToToken(id)!, StringComparison.Ordinal)) && !t.Contains('\u2581', StringComparison.Ordinal));
        Check(Prop.ForAll(text.ToArbitrary(), t =>
            tokenizer.Decode(tokenizer.Encode(t, addSpecialTokens: false).ToArray()) == (nfc ? Nfc(t) : t)
));
    }

    [Fact]
    public void U_FFFE_passes_through_normalization_and_the_text_around_it_is_normalized()
    {
        var qwen = s_tokenizers.Value["qwen2"]; // an NFC normalizer
        string text = "e\u0301\uFFFE\u0301x\uFFFE";
        Assert.Equal("\u00E9\uFFFE\u0301x\uFFFE", qwen.Decode(qwen.Encode(text, addSpecialTokens: false).ToArray()));
    }

    // The reference NFC. .NET's refuses U+FFFE, a starter that composes with nothing; another such noncharacter that the
    // text lacks stands in for it.
    private static string Nfc(string text)
    {
        if (!text.Contains('\uFFFE')) return text.Normalize(NormalizationForm.FormC);
        char standIn = "\uFFFF\uFDD0\uFDD1\uFDD2\uFDD3".First(c => !text.Contains(c));
        return text.Replace('\uFFFE', standIn).Normalize(NormalizationForm.FormC).Replace(standIn, '\uFFFE');
    }
}
