namespace Disagg;

/// <summary>One generation request: a tokenized prompt and how to sample its continuation.</summary>
public sealed class InferenceRequest
{
    /// <summary>Creates a request for <paramref name="promptTokens"/>.</summary>
    /// <param name="promptTokens">The prompt's token ids. Must not be empty.</param>
    /// <param name="sampling">Sampling parameters; <see cref="SamplingParameters.Greedy"/> when null.</param>
    /// <param name="id">The request id; a new one when null.</param>
    public InferenceRequest(ReadOnlyMemory<int> promptTokens, SamplingParameters? sampling = null, RequestId? id = null)
        : this(promptTokens, sampling, id, seed: null, arrivalTimestamp: null)
    {
    }

    private InferenceRequest(ReadOnlyMemory<int> promptTokens, SamplingParameters? sampling, RequestId? id, ulong? seed, long? arrivalTimestamp)
    {
        PromptTokens = promptTokens;
        Sampling = sampling ?? SamplingParameters.Greedy;
        Id = id ?? RequestId.New();
        Seed = seed ?? Sampling.Seed ?? (ulong)Random.Shared.NextInt64();
        ArrivalTimestamp = arrivalTimestamp ?? System.Diagnostics.Stopwatch.GetTimestamp();
    }

    /// <summary>The request's id.</summary>
    public RequestId Id { get; }

    /// <summary>The prompt's token ids.</summary>
    public ReadOnlyMemory<int> PromptTokens { get; }

    /// <summary>How to sample, and when to stop.</summary>
    public SamplingParameters Sampling { get; }

    /// <summary>The seed of the request's random stream: <see cref="SamplingParameters.Seed"/>, or one drawn at creation.
    /// Prefill and decode engines both sample from it, so a disaggregated request draws the same stream as a colocated one.</summary>
    public ulong Seed { get; }

    /// <summary><see cref="System.Diagnostics.Stopwatch"/> timestamp of the request's creation; queue time counts from here.</summary>
    public long ArrivalTimestamp { get; }

    /// <summary>The same request (id, seed, arrival time) with other sampling parameters; engines use it to add the model's stop tokens.</summary>
    public InferenceRequest WithSampling(SamplingParameters sampling) =>
        new(PromptTokens, sampling ?? throw new ArgumentNullException(nameof(sampling)), Id, Seed, ArrivalTimestamp);

    /// <summary>
    /// Throws <see cref="InvalidRequestException"/> when the prompt is empty, holds a negative token id or a
    /// token id not below <paramref name="vocabularySize"/>, or when prompt plus output cannot fit in
    /// <paramref name="maxContextLength"/> tokens; and <see cref="ArgumentOutOfRangeException"/> for bad sampling parameters.
    /// </summary>
    public void Validate(int vocabularySize, int maxContextLength)
    {
        Sampling.Validate();
        var prompt = PromptTokens.Span;
        if (prompt.IsEmpty)
            throw new InvalidRequestException(Id, "The prompt is empty: at least one token is needed.");
        for (int i = 0; i < prompt.Length; i++)
        {
            if ((uint)prompt[i] >= (uint)vocabularySize)
                throw new InvalidRequestException(Id, $"Prompt token {prompt[i]} at position {i} is outside the vocabulary [0, {vocabularySize}).");
        }
        if (prompt.Length >= maxContextLength)
            throw new PromptTooLongException(Id, prompt.Length, maxContextLength);
    }
}
