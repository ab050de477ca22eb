using System.Text;

namespace Disagg.Tokenization;

/// <summary>
/// The Llama 2 chat format: each user turn is <c>&lt;s&gt;[INST] content [/INST]</c> (content trimmed; the system
/// message goes in a <c>&lt;&lt;SYS&gt;&gt;</c> block at the start of the first user turn), each answer is
/// <c> content &lt;/s&gt;</c>. The format has no separate generation prompt: a prompt ending in a user turn already
/// leaves the model to answer.
/// </summary>
/// <param name="bosToken">The begin-of-sequence token text.</param>
/// <param name="eosToken">The end-of-sequence token text.</param>
public sealed class Llama2ChatTemplate(string bosToken = "<s>", string eosToken = "</s>") : ChatTemplate
{
    /// <inheritdoc />
    public override string EndOfTurnToken => eosToken;

    /// <inheritdoc />
    protected override string RenderValidated(string? system, IReadOnlyList<ChatTurn> turns, bool addGenerationPrompt)
    {
        var text = new StringBuilder();
        for (int i = 0; i < turns.Count; i++)
        {
            string content = turns[i].Content;
            if (turns[i].Role == ChatTurn.User)
            {
                if (i == 0 && system is not null) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
                text.Append(bosToken).Append("[INST] ").Append(PythonStrip(content)).Append(" [/INST]");
            }
            else
            {
                text.Append(' ').Append(PythonStrip(content)).Append(' ').Append(eosToken);
            }
        }
        return text.ToString();
    }
}
