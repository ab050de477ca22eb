using System.Text.Json;
using Disagg.Cuda.Loading;

namespace Disagg.Tokenization;

/// <summary>Everything read from a tokenizer.json, validated and ready to encode and decode with.</summary>
internal sealed record TokenizerParts(
    BpeModel Model,
    IReadOnlyList<AddedToken> AddedTokens,
    TextNormalizer? Normalizer,
    IReadOnlyList<PreTokenizerStep> PreTokenizer,
    SpecialTokenTemplate PostProcessor,
    DecoderPipeline Decoder,
    string?[] IdToToken,
    IReadOnlyDictionary<string, int> TokenToId)
{
    /// <exception cref="ModelLoadException">The file is not a supported tokenizer.</exception>
    public static TokenizerParts Read(JsonDocument document, string file)
    {
        var root = new JsonSection(file, document.RootElement, "");
        var model = BpeModelReader.Read(root.Object("model"));
        var addedTokens = root.Objects("added_tokens").Select(ReadAddedToken).ToList();
        DecoderPipeline decoder;
        try
        {
            decoder = new DecoderPipeline(TokenizerComponentsReader.ReadDecoder(root.OptionalObject("decoder")));
        }
        catch (ArgumentException ex)
        {
            throw new ModelLoadException(file, $"'decoder': {ex.Message}", ex);
        }

        // HF looks ids up in the added tokens first, then in the model vocabulary.
        var tokenToId = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (token, id) in model.Inner.Vocabulary) tokenToId[token] = id;
        foreach (var added in addedTokens) tokenToId[added.Content] = added.Id;
        int size = Math.Max(model.Inner.Vocabulary.Values.Max(), addedTokens.Count == 0 ? -1 : addedTokens.Max(t => t.Id)) + 1;
        var idToToken = new string?[size];
        foreach (var (token, id) in model.Inner.Vocabulary) idToToken[id] = token;
        foreach (var added in addedTokens) idToToken[added.Id] = added.Content;

        return new TokenizerParts(
            model,
            addedTokens,
            TokenizerComponentsReader.ReadNormalizer(root.OptionalObject("normalizer")),
            TokenizerComponentsReader.ReadPreTokenizer(root.OptionalObject("pre_tokenizer")),
            TokenizerComponentsReader.ReadPostProcessor(root.OptionalObject("post_processor")),
            decoder,
            idToToken,
            tokenToId);
    }

    private static AddedToken ReadAddedToken(JsonSection token)
    {
        int id = token.Int("id", -1);
        if (id < 0) throw token.Error("id", "is missing.");
        string content = token.String("content");
        if (content.Length == 0) throw token.Error("content", "is empty.");
        return new AddedToken(id, content, token.Bool("special", false), token.Bool("single_word", false),
            token.Bool("lstrip", false), token.Bool("rstrip", false), token.Bool("normalized", true));
    }
}
