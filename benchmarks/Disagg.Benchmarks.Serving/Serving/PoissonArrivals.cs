namespace Disagg.Benchmarks.Serving;

/// <summary>Arrival times of a Poisson process: independent exponential gaps with mean 1 / rate.</summary>
public static class PoissonArrivals
{
    /// <summary>The next gap in seconds for <paramref name="requestsPerSecond"/>, by inverting the exponential CDF.</summary>
    public static double NextGap(Random rng, double requestsPerSecond)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (!(requestsPerSecond > 0 && double.IsFinite(requestsPerSecond)))
            throw new ArgumentOutOfRangeException(nameof(requestsPerSecond), requestsPerSecond, "The request rate must be a positive, finite number.");
        return -Math.Log(1 - rng.NextDouble()) / requestsPerSecond; // 1 - U is in (0, 1]: never log(0)
    }
}
