using System.Text;
using Disagg.Train.Tokenizer;
using FsCheck.Fluent;

namespace Disagg.Train.Tests;

public class BpeTrainerTests
{
    [Fact]
    public void The_first_merge_is_the_most_frequent_adjacent_byte_pair()
    {
        // Counted here directly: every adjacent byte pair of every pre-tokenized piece, special tokens cut out.
        var counts = new Dictionary<(int, int), int>();
        foreach (string segment in TestData.Text.Split([.. SpecialTokens.All], StringSplitOptions.None))
        foreach (string piece in PreTokenizer.Split(segment))
        {
            byte[] bytes = Encoding.UTF8.GetBytes(piece);
            for (int i = 0; i + 1 < bytes.Length; i++) counts[(bytes[i], bytes[i + 1])] = counts.GetValueOrDefault((bytes[i], bytes[i + 1])) + 1;
        }
        int top = counts.Values.Max();
        var expected = counts.Where(c => c.Value == top).Select(c => c.Key).Min();

        var first = TestData.Vocabulary.Merges[0];
        Assert.Equal(expected, (first.Left, first.Right));
        Assert.Equal(256, first.Result);
    }

    [Fact]
    public void Training_is_deterministic_and_fills_the_vocabulary_with_the_special_tokens_last()
    {
        var again = BpeTrainer.Train([TestData.Text], 700, SpecialTokens.All);
        Assert.Equal(TestData.Vocabulary.Merges, again.Merges);
        Assert.Equal(700, again.Size);
        Assert.Equal([697, 698, 699], SpecialTokens.All.Select(again.SpecialTokenId));
    }

    [Fact]
    public void Training_stops_when_no_pair_occurs_twice()
    {
        var vocabulary = BpeTrainer.Train(["ab cd ef"], 1000, SpecialTokens.All);
        Assert.Empty(vocabulary.Merges);
        Assert.Equal(256 + 3, vocabulary.Size);
    }

    [Fact]
    public void Merges_shorten_the_text_they_were_learned_from()
    {
        int bytes = Encoding.UTF8.GetByteCount(TestData.Text);
        int tokens = TestData.Vocabulary.Encode(TestData.Text).Count;
        Assert.True(tokens < bytes / 2, $"{tokens} tokens for {bytes} bytes");
    }

    [Fact]
    public void A_merge_that_spells_an_existing_token_yields_that_token()
    {
        // "abc" can be built as (ab)c or a(bc); both merges must give the one token.
        var vocabulary = new BpeVocabulary([('a', 'b', 256), (256, 'c', 257), ('b', 'c', 258), ('a', 258, 257)], SpecialTokens.All);
        Assert.Equal(259 + 3, vocabulary.Size);
        Assert.Equal([257], vocabulary.EncodePiece("abc"));
        Assert.Throws<ArgumentException>(() => new BpeVocabulary([('a', 'b', 256), ('b', 'c', 256)], SpecialTokens.All));
    }

    [Fact]
    public void Encoding_then_decoding_gives_the_text_back()
    {
        TestData.Check(Prop.ForAll(TestData.MixedText().ToArbitrary(), text =>
            TestData.Vocabulary.Decode(TestData.Vocabulary.Encode(text)) == text));
    }

    [Fact]
    public void Special_token_texts_become_their_ids()
    {
        var vocabulary = TestData.Vocabulary;
        var ids = vocabulary.Encode("<|im_start|>user\nHi<|im_end|>");
        Assert.Equal(vocabulary.SpecialTokenId(SpecialTokens.ImStart), ids[0]);
        Assert.Equal(vocabulary.SpecialTokenId(SpecialTokens.ImEnd), ids[^1]);
        Assert.Equal("user\nHi", vocabulary.Decode(ids.Skip(1).SkipLast(1)));
    }
}
