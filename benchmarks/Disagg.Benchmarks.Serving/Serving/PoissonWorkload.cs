namespace Disagg.Benchmarks.Serving;

/// <summary>What every synthetic workload has: a number of requests arriving as a Poisson process, random token ids, a seed.</summary>
public abstract record PoissonWorkload
{
    /// <summary>Requests to generate.</summary>
    public required int Requests { get; init; }

    /// <summary>Mean arrival rate (requests per second).</summary>
    public required double RequestsPerSecond { get; init; }

    /// <summary>Token ids are drawn uniformly from [0, Vocabulary).</summary>
    public int Vocabulary { get; init; } = 32000;

    /// <summary>Seed of the generator: the same seed gives the same requests, and at another rate the same requests with scaled gaps.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Builds the requests, in arrival order.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A parameter is out of range (named in the message).</exception>
    public abstract IReadOnlyList<WorkloadRequest> Generate();

    /// <summary>Checks the shared parameters (the rate is checked by <see cref="PoissonArrivals"/>).</summary>
    protected void ValidateCommon()
    {
        WorkloadChecks.Positive(Requests, nameof(Requests));
        WorkloadChecks.Positive(Vocabulary, nameof(Vocabulary));
    }
}
