namespace Disagg.Benchmarks.Serving;

/// <summary>Argument checks and random tokens shared by the workload generators.</summary>
internal static class WorkloadChecks
{
    public static void Positive(int value, string name)
    {
        if (value < 1) throw new ArgumentOutOfRangeException(name, value, $"{name} must be at least 1.");
    }

    public static void Range(int min, int max, string minName, string maxName)
    {
        Positive(min, minName);
        if (max < min) throw new ArgumentOutOfRangeException(maxName, max, $"{maxName} must be at least {minName} ({min}).");
    }

    public static int[] RandomTokens(Random rng, int count, int vocabulary)
    {
        var tokens = new int[count];
        for (int i = 0; i < count; i++) tokens[i] = rng.Next(vocabulary);
        return tokens;
    }
}
