using System.Text;
using System.Text.Json.Nodes;
using Disagg.Cuda.Loading;
using Disagg.Tokenization;

namespace Disagg.Cuda.Tests.Tokenization;

/// <summary>Bad tokenizer files fail with a <see cref="ModelLoadException"/> naming the file and the problem.</summary>
public sealed class LoadErrorTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("disagg-tokenizer-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Missing_directory()
    {
        var error = Assert.Throws<ModelLoadException>(() => ModelTokenizer.Load(Path.Combine(_directory, "nope")));
        Assert.Contains("does not exist", error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_tokenizer_json()
    {
        var error = Assert.Throws<ModelLoadException>(() => ModelTokenizer.Load(_directory));
        Assert.Equal(Path.Combine(_directory, "tokenizer.json"), error.FilePath);
    }

    [Theory]
    [InlineData("{ \"model\": ", "not valid JSON")]
    [InlineData("[1, 2]", "JSON object")]
    [InlineData("{}", "'model' is missing")]
    public void Malformed_tokenizer_json(string content, string problem)
    {
        var error = LoadWith(content);
        Assert.Contains(problem, error.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("WordPiece")]
    [InlineData("Unigram")]
    [InlineData("WordLevel")]
    public void Unsupported_model_types(string type)
    {
        var error = LoadWith(Llama3Json(json => json["model"]!["type"] = type));
        Assert.Contains($"'{type}'", error.Problem, StringComparison.Ordinal);
        Assert.Contains("model.type", error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Merge_of_a_token_missing_from_the_vocabulary()
    {
        var error = LoadWith(Llama3Json(json => json["model"]!["merges"]!.AsArray().Add(new JsonArray("zzz", "qqq"))));
        Assert.Contains("zzz", error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Unsupported_pre_tokenizer_is_named()
    {
        var error = LoadWith(Llama3Json(json => json["pre_tokenizer"] = new JsonObject { ["type"] = "Digits" }));
        Assert.Contains("pre_tokenizer.type", error.Problem, StringComparison.Ordinal);
        Assert.Contains("Digits", error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Byte_fallback_without_all_byte_tokens()
    {
        string json = File.ReadAllText(Path.Combine(FixtureModels.Directory_("llama2"), "tokenizer.json"));
        var node = JsonNode.Parse(json)!;
        node["model"]!["vocab"]!.AsObject().Remove("<0x41>");
        var error = LoadWith(node.ToJsonString());
        Assert.Contains("<0x41>", error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_chat_template_fails_only_when_the_template_is_used()
    {
        File.Copy(Path.Combine(FixtureModels.Directory_("llama3"), "tokenizer.json"), Path.Combine(_directory, "tokenizer.json"));
        File.WriteAllText(Path.Combine(_directory, "tokenizer_config.json"), "{\"chat_template\": \"<start_of_turn>\"}");
        var tokenizer = ModelTokenizer.Load(_directory);
        Assert.NotEmpty(tokenizer.Encode("hello"));
        var error = Assert.Throws<ModelLoadException>(() => tokenizer.ChatTemplate);
        Assert.EndsWith("tokenizer_config.json", error.FilePath, StringComparison.Ordinal);
    }

    private static string Llama3Json(Action<JsonNode> edit)
    {
        var node = JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureModels.Directory_("llama3"), "tokenizer.json")))!;
        edit(node);
        return node.ToJsonString();
    }

    private ModelLoadException LoadWith(string tokenizerJson)
    {
        string path = Path.Combine(_directory, "tokenizer.json");
        File.WriteAllText(path, tokenizerJson, new UTF8Encoding(false));
        var error = Assert.Throws<ModelLoadException>(() => ModelTokenizer.Load(_directory));
        Assert.Equal(path, error.FilePath);
        return error;
    }
}
