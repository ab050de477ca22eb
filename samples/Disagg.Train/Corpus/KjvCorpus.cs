using System.Globalization;
using System.Text.RegularExpressions;

namespace Disagg.Train.Corpus;

/// <summary>
/// The King James Bible as prepare_corpus.sh writes it ("Book&lt;TAB&gt;chapter&lt;TAB&gt;verse&lt;TAB&gt;text", canonical
/// order), grouped into chapters and split deterministically: every <see cref="HeldOutEvery"/>-th chapter, counting from
/// <see cref="HeldOutOffset"/>, is held out (never trained on, tokenizer included); the rest is training text.
/// </summary>
internal sealed partial class KjvCorpus
{
    /// <summary>Chapters i with i % 60 == 30 are held out: 20 of the 1,189, spread over the whole book.</summary>
    public const int HeldOutEvery = 60, HeldOutOffset = 30;

    private KjvCorpus(IReadOnlyList<Chapter> chapters)
    {
        Chapters = chapters;
        Training = [.. chapters.Where((_, i) => !IsHeldOut(i))];
        HeldOut = [.. chapters.Where((_, i) => IsHeldOut(i))];
    }

    public IReadOnlyList<Chapter> Chapters { get; }

    public IReadOnlyList<Chapter> Training { get; }

    public IReadOnlyList<Chapter> HeldOut { get; }

    public static bool IsHeldOut(int chapterIndex) => chapterIndex % HeldOutEvery == HeldOutOffset;

    /// <exception cref="InvalidDataException">A line is not "book, chapter, verse, text", or verses are out of order.</exception>
    public static KjvCorpus Load(string path) => Parse(File.ReadLines(path), path);

    public static KjvCorpus Parse(IEnumerable<string> lines, string source)
    {
        var chapters = new List<Chapter>();
        List<string>? verses = null;
        string? book = null;
        int chapter = 0, lineNumber = 0;
        foreach (string line in lines)
        {
            lineNumber++;
            if (line.Length == 0) continue;
            string[] fields = line.Split('\t');
            if (fields.Length != 4 || !int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out int c)
                || !int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out int v))
            {
                throw new InvalidDataException($"{source}:{lineNumber}: expected 'book<TAB>chapter<TAB>verse<TAB>text'.");
            }
            if (fields[0] != book || c != chapter)
            {
                if (verses is not null) chapters.Add(new Chapter(book!, chapter, verses));
                (book, chapter, verses) = (fields[0], c, []);
            }
            if (v != verses!.Count + 1) throw new InvalidDataException($"{source}:{lineNumber}: verse {v} of {book} {c} follows verse {verses.Count}.");
            verses.Add(Whitespace().Replace(fields[3], " ").Trim());
        }
        if (verses is not null) chapters.Add(new Chapter(book!, chapter, verses));
        if (chapters.Count == 0) throw new InvalidDataException($"{source}: no verses.");
        return new KjvCorpus(chapters);
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
