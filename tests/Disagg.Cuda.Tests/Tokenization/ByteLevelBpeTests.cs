using Disagg.Tokenization;
using static Disagg.Cuda.Tests.Tokenization.TinyTokenizers;

namespace Disagg.Cuda.Tests.Tokenization;

/// <summary>Byte-level BPE (Llama 3 / Qwen style) on a vocabulary where id = byte value for single bytes.</summary>
public sealed class ByteLevelBpeTests
{
    [Fact]
    public void Splits_words_with_the_regex_and_merges_each_word()
    {
        // "ab ab" pre-tokenizes to "ab" and " ab" (= "Ġab"); merges: a+b -> 256, Ġ+ab -> 257.
        var tokenizer = ByteLevelBpe(["ab", "Ġab"], [["a", "b"], ["Ġ", "ab"]]);
        Assert.Equal([256, 257], tokenizer.Encode("ab ab", addSpecialTokens: false));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Lower_ranked_merge_applies_first_whether_merges_are_pairs_or_strings(bool asStrings)
    {
        var bcFirst = ByteLevelBpe(["bc", "ab"], [["b", "c"], ["a", "b"]], mergesAsStrings: asStrings);
        var abFirst = ByteLevelBpe(["bc", "ab"], [["a", "b"], ["b", "c"]], mergesAsStrings: asStrings);
        Assert.Equal(['a', 256], bcFirst.Encode("abc", false));
        Assert.Equal([257, 'c'], abFirst.Encode("abc", false));
    }

    [Fact]
    public void Ignore_merges_emits_a_word_in_the_vocabulary_whole()
    {
        // "abc" (id 256) cannot be reached by merges; only ignore_merges finds it.
        Assert.Equal([256], ByteLevelBpe(["abc"], [], ignoreMerges: true).Encode("abc", false));
        Assert.Equal(['a', 'b', 'c'], ByteLevelBpe(["abc"], [], ignoreMerges: false).Encode("abc", false));
    }

    [Theory]
    [InlineData("🚀abc")] // an emoji may lead a word: [^\r\n\p{L}\p{N}]?\p{L}+ takes it whole
    [InlineData("a𠀀b")] // an astral CJK letter is \p{L}, so this is one word
    public void Regex_treats_astral_code_points_as_single_characters(string word)
    {
        // With ignore_merges, a word that stays one pre-token comes out as its single vocabulary id.
        var tokenizer = ByteLevelBpe([ByteLevel(word)], [], ignoreMerges: true);
        Assert.Equal([256], tokenizer.Encode(word, false));
    }

    [Fact]
    public void Added_tokens_are_matched_in_raw_text_and_skippable_in_decode()
    {
        var tokenizer = ByteLevelBpe([], []);
        var ids = tokenizer.Encode("a<|eot|>b");
        Assert.Equal([1000, 'a', 1001, 'b'], ids);
        Assert.Equal("<|bos|>a<|eot|>b", tokenizer.Decode(ids.ToArray()));
        Assert.Equal("ab", tokenizer.Decode(ids.ToArray(), skipSpecialTokens: true));
    }

    [Fact]
    public void Bos_comes_from_the_post_processor_and_metadata_from_the_config()
    {
        var tokenizer = ByteLevelBpe([], []);
        Assert.Equal([1000, 'x'], tokenizer.Encode("x"));
        Assert.Equal(1000, tokenizer.BeginOfSequenceTokenId);
        Assert.Equal([1001], tokenizer.EndOfSequenceTokenIds);
        Assert.Equal(new HashSet<int> { 1000, 1001 }, tokenizer.SpecialTokenIds);
        Assert.Equal(1002, tokenizer.VocabularySize);
        Assert.Equal(['x'], ByteLevelBpe([], [], addBos: false).Encode("x"));
    }

    [Fact]
    public void Nfc_normalizer_composes_before_byte_mapping()
    {
        // e + COMBINING ACUTE becomes U+00E9, UTF-8 C3 A9.
        var tokenizer = ByteLevelBpe([], [], normalizer: new { type = "NFC" });
        Assert.Equal([0xC3, 0xA9], tokenizer.Encode("e\u0301", false));
    }

    [Fact]
    public void Decode_replaces_invalid_utf8_and_streaming_holds_split_characters()
    {
        var tokenizer = ByteLevelBpe([], []);
        Assert.Equal("\uFFFDA", tokenizer.Decode([0xE6, 'A']));
        var stream = tokenizer.CreateStreamingDetokenizer();
        Assert.Equal("", stream.Append(0xE6));
        Assert.Equal("", stream.Append(0x97));
        Assert.Equal("日", stream.Append(0xA5));
        Assert.Equal("", stream.Append(0xE6));
        Assert.Equal("\uFFFD", stream.Flush());
    }
}
