using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Disagg.Kv;

namespace Disagg.Benchmarks.Tests.Serving;

/// <summary>
/// An engine with no model: it streams the requested number of tokens, yielding the thread between them. A prompt whose
/// first token is <see cref="Overloaded"/> is refused, <see cref="Broken"/> fails mid-stream, <see cref="Stuck"/> never
/// produces a token. It records the order in which requests start and finish (by their prompt's first token).
/// </summary>
internal sealed class ScriptedEngine : IInferenceEngine
{
    public const int Overloaded = -1, Broken = -2, Stuck = -3;

    public ConcurrentQueue<string> Events { get; } = new();

    public KvCacheLayout KvLayout { get; } = new(1, 1, 1, 16, KvDataType.Float32);
    public int MaxContextLength => 4096;
    public EngineLoad GetLoad() => new(0, 0, 1, 1);

    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(InferenceRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        int id = request.PromptTokens.Span[0];
        Events.Enqueue($"start {id}");
        if (id == Overloaded) throw new EngineOverloadedException("queue full");
        if (id == Stuck) await Task.Delay(Timeout.Infinite, cancellationToken);
        int n = request.Sampling.MaxTokens;
        for (int i = 0; i < n; i++)
        {
            await Task.Yield();
            if (id == Broken && i == 2) throw new InvalidOperationException("device lost");
            yield return new GeneratedToken(7, i, System.Diagnostics.Stopwatch.GetTimestamp(), i == n - 1 ? FinishReason.MaxTokens : null);
        }
        Events.Enqueue($"end {id}");
    }
}
