using System.Text.Json;

namespace Disagg.Cuda.Tests.Tokenization;

/// <summary>The model fixtures made by HF tokenizers/transformers under tests/Fixtures/models.</summary>
internal static class FixtureModels
{
    public static string Root { get; } = Path.Combine(FindRepositoryRoot(), "tests", "Fixtures", "models");

    /// <summary>Names of the fixture directories that hold a tokenizer golden file.</summary>
    public static IEnumerable<string> WithTokenizerGolden() =>
        Directory.Exists(Root)
            ? Directory.GetDirectories(Root).Where(d => File.Exists(Path.Combine(d, "tokenizer_golden.json"))).Select(Path.GetFileName).Order(StringComparer.Ordinal)!
            : [];

    public static string Directory_(string name) => Path.Combine(Root, name);

    public static JsonDocument Golden(string name) => JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Root, name, "tokenizer_golden.json")));

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Disagg.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException($"No Disagg.sln above {AppContext.BaseDirectory}.");
    }
}
