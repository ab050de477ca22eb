namespace Disagg.Tokenization;

/// <summary>
/// HF <c>Metaspace</c> decoder: the replacement character becomes a space, except in the first token, where (unless
/// the prepend scheme is "never") it is dropped, undoing the prefix the pre-tokenizer added.
/// </summary>
internal sealed class MetaspaceDecoder(char replacement, PrependScheme scheme) : DecoderStep
{
    public override List<string> DecodeChain(List<string> tokens) => tokens.Select((token, i) => Apply(token, i == 0)).ToList();

    public override DecoderStream CreateStream() => new Stream(this);

    private string Apply(string token, bool first) => first && scheme != PrependScheme.Never
        ? token.Replace(replacement.ToString(), string.Empty, StringComparison.Ordinal)
        : token.Replace(replacement, ' ');

    private sealed class Stream(MetaspaceDecoder owner) : DecoderStream
    {
        private int _tokens;

        public override void Push(StreamPiece piece, List<StreamPiece> output)
        {
            if (piece.StartsToken) _tokens++;
            output.Add(piece with { Text = owner.Apply(piece.Text, first: _tokens <= 1) });
        }

        public override void Flush(List<StreamPiece> output) => _tokens = 0;
    }
}
