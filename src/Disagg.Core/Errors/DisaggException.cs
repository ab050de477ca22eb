namespace Disagg;

/// <summary>Base class of every error Disagg raises on purpose. Catch it to handle all of them.</summary>
public class DisaggException : Exception
{
    /// <summary>Creates the exception.</summary>
    public DisaggException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A request that no engine can serve as given (empty prompt, token outside the vocabulary, and so on).</summary>
public class InvalidRequestException : DisaggException
{
    /// <summary>Creates the exception for request <paramref name="requestId"/>.</summary>
    public InvalidRequestException(RequestId requestId, string message) : base($"Request {requestId}: {message}") => RequestId = requestId;

    /// <summary>The rejected request.</summary>
    public RequestId RequestId { get; }
}

/// <summary>The prompt does not fit in the model's context (or in the engine's whole KV pool).</summary>
public sealed class PromptTooLongException : InvalidRequestException
{
    /// <summary>Creates the exception.</summary>
    public PromptTooLongException(RequestId requestId, int promptLength, int limit, string limitName = "the model's context length")
        : base(requestId, $"The prompt has {promptLength} tokens, which does not fit {limitName} ({limit} tokens).")
    {
        PromptLength = promptLength;
        Limit = limit;
    }

    /// <summary>Tokens in the prompt.</summary>
    public int PromptLength { get; }

    /// <summary>The limit it exceeded, in tokens.</summary>
    public int Limit { get; }
}

/// <summary>Two KV caches whose layouts differ (layers, heads, head size, block size or dtype) were asked to exchange blocks.</summary>
public sealed class KvLayoutMismatchException : DisaggException
{
    /// <summary>Creates the exception.</summary>
    public KvLayoutMismatchException(Kv.KvCacheLayout source, Kv.KvCacheLayout destination)
        : base($"KV layouts differ: source {source}, destination {destination}.")
    {
        SourceLayout = source;
        DestinationLayout = destination;
    }

    /// <summary>The layout of the blocks' source.</summary>
    public Kv.KvCacheLayout SourceLayout { get; }

    /// <summary>The layout of the blocks' destination.</summary>
    public Kv.KvCacheLayout DestinationLayout { get; }
}

/// <summary>Moving KV blocks between engines failed (peer gone, corrupt frame, timeout). No destination block holds partial data that is later used.</summary>
public class KvTransferException : DisaggException
{
    /// <summary>Creates the exception.</summary>
    public KvTransferException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>An engine refused a request because its queue is full (admission control). Retry later or elsewhere.</summary>
public sealed class EngineOverloadedException : DisaggException
{
    /// <summary>Creates the exception.</summary>
    public EngineOverloadedException(string message) : base(message) { }
}

/// <summary>The engine was stopped or disposed while the request was in flight; the request did not complete.</summary>
public sealed class EngineStoppedException : DisaggException
{
    /// <summary>Creates the exception.</summary>
    public EngineStoppedException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// A wait that has a bound ran past it: connecting to a worker, a reservation, a KV transfer, the next token of a remote
/// decode, or a KV lease. <see cref="Operation"/> names what timed out. The request's blocks were released on every side.
/// </summary>
public sealed class DisaggTimeoutException : KvTransferException
{
    /// <summary>Creates the exception: <paramref name="operation"/> did not complete within <paramref name="timeout"/>.</summary>
    public DisaggTimeoutException(string operation, TimeSpan timeout, Exception? inner = null)
        : base($"Timed out after {timeout.TotalSeconds:0.###} s: {operation}.", inner)
    {
        Operation = operation;
        Timeout = timeout;
    }

    /// <summary>What did not complete in time, in words ("transferring the KV of request ...").</summary>
    public string Operation { get; }

    /// <summary>The bound that was exceeded.</summary>
    public TimeSpan Timeout { get; }
}
