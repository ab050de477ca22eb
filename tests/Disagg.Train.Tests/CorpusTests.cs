using Disagg.Train.Corpus;
using Disagg.Train.Tokenizer;

namespace Disagg.Train.Tests;

public class CorpusTests
{
    private static IEnumerable<string> Lines(int chapters, int verses) =>
        from c in Enumerable.Range(1, chapters) from v in Enumerable.Range(1, verses) select $"Book\t{c}\t{v}\tVerse {c}:{v}  of\tthe book.";

    [Fact]
    public void Verses_group_into_chapters_and_every_sixtieth_chapter_is_held_out()
    {
        var corpus = KjvCorpus.Parse(Lines(130, 3).Select(l => l.Replace("\tthe", " the", StringComparison.Ordinal)), "test");
        Assert.Equal(130, corpus.Chapters.Count);
        Assert.Equal(["Book 31", "Book 91"], corpus.HeldOut.Select(c => c.Title));
        Assert.Equal(128, corpus.Training.Count);
        Assert.Equal("Verse 1:2 of the book.", corpus.Chapters[0].Verses[1]); // whitespace runs collapsed
        Assert.Equal("Book 1\n\nVerse 1:1 of the book.\nVerse 1:2 of the book.\nVerse 1:3 of the book.\n", corpus.Chapters[0].PlainText);
    }

    [Theory]
    [InlineData("Book\t1\t1")]
    [InlineData("Book\tone\t1\ttext")]
    [InlineData("Book\t1\t3\ttext")]
    public void A_malformed_or_out_of_order_line_is_rejected_with_its_line_number(string bad)
    {
        var error = Assert.Throws<InvalidDataException>(() => KjvCorpus.Parse(["Book\t1\t1\tfine", bad], "kjv.tsv"));
        Assert.StartsWith("kjv.tsv:2:", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Documents_are_deterministic_and_each_ends_a_document()
    {
        var chapters = KjvCorpus.Parse(Lines(5, 8).Select(l => l.Replace("\tthe", " the", StringComparison.Ordinal)), "test").Chapters;
        var first = TrainingDocuments.Build(chapters, chatFraction: 0.5, seed: 7);
        Assert.Equal(first, TrainingDocuments.Build(chapters, chatFraction: 0.5, seed: 7));
        Assert.All(first, d => Assert.EndsWith(SpecialTokens.EndOfText, d, StringComparison.Ordinal));
        Assert.Equal(5, first.Count(d => d.StartsWith("Book ", StringComparison.Ordinal))); // the plain chapters
        Assert.True(first.Count > 10, "verse conversations were made");
        Assert.Equal(10, TrainingDocuments.Build(chapters, chatFraction: 0, seed: 7).Count); // chapters and their opening conversations
    }
}
