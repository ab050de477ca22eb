using System.Globalization;
using System.Text;
using System.Text.Unicode;

namespace Disagg.Tokenization;

/// <summary>
/// HF <c>ByteFallback</c> decoder: a run of consecutive <c>&lt;0xXX&gt;</c> tokens becomes the text of those bytes
/// when the whole run is valid UTF-8, and otherwise one U+FFFD per byte of the run (HF's rule, which is why a stream
/// must hold the entire run until it ends: a bad byte at its end turns earlier, valid bytes into U+FFFD as well).
/// </summary>
internal sealed class ByteFallbackDecoder : DecoderStep
{
    // A byte token is a whole token; a fused piece could be part of one.
    public override bool AcceptsPieces => false;

    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var run = new List<byte>();
        foreach (string token in tokens)
        {
            if (TryParseByte(token, out byte value))
            {
                run.Add(value);
                continue;
            }
            EmitRun(run, text => result.Add(text));
            result.Add(token);
        }
        EmitRun(run, text => result.Add(text));
        return result;
    }

    public override DecoderStream CreateStream() => new Stream();

    /// <summary>Whether <paramref name="token"/> is of the form <c>&lt;0xXX&gt;</c> (two hex digits).</summary>
    public static bool TryParseByte(string token, out byte value)
    {
        value = 0;
        return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }

    private static void EmitRun(List<byte> run, Action<string> emit)
    {
        if (run.Count == 0) return;
        var bytes = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(run);
        if (Utf8.IsValid(bytes)) emit(Encoding.UTF8.GetString(bytes));
        else for (int i = 0; i < run.Count; i++) emit("\uFFFD");
        run.Clear();
    }

    private sealed class Stream : DecoderStream
    {
        private readonly List<byte> _run = [];

        public override void Push(StreamPiece piece, List<StreamPiece> output)
        {
            if (TryParseByte(piece.Text, out byte value))
            {
                _run.Add(value);
                return;
            }
            EmitRun(_run, text => output.Add(new StreamPiece(text, StartsToken: true)));
            output.Add(piece);
        }

        public override void Flush(List<StreamPiece> output) => EmitRun(_run, text => output.Add(new StreamPiece(text, StartsToken: true)));
    }
}
