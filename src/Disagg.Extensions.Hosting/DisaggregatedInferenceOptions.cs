using Disagg.Coordination;
using Disagg.Scheduling;
using Disagg.Transport.Sockets;

namespace Disagg.Extensions.Hosting;

/// <summary>
/// Options of <c>AddDisaggregatedInference</c>: which model to load, where, how engines are composed, and how the host
/// starts and stops them. Bind them from configuration (conventionally the <see cref="DefaultSectionName"/> section) or
/// set them in code; they are validated when the host starts, with messages naming the bad option.
/// </summary>
public sealed class DisaggregatedInferenceOptions
{
    /// <summary>The configuration section these options are usually bound from: <c>"Disagg"</c>.</summary>
    public const string DefaultSectionName = "Disagg";

    /// <summary>Directory of a Hugging Face model: config.json, *.safetensors, tokenizer.json, tokenizer_config.json. Required.</summary>
    public string ModelPath { get; set; } = "";

    /// <summary>The model's name in metrics and chat responses; the directory name of <see cref="ModelPath"/> when null.</summary>
    public string? ModelId { get; set; }

    /// <summary>One engine doing prefill and decode (<see cref="InferenceMode.Colocated"/>), or a prefill and a decode engine
    /// behind a coordinator (<see cref="InferenceMode.Disaggregated"/>).</summary>
    public InferenceMode Mode { get; set; } = InferenceMode.Colocated;

    /// <summary>Device of the engine in colocated mode, and of either side in disaggregated mode when
    /// <see cref="PrefillDevice"/> or <see cref="DecodeDevice"/> is not set: "cpu", "cuda" or "cuda:N".</summary>
    public string Device { get; set; } = "cpu";

    /// <summary>Device of the prefill engine in disaggregated mode; <see cref="Device"/> when null.</summary>
    public string? PrefillDevice { get; set; }

    /// <summary>Device of the decode engine in disaggregated mode; <see cref="Device"/> when null.</summary>
    public string? DecodeDevice { get; set; }

    /// <summary>Weights and KV dtype: "float32", "bfloat16" or "float16". Null picks bfloat16 on CUDA and float32 on CPU.</summary>
    public string? DataType { get; set; }

    /// <summary>Tokens per KV block, in [1, 1024].</summary>
    public int BlockSize { get; set; } = 16;

    /// <summary>Bytes of KV memory per engine. Set this or <see cref="KvCacheBlocks"/>, not both; 256 MiB when neither is set.</summary>
    public long? KvCacheBytes { get; set; }

    /// <summary>KV blocks per engine. Set this or <see cref="KvCacheBytes"/>, not both.</summary>
    public int? KvCacheBlocks { get; set; }

    /// <summary>Cap on the context length (prompt plus output), at least 2; the model's own maximum when null.</summary>
    public int? MaxContextLength { get; set; }

    /// <summary>Batching limits and prefix caching of each engine.</summary>
    public SchedulerOptions Scheduler { get; set; } = new();

    /// <summary>How KV moves from the prefill to the decode engine (disaggregated mode).</summary>
    public KvTransportOptions Transport { get; set; } = new();

    /// <summary>How the coordinator places requests (disaggregated mode).</summary>
    public RoutingOptions Routing { get; set; } = new();

    /// <summary>Run one tiny generation after loading, so that the first real request does not pay for first-use costs.</summary>
    public bool WarmUp { get; set; } = true;

    /// <summary>
    /// When true (the default) the host's start waits until the model is loaded and fails if loading fails. When false the host
    /// starts at once, the model loads in the background, requests wait for it, and the health check reports progress.
    /// </summary>
    public bool WaitForModelOnStart { get; set; } = true;

    /// <summary>On stop, how long requests in flight may take to finish before they are cancelled: zero or more, or
    /// <see cref="Timeout.InfiniteTimeSpan"/>. The host's own shutdown timeout (<c>HostOptions.ShutdownTimeout</c>) still applies.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Most tokens a chat response generates when <c>ChatOptions.MaxOutputTokens</c> is not set. At least 1.</summary>
    public int DefaultMaxOutputTokens { get; set; } = 256;

    /// <summary>
    /// When true (the default) the model's <c>generation_config.json</c> supplies the sampling a chat request leaves unset
    /// (temperature, or greedy where <c>do_sample</c> is false; top-k, top-p, min-p, repetition penalty), as model authors
    /// recommend them. When false, or where the file says nothing, the <see cref="SamplingParameters"/> defaults apply.
    /// </summary>
    public bool UseModelSamplingDefaults { get; set; } = true;

    /// <summary>The health check reports Degraded when the fraction of KV blocks in use reaches this, in (0, 1].
    /// With prefix caching on, cached blocks count as used, so this applies only while requests are waiting.</summary>
    public double DegradedKvCacheUsage { get; set; } = 0.9;

    /// <summary>The health check reports Degraded when waiting requests reach this fraction of
    /// <see cref="SchedulerOptions.MaxWaitingRequests"/> (per engine), in (0, 1].</summary>
    public double DegradedQueueRatio { get; set; } = 0.8;
}

/// <summary>How engines are composed.</summary>
public enum InferenceMode
{
    /// <summary>One engine runs prefill and decode.</summary>
    Colocated,

    /// <summary>
    /// A prefill engine and a decode engine, with KV moved between them by a transport. With <see cref="KvTransportKind.InProcess"/>
    /// both run here; with <see cref="KvTransportKind.Unix"/> or <see cref="KvTransportKind.Tcp"/> prefill runs here and decode in a
    /// <see cref="DecodeWorker"/> process listening at <see cref="KvTransportOptions.Endpoint"/>.
    /// </summary>
    Disaggregated,

    /// <summary>
    /// This process is a decode worker: it loads a decode engine on <see cref="DisaggregatedInferenceOptions.DecodeDevice"/> (or
    /// <see cref="DisaggregatedInferenceOptions.Device"/>) and serves it to prefill processes at <see cref="KvTransportOptions.Endpoint"/>;
    /// it also serves its own requests colocated.
    /// </summary>
    DecodeWorker,
}

/// <summary>The KV transport between prefill and decode engines.</summary>
public sealed class KvTransportOptions
{
    /// <summary>Which transport.</summary>
    public KvTransportKind Kind { get; set; } = KvTransportKind.InProcess;

    /// <summary>Socket path (<see cref="KvTransportKind.Unix"/>) or host:port (<see cref="KvTransportKind.Tcp"/>).</summary>
    public string? Endpoint { get; set; }

    /// <summary>Secret both ends must prove they know (at least 16 characters; required for the socket transports).</summary>
    public string? SharedSecret { get; set; }

    /// <summary>Socket transports: bound on connecting to a decode worker. Null keeps the transport's default (10 s).</summary>
    public TimeSpan? ConnectTimeout { get; set; }

    /// <summary>Socket transports: how often an idle connection is pinged. Null: the default (5 s).</summary>
    public TimeSpan? KeepAliveInterval { get; set; }

    /// <summary>Socket transports: a connection silent this long is closed. Null: the default (20 s).</summary>
    public TimeSpan? IdleTimeout { get; set; }

    /// <summary>Socket transports: bound on a reservation on the decode worker. Null: the default (60 s).</summary>
    public TimeSpan? ReserveTimeout { get; set; }

    /// <summary>Socket transports: bound on moving one request's KV. Null: the default (30 s).</summary>
    public TimeSpan? TransferTimeout { get; set; }

    /// <summary>Socket transports: bound on the wait for each generated token. Null: the default (30 s).</summary>
    public TimeSpan? TokenTimeout { get; set; }

    /// <summary>Decode worker: a reservation whose KV never completes is released after this long. Null: the default (30 s).</summary>
    public TimeSpan? ReservationLease { get; set; }

    /// <summary>Tcp transport: TLS (off by default). The Unix transport stays plaintext.</summary>
    public KvTransportTlsOptions Tls { get; set; } = new();

    /// <summary>The socket transport's options these settings make (the secret as UTF-8), without TLS (see <see cref="ToSocketOptions(bool)"/>).</summary>
    internal SocketTransportOptions ToSocketOptions()
    {
        var o = new SocketTransportOptions { SharedSecret = System.Text.Encoding.UTF8.GetBytes(SharedSecret ?? "") };
        if (ConnectTimeout is { } connect) o.ConnectTimeout = connect;
        if (KeepAliveInterval is { } keepAlive) o.KeepAliveInterval = keepAlive;
        if (IdleTimeout is { } idle) o.IdleTimeout = idle;
        if (ReserveTimeout is { } reserve) o.ReserveTimeout = reserve;
        if (TransferTimeout is { } transfer) o.TransferTimeout = transfer;
        if (TokenTimeout is { } token) o.TokenTimeout = token;
        if (ReservationLease is { } lease) o.ReservationLease = lease;
        return o;
    }

    /// <summary>The socket transport's options with TLS when enabled (its certificate files are read here).</summary>
    /// <param name="server">True for a decode worker, false for the prefill side.</param>
    internal SocketTransportOptions ToSocketOptions(bool server)
    {
        var o = ToSocketOptions();
        o.Tls = Tls?.ToSocketTlsOptions(server, Endpoint);
        return o;
    }
}

/// <summary>Kinds of KV transport.</summary>
public enum KvTransportKind
{
    /// <summary>Both engines in this process: device to device, or staged through host memory.</summary>
    InProcess,

    /// <summary>A Unix domain socket.</summary>
    Unix,

    /// <summary>A TCP connection.</summary>
    Tcp,
}

/// <summary>Request placement in disaggregated mode (see <see cref="DisaggregationOptions"/>).</summary>
public sealed class RoutingOptions
{
    /// <summary>How prefill and decode workers are chosen.</summary>
    public RoutingPolicy Policy { get; set; } = RoutingPolicy.CacheAware;

    /// <summary>A prompt with at most this many tokens not cached on its decode worker is prefilled there, locally. 0 or more.</summary>
    public int LocalPrefillMaxUncachedTokens { get; set; } = 64;

    /// <summary>Cache-aware policy: weight of prefix-cache overlap against load. Finite, 0 or more.</summary>
    public double CacheWeight { get; set; } = 1.0;

    /// <summary>Longest a prefill worker holds a prompt's KV for a transfer that does not finish; then it is released. Positive.</summary>
    public TimeSpan KvLease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>When a KV transfer or a worker fails, run the request again locally instead of failing it (tokens already
    /// streamed are not repeated).</summary>
    public bool RecoverLocally { get; set; } = true;
}
