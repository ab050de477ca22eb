using System.Text;

namespace Disagg.Tokenization;

/// <summary>
/// The Mistral v0.1 chat format: <c>&lt;s&gt;</c> once, each user turn <c>[INST] content [/INST]</c> and each answer
/// <c>content&lt;/s&gt;</c>, without trimming. There is no system role: a system message is prepended to the first
/// user message, separated by a blank line. No separate generation prompt exists.
/// </summary>
/// <param name="bosToken">The begin-of-sequence token text.</param>
/// <param name="eosToken">The end-of-sequence token text.</param>
public sealed class MistralChatTemplate(string bosToken = "<s>", string eosToken = "</s>") : ChatTemplate
{
    /// <inheritdoc />
    public override string EndOfTurnToken => eosToken;

    /// <inheritdoc />
    protected override string RenderValidated(string? system, IReadOnlyList<ChatTurn> turns, bool addGenerationPrompt)
    {
        var text = new StringBuilder(bosToken);
        for (int i = 0; i < turns.Count; i++)
        {
            string content = turns[i].Content;
            if (turns[i].Role == ChatTurn.User)
            {
                if (i == 0 && system is not null) content = system + "\n\n" + content;
                text.Append("[INST] ").Append(content).Append(" [/INST]");
            }
            else
            {
                text.Append(content).Append(eosToken);
            }
        }
        return text.ToString();
    }
}
