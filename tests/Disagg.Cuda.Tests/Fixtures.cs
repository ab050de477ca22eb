using System.Text.Json;

namespace Disagg.Cuda.Tests;

/// <summary>The tiny HF checkpoints in tests/Fixtures/models and their golden outputs (made by tests/Fixtures/make_fixtures.py).</summary>
internal static class Fixtures
{
    public static readonly string[] ModelNames = ["llama3", "llama2", "qwen2", "qwen3", "mistral"];

    public static string Root { get; } = FindRoot();

    public static string ModelDirectory(string name) => Path.Combine(Root, "tests", "Fixtures", "models", name);

    public static Golden LoadGolden(string name)
    {
        using var stream = File.OpenRead(Path.Combine(ModelDirectory(name), "golden.json"));
        return JsonSerializer.Deserialize<Golden>(stream, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower })
            ?? throw new InvalidDataException($"{name}/golden.json is empty");
    }

    private static string FindRoot()
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Disagg.sln"))) return dir.FullName;
        throw new InvalidOperationException("Could not find the repository root (Disagg.sln) above " + AppContext.BaseDirectory + " or the current directory");
    }

    internal sealed record Golden(string Model, string SavedDtype, GoldenPrompt[] Prompts);

    internal sealed record GoldenPrompt(int[] Ids, float[] LastLogits, float Top2Gap, int[] Greedy);
}
