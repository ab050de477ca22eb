namespace Disagg.GpuBench;

/// <summary>One request of a replayed workload: when it arrives (seconds from the start), its prompt and its output length.</summary>
internal sealed record WorkloadRequest(double ArrivalSeconds, int[] Prompt, int OutputTokens);

/// <summary>Synthetic serving workloads with Poisson arrivals (exponential gaps at a given request rate).</summary>
internal static class ServingWorkload
{
    /// <summary>Long prompts: <paramref name="promptTokens"/>-token prompts with <paramref name="outputTokens"/>-token outputs, all distinct.</summary>
    public static List<WorkloadRequest> LongPrompts(int count, double requestsPerSecond, int promptTokens, int outputTokens, int vocabulary, int seed)
    {
        var rng = new Random(seed);
        double t = 0;
        var list = new List<WorkloadRequest>(count);
        for (int i = 0; i < count; i++)
        {
            t += Exponential(rng, requestsPerSecond);
            list.Add(new WorkloadRequest(t, Tokens(rng, promptTokens, vocabulary), outputTokens));
        }
        return list;
    }

    /// <summary>Chat: a few shared system prompts, each request a system prompt plus a short user turn, short-to-medium answers.</summary>
    public static List<WorkloadRequest> Chat(int count, double requestsPerSecond, int vocabulary, int seed)
    {
        var rng = new Random(seed);
        var systems = Enumerable.Range(0, 4).Select(_ => Tokens(rng, 512, vocabulary)).ToArray();
        double t = 0;
        var list = new List<WorkloadRequest>(count);
        for (int i = 0; i < count; i++)
        {
            t += Exponential(rng, requestsPerSecond);
            int[] prompt = [.. systems[rng.Next(systems.Length)], .. Tokens(rng, rng.Next(16, 256), vocabulary)];
            list.Add(new WorkloadRequest(t, prompt, rng.Next(32, 256)));
        }
        return list;
    }

    private static double Exponential(Random rng, double rate) => -Math.Log(1 - rng.NextDouble()) / rate;

    private static int[] Tokens(Random rng, int n, int vocabulary)
    {
        var t = new int[n];
        for (int i = 0; i < n; i++) t[i] = rng.Next(vocabulary);
        return t;
    }
}
