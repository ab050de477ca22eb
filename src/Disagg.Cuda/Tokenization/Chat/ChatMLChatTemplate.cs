using System.Text;

namespace Disagg.Tokenization;

/// <summary>
/// The ChatML format of Qwen: per message <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c>; the generation
/// prompt is <c>&lt;|im_start|&gt;assistant\n</c>. Content is not trimmed.
/// </summary>
public sealed class ChatMLChatTemplate : ChatTemplate
{
    /// <inheritdoc />
    public override string EndOfTurnToken => "<|im_end|>";

    /// <inheritdoc />
    protected override string RenderValidated(string? system, IReadOnlyList<ChatTurn> turns, bool addGenerationPrompt)
    {
        var text = new StringBuilder();
        if (system is not null) AppendMessage(text, ChatTurn.System, system);
        foreach (var turn in turns) AppendMessage(text, turn.Role, turn.Content);
        if (addGenerationPrompt) text.Append("<|im_start|>assistant\n");
        return text.ToString();
    }

    private void AppendMessage(StringBuilder text, string role, string content) =>
        text.Append("<|im_start|>").Append(role).Append('\n').Append(content).Append(EndOfTurnToken).Append('\n');
}
