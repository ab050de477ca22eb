namespace Disagg.Benchmarks.Serving;

/// <summary>One request of a replayed workload.</summary>
/// <param name="ArrivalSeconds">When the request is due, in seconds from the start of the replay.</param>
/// <param name="Prompt">The prompt's token ids.</param>
/// <param name="OutputTokens">Tokens to generate (end-of-sequence is ignored, so exactly this many unless the context ends).</param>
/// <param name="PreviousTurn">
/// For a follow-up turn of a conversation: the index of the request it answers. It is sent only once that request has
/// finished (a user reads the answer before replying), and its prompt extends that request's prompt.
/// </param>
public sealed record WorkloadRequest(double ArrivalSeconds, int[] Prompt, int OutputTokens, int? PreviousTurn = null);
