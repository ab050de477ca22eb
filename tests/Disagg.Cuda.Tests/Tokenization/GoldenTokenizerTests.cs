using System.Text.Json;
using Disagg.Tokenization;

namespace Disagg.Cuda.Tests.Tokenization;

/// <summary>Compares with ids and text produced by HF tokenizers/transformers for each fixture model.</summary>
public sealed class GoldenTokenizerTests
{
    public static TheoryData<string> Models() => [.. FixtureModels.WithTokenizerGolden()];

    [Fact]
    public void All_five_reference_fixtures_are_present()
    {
        Assert.Equal(["llama2", "llama3", "mistral", "qwen2", "qwen3"], FixtureModels.WithTokenizerGolden());
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Encode_matches_reference_ids(string model)
    {
        var tokenizer = ModelTokenizer.Load(FixtureModels.Directory_(model));
        using var golden = FixtureModels.Golden(model);
        foreach (var c in golden.RootElement.GetProperty("cases").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            Assert.True(Ids(c, "ids").SequenceEqual(tokenizer.Encode(text, addSpecialTokens: false)), $"{model}: ids of {Show(text)}: expected [{string.Join(",", Ids(c, "ids"))}] got [{string.Join(",", tokenizer.Encode(text, false))}]");
            Assert.True(Ids(c, "ids_with_special").SequenceEqual(tokenizer.Encode(text)), $"{model}: ids_with_special of {Show(text)}");
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Decode_matches_reference_text(string model)
    {
        var tokenizer = ModelTokenizer.Load(FixtureModels.Directory_(model));
        using var golden = FixtureModels.Golden(model);
        foreach (var c in golden.RootElement.GetProperty("cases").EnumerateArray())
        {
            int[] ids = Ids(c, "ids_with_special");
            Assert.Equal(c.GetProperty("decoded").GetString(), tokenizer.Decode(ids));
            Assert.Equal(c.GetProperty("decoded_skip_special").GetString(), tokenizer.Decode(ids, skipSpecialTokens: true));
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Streaming_detokenizer_matches_reference_text(string model)
    {
        var tokenizer = ModelTokenizer.Load(FixtureModels.Directory_(model));
        using var golden = FixtureModels.Golden(model);
        foreach (var c in golden.RootElement.GetProperty("cases").EnumerateArray())
        {
            foreach (var (skip, field) in new[] { (false, "decoded"), (true, "decoded_skip_special") })
            {
                var stream = tokenizer.CreateStreamingDetokenizer(skip);
                string text = string.Concat(Ids(c, "ids_with_special").Select(stream.Append)) + stream.Flush();
                Assert.Equal(c.GetProperty(field).GetString(), text);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Chat_template_renders_and_encodes_like_reference(string model)
    {
        var tokenizer = ModelTokenizer.Load(FixtureModels.Directory_(model));
        using var golden = FixtureModels.Golden(model);
        foreach (var chat in golden.RootElement.GetProperty("chat").EnumerateArray())
        {
            var messages = chat.GetProperty("messages").EnumerateArray()
                .Select(m => new ChatTurn(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToList();
            string text = tokenizer.ChatTemplate.Render(messages, chat.GetProperty("add_generation_prompt").GetBoolean());
            Assert.Equal(chat.GetProperty("text").GetString(), text);
            Assert.Equal(Ids(chat, "ids"), tokenizer.Encode(text, addSpecialTokens: false));
        }
    }

    private static int[] Ids(JsonElement element, string name) => element.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();

    private static string Show(string text) => JsonSerializer.Serialize(text);
}
