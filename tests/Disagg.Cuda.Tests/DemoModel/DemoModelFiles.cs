using System.Text.Json;

namespace Disagg.Cuda.Tests.DemoModel;

/// <summary>
/// The bundled demo model (samples/models/disagg-demo, trained by samples/Disagg.Train) and the references that came
/// with it: eval.json (the trainer's held-out perplexity) and hf_golden.json (HF transformers' view of the same files,
/// made by samples/Disagg.Train/hf_golden.py).
/// </summary>
internal static class DemoModelFiles
{
    private static readonly JsonSerializerOptions s_json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static string Directory { get; } = Path.Combine(Fixtures.Root, "samples", "models", "disagg-demo");

    public static Evaluation LoadEvaluation() => Load<Evaluation>("eval.json");

    public static HfGolden LoadHfGolden() => Load<HfGolden>("hf_golden.json");

    public static string HeldOutText(Evaluation evaluation) => File.ReadAllText(Path.Combine(Directory, evaluation.HeldoutFile));

    private static T Load<T>(string file)
    {
        using var stream = File.OpenRead(Path.Combine(Directory, file));
        return JsonSerializer.Deserialize<T>(stream, s_json) ?? throw new InvalidDataException($"{file} is empty");
    }

    internal sealed record Evaluation(string HeldoutFile, string HeldoutSha256, int Tokens, int ContextLength, int Stride, int Windows,
        int PredictedTokens, double MeanNll, double Perplexity);

    internal sealed record HfGolden(int[] EndTokenIds, HfPrompt[] Prompts, HfHeldOut Heldout);

    internal sealed record HfMessage(string Role, string Content);

    internal sealed record HfPrompt(string Kind, HfMessage[]? Messages, string Text, int[] Ids, float[] LastLogits, float Top2Gap, int[] Greedy, string GreedyText);

    internal sealed record HfHeldOut(int TokenCount, string IdsSha256, bool DecodesToText, int ContextLength, int PredictedTokens, double MeanNll, double Perplexity);
}
