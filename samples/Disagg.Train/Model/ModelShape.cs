namespace Disagg.Train.Model;

/// <summary>The hyperparameters of the Llama the trainer builds; they become config.json.</summary>
internal sealed record ModelShape(int VocabSize, int HiddenSize, int Layers, int Heads, int KeyValueHeads, int IntermediateSize, int MaxPositions)
{
    public const double RopeTheta = 10000.0, RmsNormEps = 1e-5;

    public int HeadDim => HiddenSize / Heads;

    /// <summary>Parameters with tied embeddings: the embedding, per layer attention + MLP + two norms, the final norm.</summary>
    public long ParameterCount
    {
        get
        {
            long h = HiddenSize, kv = (long)KeyValueHeads * HeadDim;
            long layer = h * h * 2 + h * kv * 2 + 3 * h * IntermediateSize + 2 * h;
            return (long)VocabSize * h + Layers * layer + h;
        }
    }
}
