namespace Disagg.Benchmarks.Serving;

/// <summary>
/// The long-prompt workload: distinct random prompts of one length (2,048 tokens by default) with long outputs (300 tokens),
/// arriving as a Poisson process. Prefill-heavy: where disaggregation should help decode latency most.
/// </summary>
public sealed record LongPromptWorkload : PoissonWorkload
{
    /// <summary>Prompt length of every request.</summary>
    public int PromptTokens { get; init; } = 2048;

    /// <summary>Output length of every request.</summary>
    public int OutputTokens { get; init; } = 300;

    /// <inheritdoc />
    public override IReadOnlyList<WorkloadRequest> Generate()
    {
        ValidateCommon();
        WorkloadChecks.Positive(PromptTokens, nameof(PromptTokens));
        WorkloadChecks.Positive(OutputTokens, nameof(OutputTokens));
        var rng = new Random(Seed);
        double t = 0;
        var list = new List<WorkloadRequest>(Requests);
        for (int i = 0; i < Requests; i++)
        {
            t += PoissonArrivals.NextGap(rng, RequestsPerSecond);
            list.Add(new WorkloadRequest(t, WorkloadChecks.RandomTokens(rng, PromptTokens, Vocabulary), OutputTokens));
        }
        return list;
    }
}
