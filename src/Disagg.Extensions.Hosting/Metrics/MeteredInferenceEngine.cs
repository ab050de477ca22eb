using System.Diagnostics;
using System.Runtime.CompilerServices;
using Disagg.Kv;

namespace Disagg.Extensions.Hosting.Metrics;

/// <summary>
/// An <see cref="IInferenceEngine"/> decorator that measures each request's token stream (time to first token, time per
/// output token, duration, token usage) and records it on <see cref="DisaggMetrics"/> when the stream ends, however it ends.
/// </summary>
internal sealed class MeteredInferenceEngine(IInferenceEngine inner, DisaggMetrics metrics, string model) : IInferenceEngine
{
    /// <summary>The gen_ai.operation.name of requests that come in through <see cref="IInferenceEngine"/> directly.</summary>
    public const string TextCompletion = "text_completion";

    /// <summary>The gen_ai.operation.name of requests from the chat client.</summary>
    public const string Chat = "chat";

    public IInferenceEngine Inner => inner;

    public KvCacheLayout KvLayout => inner.KvLayout;

    public int MaxContextLength => inner.MaxContextLength;

    public EngineLoad GetLoad() => inner.GetLoad();

    public IAsyncEnumerable<GeneratedToken> GenerateAsync(InferenceRequest request, CancellationToken cancellationToken = default) =>
        GenerateAsync(request, TextCompletion, cancellationToken);

    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(
        InferenceRequest request, string operation, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        long first = 0, last = 0;
        int count = 0;
        string? error = null;
        var tokens = inner.GenerateAsync(request, cancellationToken).GetAsyncEnumerator(cancellationToken);
        try
        {
            while (true)
            {
                try
                {
                    if (!await tokens.MoveNextAsync().ConfigureAwait(false)) break;
                }
                catch (Exception ex)
                {
                    error = ex.GetType().FullName ?? "_OTHER";
                    throw;
                }
                var token = tokens.Current;
                if (count == 0) first = token.Timestamp;
                last = token.Timestamp;
                count++;
                yield return token;
            }
        }
        finally
        {
            await tokens.DisposeAsync().ConfigureAwait(false);
            metrics.RecordRequest(new RequestOutcome(operation, model, request.ArrivalTimestamp, first, last, Stopwatch.GetTimestamp(),
                request.PromptTokens.Length, count, error));
        }
    }
}
