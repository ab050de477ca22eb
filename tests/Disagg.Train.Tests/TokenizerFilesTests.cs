using Disagg.Tokenization;
using Disagg.Train.Corpus;
using Disagg.Train.Tokenizer;
using FsCheck.Fluent;

namespace Disagg.Train.Tests;

/// <summary>The written tokenizer.json / tokenizer_config.json, read back by Disagg's loader (Microsoft.ML.Tokenizers underneath).</summary>
public sealed class TokenizerFilesTests : IDisposable
{
    private readonly string _directory = TestData.TemporaryDirectory();
    private readonly ModelTokenizer _loaded;

    public TokenizerFilesTests()
    {
        TokenizerFiles.Write(TestData.Vocabulary, _directory, maxLength: 256);
        _loaded = ModelTokenizer.Load(_directory);
    }

    [Fact]
    public void The_loader_encodes_the_text_as_the_trainer_does()
    {
        Assert.Equal(TestData.Vocabulary.Encode(TestData.Text), _loaded.Encode(TestData.Text, addSpecialTokens: false));
    }

    [Fact]
    public void The_loader_agrees_with_the_trainer_on_mixed_text()
    {
        TestData.Check(Prop.ForAll(TestData.MixedText().ToArbitrary(), text =>
            TestData.Vocabulary.Encode(text).SequenceEqual(_loaded.Encode(text, addSpecialTokens: false))
            && _loaded.Decode(_loaded.Encode(text)) == text));
    }

    [Fact]
    public void Vocabulary_and_special_tokens_are_where_the_trainer_put_them()
    {
        var vocabulary = TestData.Vocabulary;
        Assert.Equal(vocabulary.Size, _loaded.VocabularySize);
        foreach (string token in SpecialTokens.All) Assert.Equal(vocabulary.SpecialTokenId(token), _loaded.TokenToId(token));
        Assert.Null(_loaded.BeginOfSequenceTokenId);
        Assert.Equal([vocabulary.SpecialTokenId(SpecialTokens.ImEnd)], _loaded.EndOfSequenceTokenIds);
        Assert.Empty(_loaded.Encode(""));
    }

    [Fact]
    public void Training_conversations_are_what_the_chat_template_renders()
    {
        var template = _loaded.ChatTemplate;
        Assert.IsType<ChatMLChatTemplate>(template);
        (string, string)[] turns = [("What does Genesis 1:1 say?", "In the beginning God created the heaven and the earth."), ("Go on.", "And the earth was without form, and void.")];
        var messages = turns.SelectMany(t => new[] { new ChatTurn("user", t.Item1), new ChatTurn("assistant", t.Item2) }).ToList();
        Assert.Equal(template.Render(messages, addGenerationPrompt: false) + SpecialTokens.EndOfText, TrainingDocuments.Conversation(turns));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
