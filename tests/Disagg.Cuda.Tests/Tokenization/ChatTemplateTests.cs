using Disagg.Cuda.Loading;
using Disagg.Tokenization;

namespace Disagg.Cuda.Tests.Tokenization;

public sealed class ChatTemplateTests
{
    private static readonly ChatTurn[] s_conversation =
    [
        new(ChatTurn.System, "Be brief."),
        new(ChatTurn.User, " Hi "),
        new(ChatTurn.Assistant, "Hello."),
        new(ChatTurn.User, "Bye"),
    ];

    [Fact]
    public void Llama3_wraps_trimmed_messages_in_headers()
    {
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n",
            new Llama3ChatTemplate().Render(s_conversation, addGenerationPrompt: true));
    }

    [Fact]
    public void Llama3_trims_like_python_strip()
    {
        // Python's str.strip() also removes the information separators U+001C..U+001F.
        string text = new Llama3ChatTemplate().Render([new(ChatTurn.User, "\u001F\t x \u00A0")], addGenerationPrompt: false);
        Assert.Equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>", text);
    }

    [Fact]
    public void ChatML_keeps_content_as_is()
    {
        Assert.Equal(
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n"
            + "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
            new ChatMLChatTemplate().Render(s_conversation, addGenerationPrompt: true));
    }

    [Fact]
    public void Llama2_puts_the_system_block_in_the_first_instruction()
    {
        Assert.Equal(
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello. </s><s>[INST] Bye [/INST]",
            new Llama2ChatTemplate().Render(s_conversation, addGenerationPrompt: true));
    }

    [Fact]
    public void Mistral_prepends_the_system_message_to_the_first_user_message()
    {
        Assert.Equal(
            "<s>[INST] Be brief.\n\n Hi  [/INST]Hello.</s>[INST] Bye [/INST]",
            new MistralChatTemplate().Render(s_conversation, addGenerationPrompt: true));
    }

    [Theory]
    [InlineData("{{ bos_token }}{% for m in messages %}<|start_header_id|>{% endfor %}", typeof(Llama3ChatTemplate))]
    [InlineData("{% for m in messages %}{{'<|im_start|>' + m.role}}{% endfor %}", typeof(ChatMLChatTemplate))]
    [InlineData("{{ '[INST] <<SYS>>\\n' }}", typeof(Llama2ChatTemplate))]
    [InlineData("{{ bos_token }}{{ '[INST] ' + m.content + ' [/INST]' }}", typeof(MistralChatTemplate))]
    public void Detect_picks_the_family_by_its_markers(string jinja, Type expected)
    {
        Assert.IsType(expected, ChatTemplate.Detect(jinja));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("{% for m in messages %}<start_of_turn>{{ m.role }}{% endfor %}")]
    public void Detect_rejects_missing_or_unknown_templates(string? jinja)
    {
        var error = Assert.Throws<ModelLoadException>(() => ChatTemplate.Detect(jinja));
        Assert.Contains("ChatTemplate explicitly", error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void End_of_turn_tokens_join_the_eos_ids_of_the_fixtures()
    {
        var llama3 = ModelTokenizer.Load(FixtureModels.Directory_("llama3"));
        var qwen = ModelTokenizer.Load(FixtureModels.Directory_("qwen2"));
        Assert.Equal([llama3.TokenToId("<|eot_id|>")!.Value], llama3.EndOfSequenceTokenIds);
        Assert.Equal([qwen.TokenToId("<|im_end|>")!.Value], qwen.EndOfSequenceTokenIds);
        Assert.Null(qwen.BeginOfSequenceTokenId);
        Assert.IsType<ChatMLChatTemplate>(qwen.ChatTemplate);
    }

    [Fact]
    public void An_explicit_template_replaces_detection()
    {
        var tokenizer = ModelTokenizer.Load(FixtureModels.Directory_("llama2"), new MistralChatTemplate());
        Assert.IsType<MistralChatTemplate>(tokenizer.ChatTemplate);
    }

    public static TheoryData<ChatTurn[]> BadConversations() =>
    [
        [],
        [new(ChatTurn.Assistant, "hi")],
        [new(ChatTurn.User, "a"), new(ChatTurn.User, "b")],
        [new(ChatTurn.User, "a"), new(ChatTurn.Assistant, "b"), new(ChatTurn.Assistant, "c")],
        [new(ChatTurn.User, "a"), new(ChatTurn.System, "b")],
        [new(ChatTurn.System, "only")],
        [new("tool", "x")],
        [new(ChatTurn.User, null!)],
    ];

    [Theory]
    [MemberData(nameof(BadConversations))]
    public void Rejects_conversations_that_do_not_alternate(ChatTurn[] messages)
    {
        foreach (ChatTemplate template in new ChatTemplate[] { new Llama3ChatTemplate(), new ChatMLChatTemplate(), new Llama2ChatTemplate(), new MistralChatTemplate() })
        {
            Assert.Throws<ArgumentException>(() => template.Render(messages, addGenerationPrompt: true));
        }
    }
}
