using System.Text;
using Disagg.Train.Tokenizer;

namespace Disagg.Train.Corpus;

/// <summary>
/// The documents the model is trained on, each ending in <c>&lt;|endoftext|&gt;</c>: every training chapter as plain text,
/// and ChatML conversations built from the same chapters so that the model answers in a chat and ends its turn with
/// <c>&lt;|im_end|&gt;</c>. Conversations (seeded, so the same corpus gives the same documents):
/// <list type="bullet">
/// <item>continue: the user quotes a verse, the assistant answers with the next one or two;</item>
/// <item>recite: the user asks for a verse by reference ("What does John 3:16 say?"), the assistant quotes it;</item>
/// <item>chapter: the user asks about a chapter, the assistant quotes its opening verses;</item>
/// <item>any of them may go on for a second turn ("Go on."), answered with the verse after.</item>
/// </list>
/// </summary>
internal static class TrainingDocuments
{
    private static readonly string[] RecitePrompts = ["What does {0} say?", "Recite {0}.", "Quote {0} for me.", "{0}", "What is written in {0}?"];
    private static readonly string[] ChapterPrompts = ["Tell me about {0}.", "How does {0} begin?", "Read me {0}."];
    private static readonly string[] GoOnPrompts = ["Go on.", "And then?", "What follows?", "Continue."];

    /// <summary>Chapters as plain text, each followed by <c>&lt;|endoftext|&gt;</c> (the held-out text is built this way too).</summary>
    public static string PlainText(IEnumerable<Chapter> chapters) => string.Concat(chapters.Select(c => c.PlainText + SpecialTokens.EndOfText));

    /// <summary>One ChatML conversation as text, as the demo's chat template renders it, closed by <c>&lt;|endoftext|&gt;</c>.</summary>
    public static string Conversation(IEnumerable<(string User, string Assistant)> turns)
    {
        var text = new StringBuilder();
        foreach (var (user, assistant) in turns)
        {
            text.Append(SpecialTokens.ImStart).Append("user\n").Append(user).Append(SpecialTokens.ImEnd).Append('\n');
            text.Append(SpecialTokens.ImStart).Append("assistant\n").Append(assistant).Append(SpecialTokens.ImEnd).Append('\n');
        }
        return text.Append(SpecialTokens.EndOfText).ToString();
    }

    /// <summary>
    /// Every training document, shuffled: the plain chapters, one chapter conversation each, and a verse conversation for
    /// about <paramref name="chatFraction"/> of the verses.
    /// </summary>
    public static List<string> Build(IReadOnlyList<Chapter> chapters, double chatFraction, int seed)
    {
        var random = new Random(seed);
        var documents = new List<string>();
        foreach (var chapter in chapters)
        {
            documents.Add(chapter.PlainText + SpecialTokens.EndOfText);
            var verses = chapter.Verses;
            documents.Add(Conversation([(Pick(random, ChapterPrompts, chapter.Title), string.Join(' ', verses.Take(2)))]));
            for (int v = 0; v < verses.Count; v++)
            {
                if (random.NextDouble() >= chatFraction) continue;
                var turns = new List<(string, string)>();
                int next;
                if (random.NextDouble() < 0.55 && v + 1 < verses.Count)
                {
                    int take = random.NextDouble() < 0.3 && v + 2 < verses.Count ? 2 : 1;
                    turns.Add((verses[v], string.Join(' ', verses.Skip(v + 1).Take(take))));
                    next = v + 1 + take;
                }
                else
                {
                    turns.Add((Pick(random, RecitePrompts, $"{chapter.Title}:{v + 1}"), verses[v]));
                    next = v + 1;
                }
                if (next < verses.Count && random.NextDouble() < 0.2) turns.Add((GoOnPrompts[random.Next(GoOnPrompts.Length)], verses[next]));
                documents.Add(Conversation(turns));
            }
        }
        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(documents));
        return documents;
    }

    private static string Pick(Random random, string[] formats, string reference) =>
        string.Format(System.Globalization.CultureInfo.InvariantCulture, formats[random.Next(formats.Length)], reference);
}
