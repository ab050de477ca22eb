namespace Disagg.Tokenization;

/// <summary>
/// Turns generated token ids into text one id at a time. Each <see cref="Append"/> returns only text that can no
/// longer change: a character whose UTF-8 bytes span several tokens is held until complete, a run of byte-fallback
/// tokens is held until it ends (HF turns a whole invalid run into U+FFFD), and SentencePiece's leading space is
/// dropped exactly as in <see cref="ModelTokenizer.Decode(ReadOnlySpan{int}, bool)"/>. The concatenation of all
/// returned deltas and <see cref="Flush"/> equals <c>Decode</c> of all the ids. Not thread-safe: one per sequence.
/// </summary>
public sealed class StreamingDetokenizer : Disagg.Text.IStreamingDetokenizer
{
    private readonly ModelTokenizer _tokenizer;
    private readonly DecoderPipeline.Stream _stream;
    private readonly bool _skipSpecialTokens;

    internal StreamingDetokenizer(ModelTokenizer tokenizer, DecoderPipeline.Stream stream, bool skipSpecialTokens)
    {
        _tokenizer = tokenizer;
        _stream = stream;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>Adds one token id and returns the text that became final (often empty, never a broken character).</summary>
    /// <param name="tokenId">The id; ids outside the vocabulary are skipped, as in Decode.</param>
    public string Append(int tokenId) =>
        _tokenizer.TryGetDecodableToken(tokenId, _skipSpecialTokens, out string? token) ? _stream.Push(token) : string.Empty;

    /// <summary>Ends the sequence: returns the text held back (incomplete bytes become U+FFFD) and resets for a new one.</summary>
    public string Flush() => _stream.Flush();
}
