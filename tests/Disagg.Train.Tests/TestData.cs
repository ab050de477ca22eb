using Disagg.Train.Tokenizer;
using FsCheck;
using FsCheck.Fluent;

namespace Disagg.Train.Tests;

/// <summary>Text the trainer's tests learn from: the demo model's held-out chapters (committed, unlike the corpus).</summary>
internal static class TestData
{
    private static readonly Lazy<string> s_heldOut = new(() => File.ReadAllText(Path.Combine(FindRoot(), "samples", "models", "disagg-demo", "heldout.txt")));
    private static readonly Lazy<BpeVocabulary> s_vocabulary = new(() => BpeTrainer.Train([Text], 700, SpecialTokens.All));

    /// <summary>About 60 KB of King James English, chapters separated by &lt;|endoftext|&gt;.</summary>
    public static string Text => s_heldOut.Value;

    /// <summary>A 700-token vocabulary trained on <see cref="Text"/>.</summary>
    public static BpeVocabulary Vocabulary => s_vocabulary.Value;

    /// <summary>Text mixing the corpus's words with spaces, newlines, digits, punctuation, non-ASCII letters and special tokens.</summary>
    public static Gen<string> MixedText()
    {
        string[] fragments = ["the", " LORD", " said", ",", ".", ":", ";", "'s", " ", "  ", "\n", "\n\n", "\t", "123", "4567", "?!",
            "é", "ß", "日本", "—", "Ω", "<|im_end|>", "<|im_start|>", "<|endoftext|>", "<|im", "|>", "Genesis 1:3"];
        var letter = Gen.Choose('a', 'z').Select(c => ((char)c).ToString());
        return Gen.Frequency((4, Gen.Elements(fragments)), (1, letter)).ListOf().Select(parts => string.Concat(parts));
    }

    public static void Check(Property property) => property.Check(Config.QuickThrowOnFailure.WithMaxTest(200));

    public static string TemporaryDirectory()
    {
        string path = Path.Combine(Path.GetTempPath(), "disagg-train-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Disagg.sln"))) return dir.FullName;
        throw new InvalidOperationException("Could not find the repository root (Disagg.sln) above " + AppContext.BaseDirectory);
    }
}
