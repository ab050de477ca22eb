namespace Disagg.Tokenization;

/// <summary>HF <c>Fuse</c> decoder: concatenates all tokens into one, so later steps see a single token.</summary>
internal sealed class FuseDecoder : DecoderStep
{
    public override bool FusesTokens => true;

    public override List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];

    public override DecoderStream CreateStream() => new Stream();

    private sealed class Stream : DecoderStream
    {
        private bool _started;

        public override void Push(StreamPiece piece, List<StreamPiece> output)
        {
            output.Add(new StreamPiece(piece.Text, !_started));
            _started = true;
        }

        public override void Flush(List<StreamPiece> output) => _started = false;
    }
}
