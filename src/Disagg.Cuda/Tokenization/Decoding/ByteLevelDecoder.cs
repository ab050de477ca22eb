using System.Text;

namespace Disagg.Tokenization;

/// <summary>
/// HF <c>ByteLevel</c> decoder: every token is read back as bytes through the <see cref="ByteLevelAlphabet"/>
/// (a token with a character outside the alphabet, such as an added token with non-Latin-1 text, contributes its
/// own UTF-8 bytes instead), and the concatenated bytes are decoded as UTF-8 with U+FFFD for invalid sequences.
/// </summary>
internal sealed class ByteLevelDecoder : DecoderStep
{
    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    public override bool FusesTokens => true;

    // Tokens map to bytes one by one, but a piece of a fused token may split a character of it; keep tokens whole.
    public override bool AcceptsPieces => false;

    public override List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (string token in tokens) AppendBytes(token, bytes);
        return [s_utf8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes))];
    }

    public override DecoderStream CreateStream() => new Stream();

    private static void AppendBytes(string token, List<byte> bytes)
    {
        int start = bytes.Count;
        foreach (char c in token)
        {
            if (!ByteLevelAlphabet.TryGetByte(c, out byte b))
            {
                bytes.RemoveRange(start, bytes.Count - start);
                bytes.AddRange(Encoding.UTF8.GetBytes(token));
                return;
            }
            bytes.Add(b);
        }
    }

    /// <summary>
    /// Feeds bytes to a stateful UTF-8 decoder, which holds an incomplete trailing sequence until the next token
    /// completes or breaks it, so a character split over tokens is never emitted as U+FFFD halves.
    /// </summary>
    private sealed class Stream : DecoderStream
    {
        private readonly Decoder _decoder = s_utf8.GetDecoder();
        private readonly List<byte> _bytes = [];
        private bool _started;

        public override void Push(StreamPiece piece, List<StreamPiece> output)
        {
            _bytes.Clear();
            AppendBytes(piece.Text, _bytes);
            Emit(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_bytes), flush: false, output);
        }

        public override void Flush(List<StreamPiece> output)
        {
            Emit([], flush: true, output);
            _started = false;
        }

        private void Emit(ReadOnlySpan<byte> bytes, bool flush, List<StreamPiece> output)
        {
            var chars = new char[_decoder.GetCharCount(bytes, flush)];
            int count = _decoder.GetChars(bytes, chars, flush);
            output.Add(new StreamPiece(new string(chars, 0, count), StartsToken: !_started));
            _started = true;
        }
    }
}
