using System.Runtime.CompilerServices;

namespace Disagg.Text;

/// <summary>
/// Text in, text out, over any <see cref="IInferenceEngine"/>: encodes the prompt, streams the generated tokens as text,
/// and ends generation at the request's stop strings (the engine itself only knows token ids). Thread-safe.
/// </summary>
public sealed class TextGenerator
{
    private readonly IInferenceEngine _engine;

    /// <summary>Creates a generator over <paramref name="engine"/> with <paramref name="tokenizer"/>.</summary>
    public TextGenerator(IInferenceEngine engine, ITextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(tokenizer);
        _engine = engine;
        Tokenizer = tokenizer;
    }

    /// <summary>The tokenizer.</summary>
    public ITextTokenizer Tokenizer { get; }

    /// <summary>Generates the continuation of <paramref name="prompt"/> (encoded with the model's special tokens).</summary>
    public IAsyncEnumerable<TextChunk> GenerateAsync(string prompt, SamplingParameters sampling, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        return GenerateAsync(new InferenceRequest(Tokenizer.Encode(prompt).ToArray(), sampling), cancellationToken);
    }

    /// <summary>
    /// Generates the continuation of <paramref name="request"/> as text. The last chunk carries the finish reason; when a
    /// stop string ends generation it is <see cref="FinishReason.StopString"/>, the stop string and anything after it are not
    /// returned, and the engine's request is cancelled (its KV blocks return to the pool).
    /// </summary>
    public async IAsyncEnumerable<TextChunk> GenerateAsync(InferenceRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var detokenizer = Tokenizer.CreateStreamingDetokenizer();
        var stops = new StopStringMatcher(request.Sampling.StopStrings);
        // Leaving this loop early disposes the engine's stream, which cancels the request.
        await foreach (var token in _engine.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            string text = detokenizer.Append(token.TokenId);
            if (token.IsLast) text += detokenizer.Flush();
            string shown = stops.Push(text, out bool stopped);
            if (stopped)
            {
                yield return new TextChunk(shown, token, FinishReason.StopString);
                yield break;
            }
            if (token.IsLast)
            {
                yield return new TextChunk(shown + stops.Flush(), token, token.Finish);
                yield break;
            }
            yield return new TextChunk(shown, token);
        }
    }
}
