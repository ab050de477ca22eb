using Disagg.Coordination;
using Disagg.Kv;

namespace Disagg.GpuBench;

/// <summary>Colocated replicas behind a router: each request runs whole on the replica the router picks.</summary>
internal sealed class RoutedEngine(WorkerRouter<LlmEngine> router) : IInferenceEngine
{
    public KvCacheLayout KvLayout => router.Workers[0].KvLayout;
    public int MaxContextLength => router.Workers.Min(w => w.MaxContextLength);

    public EngineLoad GetLoad()
    {
        int waiting = 0, running = 0, free = 0, total = 0;
        foreach (var w in router.Workers)
        {
            var l = w.GetLoad();
            (waiting, running, free, total) = (waiting + l.WaitingRequests, running + l.RunningSequences, free + l.FreeKvBlocks, total + l.TotalKvBlocks);
        }
        return new EngineLoad(waiting, running, free, total);
    }

    public IAsyncEnumerable<GeneratedToken> GenerateAsync(InferenceRequest request, CancellationToken cancellationToken = default) =>
        router.Pick(request.PromptTokens.Span, out _).GenerateAsync(request, cancellationToken);
}
