using System.Text.Json;
using Disagg.Cuda.Loading;

namespace Disagg.Tokenization;

/// <summary>
/// The parts of tokenizer_config.json used here: the BOS/EOS token texts and the Jinja chat template (which newer
/// transformers versions save to chat_template.jinja instead).
/// </summary>
internal sealed record TokenizerConfig(string? BosToken, string? EosToken, string? ChatTemplate, string ChatTemplateSource)
{
    public static TokenizerConfig Empty { get; } = new(null, null, null, "tokenizer_config.json");

    public static TokenizerConfig Read(JsonDocument document, string file)
    {
        var root = new JsonSection(file, document.RootElement, "");
        return new TokenizerConfig(TokenText(root, "bos_token"), TokenText(root, "eos_token"), ChatTemplateText(root), file);
    }

    /// <summary>A special token given as a string or as an AddedToken object with "content".</summary>
    private static string? TokenText(JsonSection root, string name)
    {
        if (!root.TryGet(name, out var value)) return null;
        return value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Object => new JsonSection(root.File, value, name).String("content"),
            _ => throw root.Error(name, "must be a string or an object with 'content'."),
        };
    }

    /// <summary>A template string, or from a list of named templates the one named "default".</summary>
    private static string? ChatTemplateText(JsonSection root)
    {
        if (!root.TryGet("chat_template", out var value)) return null;
        if (value.ValueKind == JsonValueKind.String) return value.GetString();
        if (value.ValueKind == JsonValueKind.Array)
        {
            foreach (var named in root.Objects("chat_template"))
            {
                if (named.OptionalString("name") == "default") return named.String("template");
            }
            return null;
        }
        throw root.Error("chat_template", "must be a string or a list of named templates.");
    }
}
