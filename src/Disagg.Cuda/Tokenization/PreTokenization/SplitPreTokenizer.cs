namespace Disagg.Tokenization;

/// <summary>
/// HF <c>Split</c> with behavior <c>Isolated</c> (and <c>invert</c> false): regex matches and the gaps between them
/// become separate pieces. This is how Llama 3 and Qwen carve text into words before byte-level BPE.
/// </summary>
internal sealed class SplitPreTokenizer(CodePointRegex regex) : PreTokenizerStep
{
    public override void Process(ReadOnlySpan<char> piece, bool atTextStart, PreTokenizedSink sink, int nextStep)
    {
        var pieces = new List<(int Start, int Length)>();
        regex.SplitIsolated(piece, pieces);
        foreach (var (start, length) in pieces)
        {
            sink.Continue(piece.Slice(start, length), atTextStart && start == 0, nextStep);
        }
    }
}
