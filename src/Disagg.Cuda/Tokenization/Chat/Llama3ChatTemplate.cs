using System.Text;

namespace Disagg.Tokenization;

/// <summary>
/// The Llama 3 chat format: <c>&lt;|begin_of_text|&gt;</c>, then per message
/// <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\n</c> + trimmed content + <c>&lt;|eot_id|&gt;</c>;
/// the generation prompt opens an assistant header.
/// </summary>
/// <param name="bosToken">The begin-of-text token text.</param>
public sealed class Llama3ChatTemplate(string bosToken = Llama3ChatTemplate.DefaultBosToken) : ChatTemplate
{
    /// <summary>Llama 3's begin-of-text token.</summary>
    public const string DefaultBosToken = "<|begin_of_text|>";

    /// <inheritdoc />
    public override string EndOfTurnToken => "<|eot_id|>";

    /// <inheritdoc />
    protected override string RenderValidated(string? system, IReadOnlyList<ChatTurn> turns, bool addGenerationPrompt)
    {
        var text = new StringBuilder(bosToken);
        if (system is not null) AppendMessage(text, ChatTurn.System, system);
        foreach (var turn in turns) AppendMessage(text, turn.Role, turn.Content);
        if (addGenerationPrompt) text.Append("<|start_header_id|>assistant<|end_header_id|>\n\n");
        return text.ToString();
    }

    private void AppendMessage(StringBuilder text, string role, string content) =>
        text.Append("<|start_header_id|>").Append(role).Append("<|end_header_id|>\n\n").Append(PythonStrip(content)).Append(EndOfTurnToken);
}
