using static Disagg.Cuda.Tests.Tokenization.TinyTokenizers;

namespace Disagg.Cuda.Tests.Tokenization;

/// <summary>
/// SentencePiece-style BPE with byte fallback (Llama 2 / Mistral style). Ids: &lt;s&gt; 1, &lt;0xXX&gt; 3 + XX,
/// "▁" 259, "a" 260, "b" 261, "▁a" 262.
/// </summary>
public sealed class SentencePieceBpeTests
{
    private const int Space = 259, A = 260, B = 261, SpaceA = 262;

    private static int Byte(int value) => 3 + value;

    [Fact]
    public void Prepends_the_dummy_prefix_and_replaces_spaces()
    {
        var tokenizer = SentencePieceBpe();
        Assert.Equal([SpaceA, Space, B], tokenizer.Encode("a b", false));
        Assert.Equal([1, Space, SpaceA], tokenizer.Encode(" a"));
        Assert.Empty(tokenizer.Encode("", false));
    }

    [Fact]
    public void Characters_outside_the_vocabulary_fall_back_to_utf8_byte_tokens()
    {
        Assert.Equal([SpaceA, Byte(0xE6), Byte(0x97), Byte(0xA5)], SentencePieceBpe().Encode("a日", false));
    }

    [Fact]
    public void Decode_drops_one_leading_space_of_the_whole_text()
    {
        var tokenizer = SentencePieceBpe();
        Assert.Equal("a日", tokenizer.Decode([SpaceA, Byte(0xE6), Byte(0x97), Byte(0xA5)]));
        Assert.Equal("<s>  a", tokenizer.Decode([1, Space, SpaceA]));
        Assert.Equal(" a", tokenizer.Decode([1, Space, SpaceA], skipSpecialTokens: true));
    }

    [Fact]
    public void An_invalid_byte_run_becomes_one_replacement_character_per_byte()
    {
        Assert.Equal("\uFFFD\uFFFD a", SentencePieceBpe().Decode([Byte(0xE6), Byte(0x97), SpaceA]));
    }

    [Fact]
    public void Streaming_strips_the_leading_space_and_holds_byte_runs_until_they_end()
    {
        var stream = SentencePieceBpe().CreateStreamingDetokenizer();
        Assert.Equal("a", stream.Append(SpaceA));
        Assert.Equal("", stream.Append(Byte(0xE6)));
        Assert.Equal("", stream.Append(Byte(0x97)));
        Assert.Equal("", stream.Append(Byte(0xA5)));
        Assert.Equal("日 a", stream.Append(SpaceA));
        Assert.Equal("", stream.Flush());
    }

    [Fact]
    public void Metaspace_first_scheme_prefixes_only_the_start_of_the_input()
    {
        var tokenizer = SentencePieceBpe(metaspace: true);
        Assert.Equal([SpaceA], tokenizer.Encode("a", false));
        // The text already starts with a (replaced) space, so nothing more is prepended.
        Assert.Equal([SpaceA], tokenizer.Encode(" a", false));
        // After an added token the piece does not start the input, so it gets no prefix.
        Assert.Equal([1, A], tokenizer.Encode("<s>a", false));
        Assert.Equal("a b", tokenizer.Decode([SpaceA, Space, B]));
    }
}
