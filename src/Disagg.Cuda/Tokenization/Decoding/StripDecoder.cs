using System.Text;

namespace Disagg.Tokenization;

/// <summary>
/// HF <c>Strip</c> decoder: removes up to <c>start</c> leading and <c>stop</c> trailing occurrences of one character
/// from each token. After <c>Fuse</c> this is SentencePiece's "drop the dummy-prefix space of the whole text".
/// </summary>
internal sealed class StripDecoder(char content, int start, int stop) : DecoderStep
{
    private char Content => content;

    private int Start => start;

    private int Stop => stop;

    public override List<string> DecodeChain(List<string> tokens) => tokens.ConvertAll(Apply);

    public override DecoderStream CreateStream() => new Stream(this);

    private string Apply(string token)
    {
        int startCut = 0;
        while (startCut < start && startCut < token.Length && token[startCut] == content) startCut++;
        int stopCut = token.Length;
        while (token.Length - stopCut < stop && stopCut > startCut && token[stopCut - 1] == content) stopCut--;
        return token[startCut..stopCut];
    }

    /// <summary>
    /// Strips the start of each token as its first characters arrive, and holds back a trailing run of the character
    /// (when <c>stop</c> is non-zero) until the token is known to have ended.
    /// </summary>
    private sealed class Stream(StripDecoder owner) : DecoderStream
    {
        private int _startLeft;
        private readonly StringBuilder _trailing = new();

        public override void Push(StreamPiece piece, List<StreamPiece> output)
        {
            bool startsToken = piece.StartsToken;
            if (startsToken)
            {
                EndToken(output);
                _startLeft = owner.Start;
            }
            string text = piece.Text;
            int skip = 0;
            while (_startLeft > 0 && skip < text.Length)
            {
                if (text[skip] != owner.Content)
                {
                    _startLeft = 0;
                    break;
                }
                skip++;
                _startLeft--;
            }
            text = text[skip..];
            if (owner.Stop > 0)
            {
                _trailing.Append(text);
                int keep = _trailing.Length;
                while (keep > 0 && _trailing[keep - 1] == owner.Content) keep--;
                text = _trailing.ToString(0, keep);
                _trailing.Remove(0, keep);
            }
            // Text that only starts stripping still marks the token boundary for later steps.
            if (text.Length > 0 || startsToken) output.Add(new StreamPiece(text, startsToken));
        }

        public override void Flush(List<StreamPiece> output) => EndToken(output);

        private void EndToken(List<StreamPiece> output)
        {
            int drop = Math.Min(owner.Stop, _trailing.Length);
            if (_trailing.Length > drop) output.Add(new StreamPiece(_trailing.ToString(0, _trailing.Length - drop), StartsToken: false));
            _trailing.Clear();
        }
    }
}
