namespace Disagg.Text;

/// <summary>One step of a text stream: the text released by one generated token.</summary>
/// <param name="Text">New text, possibly empty (a character still incomplete, or text held back because it may start a stop string).</param>
/// <param name="Token">The generated token that released it.</param>
/// <param name="Finish">Set on the last chunk: why generation stopped.</param>
public readonly record struct TextChunk(string Text, GeneratedToken Token, FinishReason? Finish = null)
{
    /// <summary>True on the stream's last chunk.</summary>
    public bool IsLast => Finish is not null;
}
