namespace Disagg.Train.Training;

/// <summary>
/// How held-out perplexity is measured: the held-out token stream is cut into consecutive, non-overlapping windows of
/// <c>contextLength</c> tokens (the last one shorter); in each window every token after the first is predicted from the
/// tokens before it in that window. Perplexity is exp(mean negative log-likelihood) over all predicted tokens.
/// Disagg's test recomputes it from eval.json's context length and stride with this same definition.
/// </summary>
internal static class EvaluationWindows
{
    /// <summary>(start, length) of each window of at least two tokens.</summary>
    public static IEnumerable<(int Start, int Length)> Split(int tokenCount, int contextLength)
    {
        for (int start = 0; start < tokenCount; start += contextLength)
        {
            int length = Math.Min(contextLength, tokenCount - start);
            if (length >= 2) yield return (start, length);
        }
    }

    /// <summary>Tokens that get a prediction: each window's length minus one.</summary>
    public static int PredictedTokens(int tokenCount, int contextLength) => Split(tokenCount, contextLength).Sum(w => w.Length - 1);
}
