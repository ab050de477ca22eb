namespace Disagg;

/// <summary>One generated token as it streams out of an engine.</summary>
/// <param name="TokenId">The token id.</param>
/// <param name="Index">0 for the first generated token, then 1, 2, ...</param>
/// <param name="Timestamp"><see cref="System.Diagnostics.Stopwatch"/> timestamp at which the token was sampled.</param>
/// <param name="Finish">Set on the last token of the sequence: why it stopped. Null on every other token.</param>
public readonly record struct GeneratedToken(int TokenId, int Index, long Timestamp, FinishReason? Finish = null)
{
    /// <summary>True when this is the sequence's last token.</summary>
    public bool IsLast => Finish is not null;
}
