namespace Disagg.Tokenization;

/// <summary>
/// One step of a tokenizer.json <c>decoder</c>, in two forms that must agree: <see cref="DecodeChain"/> is HF's
/// batch semantics over the whole token list (used by <see cref="ModelTokenizer.Decode(ReadOnlySpan{int}, bool)"/>),
/// and <see cref="CreateStream"/> gives the incremental form that <see cref="StreamingDetokenizer"/> chains.
/// </summary>
internal abstract class DecoderStep
{
    /// <summary>
    /// Whether the step turns the token list into one token (HF's <c>Fuse</c> and <c>ByteLevel</c>), after which the
    /// stream carries pieces of that single token instead of whole tokens.
    /// </summary>
    public virtual bool FusesTokens => false;

    /// <summary>
    /// Whether the step can run on partial pieces of a token (needed when it comes after a fusing step).
    /// </summary>
    public virtual bool AcceptsPieces => true;

    /// <summary>Transforms the token strings as HF's <c>decode_chain</c> does.</summary>
    public abstract List<string> DecodeChain(List<string> tokens);

    /// <summary>A fresh incremental form of this step.</summary>
    public abstract DecoderStream CreateStream();
}

/// <summary>A piece of decoded text flowing between streaming decoder steps.</summary>
/// <param name="Text">The text.</param>
/// <param name="StartsToken">Whether the piece begins a new token (false for continuations of a fused token).</param>
internal readonly record struct StreamPiece(string Text, bool StartsToken);

/// <summary>
/// Incremental form of a <see cref="DecoderStep"/>: pieces in, pieces out. The concatenation of everything a stream
/// outputs (through <see cref="Flush"/>) equals the concatenation of the batch step's output tokens.
/// </summary>
internal abstract class DecoderStream
{
    public abstract void Push(StreamPiece piece, List<StreamPiece> output);

    /// <summary>Emits whatever was held back; the stream then starts over.</summary>
    public virtual void Flush(List<StreamPiece> output)
    {
    }
}
