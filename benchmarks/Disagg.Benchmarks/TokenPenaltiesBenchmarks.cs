using BenchmarkDotNet.Attributes;
using Disagg.Sampling;

namespace Disagg.Benchmarks;

/// <summary>
/// The host's share of a penalized decode step for one sequence: finding the tokens that the repetition and frequency
/// penalties touch. <see cref="FromScratch"/> counts the whole history every step and lists each token touched with its
/// penalty (what the executor did at first); <see cref="Incremental"/> keeps the counts in the sequence, adds the one new
/// token and copies each distinct token with its count into the table the device sampler uploads (what it does now). Prompts of random ids from a 32,000-token vocabulary; the
/// generated tokens repeat prompt tokens, so the distinct set stays the prompt's.
/// </summary>
[MemoryDiagnoser]
public class TokenPenaltiesBenchmarks
{
    private const int Generated = 1 << 20;
    private static readonly SamplingParameters Penalties = new() { RepetitionPenalty = 1.05f, FrequencyPenalty = 0.2f };
    private readonly List<PenalizedToken> _entries = [];
    private readonly PenaltyTable _table = new();
    private readonly TokenPenalties _scratch = new(), _sequence = new();
    private int[] _tokens = [];
    private int _length;

    /// <summary>Prompt tokens.</summary>
    [Params(512, 8192)]
    public int History { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        _tokens = new int[History + Generated];
        for (int i = 0; i < History; i++) _tokens[i] = random.Next(32_000);
        for (int i = History; i < _tokens.Length; i++) _tokens[i] = _tokens[random.Next(History)];
        _length = History;
        _sequence.Update(_tokens.AsSpan(0, _length), History);
    }

    /// <summary>Counts prompt and output from scratch, then lists the touched tokens.</summary>
    [Benchmark(Baseline = true)]
    public int FromScratch()
    {
        _entries.Clear();
        _scratch.Collect(_tokens.AsSpan(0, History + 64), History, Penalties, _entries);
        return _entries.Count;
    }

    /// <summary>Adds one generated token to the sequence's counts, then fills the device sampler's table.</summary>
    [Benchmark]
    public int Incremental()
    {
        if (++_length > _tokens.Length) _length = History + 1; // after a million steps: starts over (counted once)
        _sequence.Update(_tokens.AsSpan(0, _length), History);
        _table.Clear();
        _table.Add(0, 32_000, _sequence);
        return _table.Count;
    }
}
