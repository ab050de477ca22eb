namespace Disagg.Tokenization;

/// <summary>
/// One step of a tokenizer.json <c>pre_tokenizer</c>. A step receives one piece of normalized text, may split or
/// rewrite it, and passes each resulting piece on to the next step (or the model) through <see cref="PreTokenizedSink"/>.
/// Passing spans down the chain avoids materializing the intermediate lists of strings that HF keeps.
/// </summary>
internal abstract class PreTokenizerStep
{
    /// <param name="piece">The piece of text.</param>
    /// <param name="atTextStart">Whether the piece starts at offset 0 of the original input (Metaspace's "first" scheme).</param>
    /// <param name="sink">Where the resulting pieces go.</param>
    /// <param name="nextStep">Index of the step after this one, to hand to <see cref="PreTokenizedSink.Continue"/>.</param>
    public abstract void Process(ReadOnlySpan<char> piece, bool atTextStart, PreTokenizedSink sink, int nextStep);
}

/// <summary>Drives the pre-tokenizer steps of one encode call and feeds the final pieces to the BPE model.</summary>
internal sealed class PreTokenizedSink(IReadOnlyList<PreTokenizerStep> steps, BpeModel model, List<int> output)
{
    public void Continue(ReadOnlySpan<char> piece, bool atTextStart, int step)
    {
        if (piece.IsEmpty) return;
        if (step == steps.Count) model.EncodeWord(piece, output);
        else steps[step].Process(piece, atTextStart, this, step + 1);
    }
}
