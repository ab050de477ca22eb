namespace Disagg.Benchmarks.Serving;

/// <summary>
/// The long-prompt workload: distinct random prompts of one length (2,048 tokens by default) with long outputs (300 tokens),
/// arriving as a Poisson process. Prefill-heavy: where disaggregation should help decode latency most.
/// </summary>
public sealed record LongPromptWorkload
{
    /// <summary>Requests to generate.</summary>
    public required int Requests { get; init; }

    /// <summary>Mean arrival rate (requests per second).</summary>
    public required double RequestsPerSecond { get; init; }

    /// <summary>Prompt length of every request.</summary>
    public int PromptTokens { get; init; } = 2048;

    /// <summary>Output length of every request.</summary>
    public int OutputTokens { get; init; } = 300;

    /// <summary>Token ids are drawn uniformly from [0, Vocabulary).</summary>
    public int Vocabulary { get; init; } = 32000;

    /// <summary>Seed of the generator: the same seed gives the same workload.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Builds the requests, in arrival order.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A parameter is out of range (named in the message).</exception>
    public IReadOnlyList<WorkloadRequest> Generate()
    {
        WorkloadChecks.Positive(Requests, nameof(Requests));
        WorkloadChecks.Positive(PromptTokens, nameof(PromptTokens));
        WorkloadChecks.Positive(OutputTokens, nameof(OutputTokens));
        WorkloadChecks.Positive(Vocabulary, nameof(Vocabulary));
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
