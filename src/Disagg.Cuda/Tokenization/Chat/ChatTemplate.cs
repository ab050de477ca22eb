using Disagg.Cuda.Loading;

namespace Disagg.Tokenization;

/// <summary>
/// Renders a conversation into the prompt text a chat model was trained on. The output contains special-token
/// texts (e.g. <c>&lt;|eot_id|&gt;</c>) and is meant to be encoded with <c>addSpecialTokens: false</c>, as
/// transformers' <c>apply_chat_template</c> does.
/// </summary>
/// <remarks>
/// These are C# renderings of the known template families, not a Jinja interpreter; <see cref="Detect(string?)"/>
/// picks the family from a model's Jinja template by its distinctive markers.
/// </remarks>
public abstract class ChatTemplate
{
    /// <summary>The text of the token that ends an assistant turn (generation stops there).</summary>
    public abstract string EndOfTurnToken { get; }

    /// <summary>Renders <paramref name="messages"/>.</summary>
    /// <param name="messages">An optional leading system message, then user and assistant messages alternating, starting with the user.</param>
    /// <param name="addGenerationPrompt">Whether to append the opening of an assistant turn (families that have one).</param>
    /// <exception cref="ArgumentException">The messages are empty, have an unknown role or do not alternate.</exception>
    public string Render(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt)
    {
        ArgumentNullException.ThrowIfNull(messages);
        Validate(messages);
        bool hasSystem = messages[0].Role == ChatTurn.System;
        return RenderValidated(hasSystem ? messages[0].Content : null, hasSystem ? messages.Skip(1).ToList() : messages, addGenerationPrompt);
    }

    /// <summary>
    /// Picks the template family of a Jinja chat template: Llama 3 (<c>&lt;|start_header_id|&gt;</c>), ChatML
    /// (<c>&lt;|im_start|&gt;</c>), Llama 2 (<c>[INST]</c> with <c>&lt;&lt;SYS&gt;&gt;</c>) or Mistral
    /// (<c>[INST]</c> without it).
    /// </summary>
    /// <param name="jinjaChatTemplate">The <c>chat_template</c> text of tokenizer_config.json.</param>
    /// <exception cref="ModelLoadException">The template is missing or of no known family.</exception>
    public static ChatTemplate Detect(string? jinjaChatTemplate) => Detect(jinjaChatTemplate, "chat_template", null, null);

    internal static ChatTemplate Detect(string? jinja, string source, string? bosToken, string? eosToken)
    {
        if (string.IsNullOrWhiteSpace(jinja))
        {
            throw new ModelLoadException(source, "the model declares no chat template; pass a ChatTemplate explicitly.");
        }
        if (jinja.Contains("<|start_header_id|>", StringComparison.Ordinal)) return new Llama3ChatTemplate(bosToken ?? Llama3ChatTemplate.DefaultBosToken);
        if (jinja.Contains("<|im_start|>", StringComparison.Ordinal)) return new ChatMLChatTemplate();
        if (jinja.Contains("[INST]", StringComparison.Ordinal))
        {
            return jinja.Contains("<<SYS>>", StringComparison.Ordinal)
                ? new Llama2ChatTemplate(bosToken ?? "<s>", eosToken ?? "</s>")
                : new MistralChatTemplate(bosToken ?? "<s>", eosToken ?? "</s>");
        }
        throw new ModelLoadException(source, "the chat template is of no known family (Llama 3, Llama 2, Mistral, ChatML); pass a ChatTemplate explicitly.");
    }

    /// <summary>Renders messages already validated: user first, then alternating.</summary>
    /// <param name="system">The system message content, or null.</param>
    /// <param name="turns">The user and assistant turns.</param>
    /// <param name="addGenerationPrompt">Whether to open an assistant turn.</param>
    protected abstract string RenderValidated(string? system, IReadOnlyList<ChatTurn> turns, bool addGenerationPrompt);

    /// <summary>Python's <c>str.strip()</c>, which Jinja's <c>trim</c> filter uses (it also strips U+001C..U+001F).</summary>
    protected static string PythonStrip(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        static bool IsSpace(char c) => char.IsWhiteSpace(c) || c is >= '\u001C' and <= '\u001F';
        int start = 0, end = text.Length;
        while (start < end && IsSpace(text[start])) start++;
        while (end > start && IsSpace(text[end - 1])) end--;
        return text[start..end];
    }

    private static void Validate(IReadOnlyList<ChatTurn> messages)
    {
        if (messages.Count == 0) throw new ArgumentException("A conversation needs at least one message.", nameof(messages));
        int first = messages[0].Role == ChatTurn.System ? 1 : 0;
        for (int i = 0; i < messages.Count; i++)
        {
            var message = messages[i];
            if (message.Content is null) throw new ArgumentException($"Message {i} has no content.", nameof(messages));
            if (message.Role is not (ChatTurn.System or ChatTurn.User or ChatTurn.Assistant))
            {
                throw new ArgumentException($"Message {i} has role '{message.Role}'; roles are system, user and assistant.", nameof(messages));
            }
            if (i < first) continue;
            string expected = (i - first) % 2 == 0 ? ChatTurn.User : ChatTurn.Assistant;
            if (message.Role != expected)
            {
                throw new ArgumentException(
                    $"Message {i} has role '{message.Role}' but '{expected}' was expected: after an optional first system message, user and assistant must alternate, starting with user.",
                    nameof(messages));
            }
        }
        if (messages.Count == first) throw new ArgumentException("A conversation needs a user message after the system message.", nameof(messages));
    }
}
