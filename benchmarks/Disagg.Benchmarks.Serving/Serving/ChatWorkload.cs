namespace Disagg.Benchmarks.Serving;

/// <summary>
/// The chat workload: a few shared system prompts, and multi-turn conversations whose later turns extend an earlier one
/// (system prompt, then every earlier user turn and answer, then the new user turn), so that a prefix cache is hit twice
/// over: by the shared system prompt and by the conversation's history. Turns arrive as a Poisson process; a follow-up is
/// sent only after the turn it answers has finished (<see cref="WorkloadRequest.PreviousTurn"/>).
/// </summary>
/// <remarks>
/// The earlier answer in a follow-up's prompt is a random stand-in of the requested output length, not the tokens the model
/// produced (they are not known when the workload is built), so a follow-up hits the cache for the earlier prompt, not for
/// the earlier answer. <see cref="PoissonWorkload.Requests"/> counts turns over all conversations, and
/// <see cref="PoissonWorkload.RequestsPerSecond"/> is their rate.
/// </remarks>
public sealed record ChatWorkload : PoissonWorkload
{
    /// <summary>Distinct system prompts shared by all conversations.</summary>
    public int SystemPrompts { get; init; } = 4;

    /// <summary>Length of each system prompt.</summary>
    public int SystemPromptTokens { get; init; } = 512;

    /// <summary>Shortest user turn.</summary>
    public int MinUserTokens { get; init; } = 16;

    /// <summary>Longest user turn.</summary>
    public int MaxUserTokens { get; init; } = 256;

    /// <summary>Shortest answer.</summary>
    public int MinOutputTokens { get; init; } = 32;

    /// <summary>Longest answer.</summary>
    public int MaxOutputTokens { get; init; } = 256;

    /// <summary>Most turns in one conversation.</summary>
    public int MaxTurns { get; init; } = 4;

    /// <summary>Chance that an arrival continues an open conversation rather than starting a new one.</summary>
    public double FollowUpProbability { get; init; } = 0.5;

    /// <summary>Longest prompt plus output allowed (the engine's context); a follow-up that would exceed it starts a new conversation instead.</summary>
    public int MaxContextTokens { get; init; } = int.MaxValue;

    /// <inheritdoc />
    public override IReadOnlyList<WorkloadRequest> Generate()
    {
        Validate();
        var rng = new Random(Seed);
        var systems = new int[SystemPrompts][];
        for (int i = 0; i < systems.Length; i++) systems[i] = WorkloadChecks.RandomTokens(rng, SystemPromptTokens, Vocabulary);

        var open = new List<Conversation>();
        var list = new List<WorkloadRequest>(Requests);
        double t = 0;
        for (int i = 0; i < Requests; i++)
        {
            t += PoissonArrivals.NextGap(rng, RequestsPerSecond);
            int[] user = WorkloadChecks.RandomTokens(rng, rng.Next(MinUserTokens, MaxUserTokens + 1), Vocabulary);
            int output = rng.Next(MinOutputTokens, MaxOutputTokens + 1);
            Conversation? conversation = null;
            if (open.Count > 0 && rng.NextDouble() < FollowUpProbability)
            {
                int pick = rng.Next(open.Count);
                conversation = open[pick];
                if ((long)conversation.History.Length + user.Length + output > MaxContextTokens)
                {
                    open.RemoveAt(pick); // full: this arrival starts a new conversation instead
                    conversation = null;
                }
            }
            int[] prompt;
            int? previous = null;
            if (conversation is null)
            {
                prompt = [.. systems[rng.Next(systems.Length)], .. user];
                conversation = new Conversation { TurnsLeft = rng.Next(1, MaxTurns + 1) };
                open.Add(conversation);
            }
            else
            {
                prompt = [.. conversation.History, .. user];
                previous = conversation.LastRequest;
            }
            list.Add(new WorkloadRequest(t, prompt, output, previous));
            conversation.History = [.. prompt, .. WorkloadChecks.RandomTokens(rng, output, Vocabulary)];
            conversation.LastRequest = i;
            if (--conversation.TurnsLeft == 0) open.Remove(conversation);
        }
        return list;
    }

    private void Validate()
    {
        ValidateCommon();
        WorkloadChecks.Positive(SystemPrompts, nameof(SystemPrompts));
        WorkloadChecks.Positive(SystemPromptTokens, nameof(SystemPromptTokens));
        WorkloadChecks.Range(MinUserTokens, MaxUserTokens, nameof(MinUserTokens), nameof(MaxUserTokens));
        WorkloadChecks.Range(MinOutputTokens, MaxOutputTokens, nameof(MinOutputTokens), nameof(MaxOutputTokens));
        WorkloadChecks.Positive(MaxTurns, nameof(MaxTurns));
        if (!(FollowUpProbability is >= 0 and <= 1))
            throw new ArgumentOutOfRangeException(nameof(FollowUpProbability), FollowUpProbability, "Must be in [0, 1].");
        if ((long)SystemPromptTokens + MaxUserTokens + MaxOutputTokens > MaxContextTokens)
            throw new ArgumentOutOfRangeException(nameof(MaxContextTokens), MaxContextTokens,
                $"A first turn can need {SystemPromptTokens + MaxUserTokens + MaxOutputTokens} tokens (system prompt, longest user turn, longest answer); the context allows {MaxContextTokens}.");
    }

    private sealed class Conversation
    {
        public int[] History = [];
        public int LastRequest;
        public int TurnsLeft;
    }
}
