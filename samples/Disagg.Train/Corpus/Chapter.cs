namespace Disagg.Train.Corpus;

/// <summary>One chapter of the corpus: its book, its number and its verses in order.</summary>
internal sealed record Chapter(string Book, int Number, IReadOnlyList<string> Verses)
{
    /// <summary>"Genesis 1".</summary>
    public string Title => $"{Book} {Number}";

    /// <summary>
    /// The chapter as plain training text: its title, a blank line, then one verse a line (no verse numbers, so that the
    /// model writes verses the way a reader would quote them).
    /// </summary>
    public string PlainText => $"{Title}\n\n{string.Join('\n', Verses)}\n";
}
