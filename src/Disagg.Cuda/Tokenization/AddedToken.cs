namespace Disagg.Tokenization;

/// <summary>An entry of tokenizer.json's <c>added_tokens</c>: text matched as a whole before the model runs.</summary>
/// <param name="Id">The token id.</param>
/// <param name="Content">The exact text.</param>
/// <param name="Special">Whether decode can skip it (<c>skip_special_tokens</c>).</param>
/// <param name="SingleWord">Only match when not inside a word.</param>
/// <param name="LeftStrip">Also consume the whitespace before a match.</param>
/// <param name="RightStrip">Also consume the whitespace after a match.</param>
/// <param name="Normalized">Match in normalized text rather than raw text.</param>
internal sealed record AddedToken(int Id, string Content, bool Special, bool SingleWord, bool LeftStrip, bool RightStrip, bool Normalized);
