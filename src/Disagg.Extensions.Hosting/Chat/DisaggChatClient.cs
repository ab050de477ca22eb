using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Disagg.Extensions.Hosting.Metrics;
using Disagg.Kv;
using Disagg.Text;
using Disagg.Tokenization;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;

namespace Disagg.Extensions.Hosting.Chat;

/// <summary>
/// <see cref="IChatClient"/> over the hosted model (<see cref="InferenceService"/>): messages are rendered with the model's chat
/// template, generated as text (stop strings honoured, special tokens hidden) and streamed as one <see cref="ChatResponseUpdate"/>
/// per text chunk. <c>AddDisaggregatedInference</c> registers it as itself and as <see cref="IChatClient"/>; to add middleware,
/// build a pipeline over it: <c>services.AddChatClient(sp =&gt; sp.GetRequiredService&lt;DisaggChatClient&gt;()).UseOpenTelemetry()</c>.
/// </summary>
/// <remarks>
/// <para>Mapping: system, user and assistant messages become template turns (leading system messages and
/// <see cref="ChatOptions.Instructions"/> are joined into one system turn, consecutive messages of one role into one turn).
/// <see cref="ChatOptions.Temperature"/>, <see cref="ChatOptions.TopP"/>, <see cref="ChatOptions.TopK"/>, <see cref="ChatOptions.Seed"/>,
/// <see cref="ChatOptions.MaxOutputTokens"/> (default <see cref="DisaggregatedInferenceOptions.DefaultMaxOutputTokens"/>) and
/// <see cref="ChatOptions.StopSequences"/>, <see cref="ChatOptions.PresencePenalty"/> and <see cref="ChatOptions.FrequencyPenalty"/>
/// become <see cref="SamplingParameters"/>, and so do the <see cref="ChatOptions.AdditionalProperties"/> <c>min_p</c> and
/// <c>repetition_penalty</c> (the names OpenAI-compatible servers take them by); generation also stops at the tokenizer's
/// end-of-sequence tokens. What a request leaves unset comes from the model's generation_config.json
/// (<see cref="DisaggregatedInferenceOptions.UseModelSamplingDefaults"/>, on by default), else from <see cref="SamplingParameters"/>
/// (temperature 1, no truncation, no penalty). <see cref="ChatOptions.ModelId"/> and other options are ignored.</para>
/// <para>Text only: images, audio, files, reasoning, tool calls, tool results, <see cref="ChatOptions.Tools"/> and JSON response
/// formats are rejected with <see cref="NotSupportedException"/>. Cancelling the token cancels the engine's request and frees its KV.</para>
/// <para>The final update carries the <see cref="ChatFinishReason"/> (stop or length) and a <see cref="UsageContent"/> with the
/// prompt and generated token counts. Thread-safe.</para>
/// </remarks>
public sealed class DisaggChatClient : IChatClient
{
    private readonly InferenceService _service;
    private readonly DisaggregatedInferenceOptions _options;
    private readonly ChatClientMetadata _metadata;
    private readonly OperationEngine _engine;

    /// <summary>Creates the client (the container does this).</summary>
    public DisaggChatClient(InferenceService service, IOptions<DisaggregatedInferenceOptions> options)
    {
        ArgumentNullException.ThrowIfNull(service);
        ArgumentNullException.ThrowIfNull(options);
        _service = service;
        _options = options.Value;
        _metadata = new ChatClientMetadata(DisaggMetrics.ProviderName, providerUri: null, defaultModelId: service.ModelId);
        _engine = new OperationEngine(service, MeteredInferenceEngine.Chat);
    }

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var (request, generator, createdAt) = await PrepareAsync(messages, options, cancellationToken).ConfigureAwait(false);
        var text = new StringBuilder();
        TextChunk last = default;
        await foreach (var chunk in generator.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            text.Append(chunk.Text);
            last = chunk;
        }
        string id = ResponseId(request);
        var message = new ChatMessage(ChatRole.Assistant, text.ToString()) { MessageId = id, CreatedAt = createdAt };
        return new ChatResponse(message)
        {
            ResponseId = id,
            ModelId = _service.ModelId,
            CreatedAt = createdAt,
            FinishReason = Map(last.Finish),
            Usage = Usage(request, last),
        };
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var (request, generator, createdAt) = await PrepareAsync(messages, options, cancellationToken).ConfigureAwait(false);
        string id = ResponseId(request);
        await foreach (var chunk in generator.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            if (chunk.Text.Length == 0 && !chunk.IsLast) continue; // a character still incomplete, or text held back for a stop string
            var contents = new List<AIContent>(2);
            if (chunk.Text.Length > 0) contents.Add(new TextContent(chunk.Text));
            var update = new ChatResponseUpdate(ChatRole.Assistant, contents)
            {
                ResponseId = id,
                MessageId = id,
                ModelId = _service.ModelId,
                CreatedAt = createdAt,
            };
            if (chunk.IsLast)
            {
                update.FinishReason = Map(chunk.Finish);
                update.Contents.Add(new UsageContent(Usage(request, chunk)));
            }
            yield return update;
        }
    }

    /// <summary>Returns the <see cref="ChatClientMetadata"/> (provider "disagg", the model id), this client, or the
    /// <see cref="InferenceService"/>; null for anything else or any key.</summary>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return _metadata;
        if (serviceType.IsInstanceOfType(this)) return this;
        if (serviceType.IsInstanceOfType(_service)) return _service;
        return null;
    }

    /// <summary>Does nothing: the engines belong to <see cref="InferenceService"/>.</summary>
    public void Dispose()
    {
        // The service owns the engines; the container disposes it.
    }

    private async Task<(InferenceRequest Request, TextGenerator Generator, DateTimeOffset CreatedAt)> PrepareAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var turns = ToTurns(messages, options);
        ToSampling(options, new SamplingParameters { MaxTokens = _options.DefaultMaxOutputTokens }); // bad options fail before the model is needed
        var model = await _service.GetModelAsync(cancellationToken).ConfigureAwait(false);
        var sampling = ToSampling(options, model.SamplingDefaults);
        var tokenizer = model.Tokenizer;
        ChatTemplate template;
        try
        {
            template = tokenizer.ChatTemplate;
        }
        catch (Cuda.Loading.ModelLoadException ex)
        {
            throw new NotSupportedException(
                $"The model '{_service.ModelId}' has no usable chat template ({ex.Message}); use IInferenceEngine or TextGenerator for raw completion.", ex);
        }
        string prompt = template.Render(turns, addGenerationPrompt: true);
        int[] tokens = [.. tokenizer.Encode(prompt, addSpecialTokens: false)];
        sampling = sampling with { StopTokenIds = [.. sampling.StopTokenIds.Union(tokenizer.EndOfSequenceTokenIds)] };
        var generator = new TextGenerator(_engine, tokenizer.AsTextTokenizer(skipSpecialTokens: true));
        return (new InferenceRequest(tokens, sampling), generator, DateTimeOffset.UtcNow);
    }

    /// <summary>Chat messages to template turns: leading system messages and <see cref="ChatOptions.Instructions"/> become one system
    /// turn; consecutive messages of one role are joined.</summary>
    internal static List<ChatTurn> ToTurns(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        var turns = new List<ChatTurn>();
        if (!string.IsNullOrWhiteSpace(options?.Instructions)) turns.Add(new ChatTurn(ChatTurn.System, options.Instructions));
        int index = 0;
        foreach (var message in messages)
        {
            ArgumentNullException.ThrowIfNull(message, nameof(messages));
            string role = RoleOf(message, index);
            var text = new StringBuilder();
            foreach (var content in message.Contents)
            {
                switch (content)
                {
                    case TextContent t:
                        text.Append(t.Text);
                        break;
                    case UsageContent:
                        break; // bookkeeping of an earlier response, not conversation text
                    default:
                        throw new NotSupportedException(
                            $"Message {index} ({message.Role}) holds {content.GetType().Name}: the Disagg chat client accepts text only " +
                            "(no images, audio, files, reasoning, tool calls or tool results).");
                }
            }
            if (turns.Count > 0 && turns[^1].Role == role)
                turns[^1] = turns[^1] with { Content = turns[^1].Content + "\n\n" + text };
            else
                turns.Add(new ChatTurn(role, text.ToString()));
            index++;
        }
        if (turns.Count == 0 || turns.TrueForAll(t => t.Role == ChatTurn.System))
            throw new ArgumentException("The conversation needs at least one user message.", nameof(messages));
        return turns;
    }

    private static string RoleOf(ChatMessage message, int index)
    {
        if (message.Role == ChatRole.User) return ChatTurn.User;
        if (message.Role == ChatRole.Assistant) return ChatTurn.Assistant;
        if (message.Role == ChatRole.System) return ChatTurn.System;
        if (message.Role == ChatRole.Tool)
            throw new NotSupportedException($"Message {index} has the tool role: the Disagg chat client does not support tool calling.");
        throw new NotSupportedException($"Message {index} has the role '{message.Role}': only system, user and assistant are supported.");
    }

    /// <summary>ChatOptions over <paramref name="defaults"/> to sampling parameters (stop tokens are added once the tokenizer is known).</summary>
    internal static SamplingParameters ToSampling(ChatOptions? options, SamplingParameters defaults)
    {
        if (options?.Tools is { Count: > 0 })
            throw new NotSupportedException("ChatOptions.Tools is set: the Disagg chat client does not support tool calling.");
        if (options?.ResponseFormat is ChatResponseFormatJson)
            throw new NotSupportedException("ChatOptions.ResponseFormat asks for JSON: the Disagg chat client has no constrained decoding.");
        var sampling = defaults;
        if (options is null) return sampling;
        if (options.MaxOutputTokens is { } maxTokens) sampling = sampling with { MaxTokens = maxTokens };
        if (options.Temperature is { } temperature) sampling = sampling with { Temperature = temperature };
        if (options.TopP is { } topP) sampling = sampling with { TopP = topP };
        if (options.TopK is { } topK) sampling = sampling with { TopK = topK };
        if (options.Seed is { } seed) sampling = sampling with { Seed = unchecked((ulong)seed) };
        if (options.StopSequences is { Count: > 0 } stops) sampling = sampling with { StopStrings = [.. stops] };
        if (options.PresencePenalty is { } presence) sampling = sampling with { PresencePenalty = presence };
        if (options.FrequencyPenalty is { } frequency) sampling = sampling with { FrequencyPenalty = frequency };
        if (options.AdditionalProperties is { } extra)
        {
            if (extra.ContainsKey(MinPProperty)) sampling = sampling with { MinP = Number(extra, MinPProperty) };
            if (extra.ContainsKey(RepetitionPenaltyProperty)) sampling = sampling with { RepetitionPenalty = Number(extra, RepetitionPenaltyProperty) };
        }
        try
        {
            sampling.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"ChatOptions: {ex.Message}", nameof(options), ex);
        }
        return sampling;
    }

    /// <summary>The <see cref="ChatOptions.AdditionalProperties"/> key for <see cref="SamplingParameters.MinP"/>.</summary>
    public const string MinPProperty = "min_p";

    /// <summary>The <see cref="ChatOptions.AdditionalProperties"/> key for <see cref="SamplingParameters.RepetitionPenalty"/>.</summary>
    public const string RepetitionPenaltyProperty = "repetition_penalty";

    // Values come as numbers from code, as JsonElement from deserialized requests, and as strings from configuration;
    // all three are read without the current culture.
    private static float Number(AdditionalPropertiesDictionary extra, string key) => extra[key] switch
    {
        float f => f,
        double d => (float)d,
        decimal m => (float)m,
        int or long or short or byte => Convert.ToSingle(extra[key], CultureInfo.InvariantCulture),
        JsonElement { ValueKind: JsonValueKind.Number } e => e.GetSingle(),
        string text when float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float parsed) => parsed,
        var other => throw new ArgumentException($"ChatOptions.AdditionalProperties[\"{key}\"] must be a number, but is '{other}'.", "options"),
    };

    private static string ResponseId(InferenceRequest request) => request.Id.Value.ToString("N");

    private static ChatFinishReason? Map(FinishReason? finish) => finish switch
    {
        FinishReason.StopToken or FinishReason.StopString => ChatFinishReason.Stop,
        FinishReason.MaxTokens or FinishReason.ContextLength => ChatFinishReason.Length,
        _ => null,
    };

    private static UsageDetails Usage(InferenceRequest request, in TextChunk last)
    {
        int input = request.PromptTokens.Length;
        int output = last.Finish is null ? 0 : last.Token.Index + 1;
        return new UsageDetails { InputTokenCount = input, OutputTokenCount = output, TotalTokenCount = input + output };
    }

    /// <summary>The service seen as an engine whose requests are measured under one gen_ai.operation.name.</summary>
    private sealed class OperationEngine(InferenceService service, string operation) : IInferenceEngine
    {
        public KvCacheLayout KvLayout => service.KvLayout;

        public int MaxContextLength => service.MaxContextLength;

        public EngineLoad GetLoad() => service.GetLoad();

        public IAsyncEnumerable<GeneratedToken> GenerateAsync(InferenceRequest request, CancellationToken cancellationToken = default) =>
            service.GenerateAsync(request, operation, cancellationToken);
    }
}
