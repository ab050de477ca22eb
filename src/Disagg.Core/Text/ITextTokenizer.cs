namespace Disagg.Text;

/// <summary>
/// Text to token ids and back, as the text layer needs it. Disagg.Cuda's <c>ModelTokenizer</c> implements it for Hugging Face
/// tokenizers; tests use small fakes. Implementations must be safe to call from several threads.
/// </summary>
public interface ITextTokenizer
{
    /// <summary>Token ids of <paramref name="text"/>, with the model's own special tokens (such as BOS) when <paramref name="addSpecialTokens"/>.</summary>
    IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true);

    /// <summary>A decoder for one stream of generated ids (not thread-safe; one per sequence).</summary>
    IStreamingDetokenizer CreateStreamingDetokenizer();
}

/// <summary>Turns a stream of token ids into text as soon as it is final, never splitting a character.</summary>
public interface IStreamingDetokenizer
{
    /// <summary>Adds one token; returns the text that became final (often empty while a multi-byte character is incomplete).</summary>
    string Append(int tokenId);

    /// <summary>Returns whatever text is still held back (at the end of the stream).</summary>
    string Flush();
}
