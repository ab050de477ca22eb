namespace Disagg.Tokenization;

/// <summary>HF <c>Replace</c> decoder with a literal pattern, e.g. "▁" back to " " for SentencePiece vocabularies.</summary>
internal sealed class ReplaceDecoder(string pattern, string content) : DecoderStep
{
    // A one-character pattern cannot straddle two pieces, so it is safe after a fusing step.
    public override bool AcceptsPieces => pattern.Length == 1;

    public override List<string> DecodeChain(List<string> tokens) => tokens.ConvertAll(Apply);

    public override DecoderStream CreateStream() => new Stream(this);

    private string Apply(string token) => token.Replace(pattern, content, StringComparison.Ordinal);

    private sealed class Stream(ReplaceDecoder owner) : DecoderStream
    {
        public override void Push(StreamPiece piece, List<StreamPiece> output) => output.Add(piece with { Text = owner.Apply(piece.Text) });
    }
}
