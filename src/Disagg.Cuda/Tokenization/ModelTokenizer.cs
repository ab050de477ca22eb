using System.Collections.Frozen;
using Disagg.Cuda.Loading;

namespace Disagg.Tokenization;

/// <summary>
/// A Hugging Face tokenizer loaded from a model directory's tokenizer.json and tokenizer_config.json, producing the
/// same ids and text as HF <c>tokenizers</c>. Supported: BPE models with a byte-level alphabet (Llama 3, Qwen2/Qwen3)
/// and SentencePiece-style BPE with byte fallback (Llama 2, Mistral, TinyLlama). Thread-safe.
/// </summary>
/// <remarks>
/// Encoding runs HF's pipeline: added tokens are cut out of the raw text first, the rest is normalized,
/// pre-tokenized and BPE-merged (merging by Microsoft.ML.Tokenizers, see <see cref="Inner"/>), then the
/// post-processor's special tokens are added. Input with unpaired UTF-16 surrogates (which Python strings passed to
/// HF cannot hold) is encoded as if each were U+FFFD. <c>truncation</c> and <c>padding</c> settings of the file are
/// ignored.
/// </remarks>
public sealed class ModelTokenizer
{
    private readonly TokenizerParts _parts;
    private readonly AddedTokenMatcher _rawAddedTokens;
    private readonly AddedTokenMatcher _normalizedAddedTokens;
    private readonly bool[] _isSpecial;
    private readonly ChatTemplate? _chatTemplate;
    private readonly ModelLoadException? _chatTemplateError;

    private ModelTokenizer(TokenizerParts parts, TokenizerConfig config, ChatTemplate? chatTemplate)
    {
        _parts = parts;
        _rawAddedTokens = new AddedTokenMatcher(parts.AddedTokens.Where(t => !t.Normalized || parts.Normalizer is null));
        _normalizedAddedTokens = new AddedTokenMatcher(parts.AddedTokens.Where(t => t.Normalized && parts.Normalizer is not null));
        VocabularySize = parts.IdToToken.Length;
        _isSpecial = new bool[VocabularySize];
        foreach (var token in parts.AddedTokens.Where(t => t.Special)) _isSpecial[token.Id] = true;
        SpecialTokenIds = parts.AddedTokens.Where(t => t.Special).Select(t => t.Id).ToFrozenSet();

        if (chatTemplate is null)
        {
            try
            {
                chatTemplate = ChatTemplate.Detect(config.ChatTemplate, config.ChatTemplateSource, config.BosToken, config.EosToken);
            }
            catch (ModelLoadException ex)
            {
                // A tokenizer without a usable chat template still encodes; the error surfaces on ChatTemplate.
                _chatTemplateError = ex;
            }
        }
        _chatTemplate = chatTemplate;

        BeginOfSequenceTokenId = config.BosToken is not null && parts.TokenToId.TryGetValue(config.BosToken, out int bos) ? bos : null;
        var eos = new List<int>();
        foreach (string? text in new[] { config.EosToken, chatTemplate?.EndOfTurnToken })
        {
            if (text is not null && parts.TokenToId.TryGetValue(text, out int id) && !eos.Contains(id)) eos.Add(id);
        }
        EndOfSequenceTokenIds = eos;
    }

    /// <summary>Number of token ids: the largest id of the vocabulary or the added tokens, plus one.</summary>
    public int VocabularySize { get; }

    /// <summary>The id of tokenizer_config.json's <c>bos_token</c>, or null when the model has none (Qwen).</summary>
    public int? BeginOfSequenceTokenId { get; }

    /// <summary>
    /// Ids that end generation: tokenizer_config.json's <c>eos_token</c> and the chat template's end-of-turn token
    /// (e.g. <c>&lt;|eot_id|&gt;</c>, <c>&lt;|im_end|&gt;</c>), without duplicates.
    /// </summary>
    public IReadOnlyList<int> EndOfSequenceTokenIds { get; }

    /// <summary>Ids of the added tokens marked special (skipped by <c>skipSpecialTokens</c>).</summary>
    public IReadOnlySet<int> SpecialTokenIds { get; }

    /// <summary>The chat template given at load, or the one detected from the model's Jinja template.</summary>
    /// <exception cref="ModelLoadException">The model has no chat template or one of no known family.</exception>
    public ChatTemplate ChatTemplate => _chatTemplate ?? throw _chatTemplateError!;

    /// <summary>The Microsoft.ML.Tokenizers BPE tokenizer that performs the merges (no pre-tokenizer or specials).</summary>
    public Microsoft.ML.Tokenizers.Tokenizer Inner => _parts.Model.Inner;

    /// <summary>Loads the tokenizer of a model directory (tokenizer.json, optional tokenizer_config.json and chat_template.jinja).</summary>
    /// <param name="modelDirectory">The directory.</param>
    /// <param name="chatTemplate">A chat template to use instead of detecting one.</param>
    /// <exception cref="ModelLoadException">A file is missing, malformed or describes an unsupported tokenizer.</exception>
    public static ModelTokenizer Load(string modelDirectory, ChatTemplate? chatTemplate = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelDirectory);
        if (!Directory.Exists(modelDirectory)) throw new ModelLoadException(modelDirectory, "the model directory does not exist.");
        string configPath = Path.Combine(modelDirectory, HuggingFaceModelDirectory.TokenizerConfigFileName);
        string jinjaPath = Path.Combine(modelDirectory, "chat_template.jinja");
        return LoadFiles(
            Path.Combine(modelDirectory, HuggingFaceModelDirectory.TokenizerFileName),
            File.Exists(configPath) ? configPath : null,
            chatTemplate,
            File.Exists(jinjaPath) ? jinjaPath : null);
    }

    /// <summary>Loads a tokenizer from its files.</summary>
    /// <param name="tokenizerJsonPath">tokenizer.json.</param>
    /// <param name="tokenizerConfigPath">tokenizer_config.json, or null for none (no BOS/EOS, no chat template).</param>
    /// <param name="chatTemplate">A chat template to use instead of detecting one.</param>
    /// <param name="chatTemplateJinjaPath">A chat_template.jinja whose text replaces the config's <c>chat_template</c>, or null.</param>
    /// <exception cref="ModelLoadException">A file is missing, malformed or describes an unsupported tokenizer.</exception>
    public static ModelTokenizer LoadFiles(string tokenizerJsonPath, string? tokenizerConfigPath, ChatTemplate? chatTemplate = null, string? chatTemplateJinjaPath = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(tokenizerJsonPath);
        TokenizerParts parts;
        using (var document = JsonSource.ReadFile(tokenizerJsonPath)) parts = TokenizerParts.Read(document, tokenizerJsonPath);
        var config = TokenizerConfig.Empty;
        if (tokenizerConfigPath is not null)
        {
            using var document = JsonSource.ReadFile(tokenizerConfigPath);
            config = TokenizerConfig.Read(document, tokenizerConfigPath);
        }
        if (chatTemplateJinjaPath is not null)
        {
            config = config with { ChatTemplate = ReadText(chatTemplateJinjaPath), ChatTemplateSource = chatTemplateJinjaPath };
        }
        return new ModelTokenizer(parts, config, chatTemplate);
    }

    /// <summary>Loads a tokenizer from streams holding tokenizer.json and (optionally) tokenizer_config.json.</summary>
    /// <param name="tokenizerJson">The tokenizer.json content.</param>
    /// <param name="tokenizerConfigJson">The tokenizer_config.json content, or null.</param>
    /// <param name="chatTemplate">A chat template to use instead of detecting one.</param>
    /// <exception cref="ModelLoadException">The content is malformed or describes an unsupported tokenizer.</exception>
    public static ModelTokenizer Load(Stream tokenizerJson, Stream? tokenizerConfigJson, ChatTemplate? chatTemplate = null)
    {
        TokenizerParts parts;
        using (var document = JsonSource.ReadStream(tokenizerJson, HuggingFaceModelDirectory.TokenizerFileName))
        {
            parts = TokenizerParts.Read(document, HuggingFaceModelDirectory.TokenizerFileName);
        }
        var config = TokenizerConfig.Empty;
        if (tokenizerConfigJson is not null)
        {
            using var document = JsonSource.ReadStream(tokenizerConfigJson, HuggingFaceModelDirectory.TokenizerConfigFileName);
            config = TokenizerConfig.Read(document, HuggingFaceModelDirectory.TokenizerConfigFileName);
        }
        return new ModelTokenizer(parts, config, chatTemplate);
    }

    /// <summary>Encodes <paramref name="text"/> into token ids.</summary>
    /// <param name="text">The text; special-token texts in it (e.g. from a chat template) become their ids.</param>
    /// <param name="addSpecialTokens">Whether to add the post-processor's tokens (Llama's BOS).</param>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true)
    {
        var ids = new List<int>();
        EncodeTo(text, ids, addSpecialTokens);
        return ids;
    }

    /// <summary>Appends the ids of <paramref name="text"/> to <paramref name="destination"/>, e.g. a reused buffer.</summary>
    /// <param name="text">The text.</param>
    /// <param name="destination">The list the ids are appended to.</param>
    /// <param name="addSpecialTokens">Whether to add the post-processor's tokens.</param>
    public void EncodeTo(string text, List<int> destination, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(destination);
        text = ReplaceLoneSurrogates(text);
        if (addSpecialTokens) destination.AddRange(_parts.PostProcessor.Prefix);
        var sink = new PreTokenizedSink(_parts.PreTokenizer, _parts.Model, destination);
        var pieces = new List<(int Start, int Length, AddedToken? Token)>();
        _rawAddedTokens.Split(text, pieces);
        foreach (var (start, length, token) in pieces)
        {
            if (token is not null) destination.Add(token.Id);
            else EncodeSegment(text.Substring(start, length), start == 0, sink, destination);
        }
        if (addSpecialTokens) destination.AddRange(_parts.PostProcessor.Suffix);
    }

    /// <summary>Decodes ids to text as HF's <c>decode</c> does. Ids outside the vocabulary are skipped, as HF does.</summary>
    /// <param name="ids">The token ids.</param>
    /// <param name="skipSpecialTokens">Whether to leave out special tokens.</param>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var tokens = new List<string>(ids.Length);
        foreach (int id in ids)
        {
            if (TryGetDecodableToken(id, skipSpecialTokens, out string? token)) tokens.Add(token);
        }
        return _parts.Decoder.Decode(tokens);
    }

    /// <inheritdoc cref="Decode(ReadOnlySpan{int}, bool)"/>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return Decode(ids.ToArray(), skipSpecialTokens);
    }

    /// <summary>
    /// This tokenizer as the text layer's <see cref="Disagg.Text.ITextTokenizer"/> (for <see cref="Disagg.Text.TextGenerator"/>),
    /// whose streamed text leaves out special tokens (end-of-turn markers and the like) when <paramref name="skipSpecialTokens"/>.
    /// </summary>
    public Disagg.Text.ITextTokenizer AsTextTokenizer(bool skipSpecialTokens = true) => new TextTokenizer(this, skipSpecialTokens);

    private sealed class TextTokenizer(ModelTokenizer tokenizer, bool skipSpecialTokens) : Disagg.Text.ITextTokenizer
    {
        public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true) => tokenizer.Encode(text, addSpecialTokens);

        public Disagg.Text.IStreamingDetokenizer CreateStreamingDetokenizer() => tokenizer.CreateStreamingDetokenizer(skipSpecialTokens);
    }

    /// <summary>Creates a detokenizer that turns generated ids into text as they arrive.</summary>
    /// <param name="skipSpecialTokens">Whether to leave out special tokens.</param>
    public StreamingDetokenizer CreateStreamingDetokenizer(bool skipSpecialTokens = false) => new(this, _parts.Decoder.CreateStream(), skipSpecialTokens);

    /// <summary>The token text of <paramref name="id"/>, or null when the id is not in the vocabulary.</summary>
    /// <param name="id">The token id.</param>
    public string? IdToToken(int id) => (uint)id < (uint)_parts.IdToToken.Length ? _parts.IdToToken[id] : null;

    /// <summary>The id of the token whose text is <paramref name="token"/> (added tokens included), or null.</summary>
    /// <param name="token">The token text.</param>
    public int? TokenToId(string token) => _parts.TokenToId.TryGetValue(token, out int id) ? id : null;

    internal bool TryGetDecodableToken(int id, bool skipSpecialTokens, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? token)
    {
        token = IdToToken(id);
        if (token is null) return false;
        return !(skipSpecialTokens && _isSpecial[id]);
    }

    private void EncodeSegment(string segment, bool atTextStart, PreTokenizedSink sink, List<int> destination)
    {
        string normalized = _parts.Normalizer?.Normalize(segment) ?? segment;
        if (_normalizedAddedTokens.IsEmpty)
        {
            sink.Continue(normalized, atTextStart, 0);
            return;
        }
        var pieces = new List<(int Start, int Length, AddedToken? Token)>();
        _normalizedAddedTokens.Split(normalized, pieces);
        foreach (var (start, length, token) in pieces)
        {
            if (token is not null) destination.Add(token.Id);
            else sink.Continue(normalized.AsSpan(start, length), atTextStart && start == 0, 0);
        }
    }

    private static string ReplaceLoneSurrogates(string text)
    {
        int first = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (first < 0) return text;
        char[]? copy = null;
        for (int i = first; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                copy ??= text.ToCharArray();
                copy[i] = '\uFFFD';
            }
        }
        return copy is null ? text : new string(copy);
    }

    private static string ReadText(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException(path, $"the file cannot be read: {ex.Message}", ex);
        }
    }
}
