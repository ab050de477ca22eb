using Disagg.Coordination;
using Disagg.Cuda;
using Disagg.Cuda.Loading;
using Disagg.Cuda.Model;
using Disagg.Extensions.Hosting.Metrics;
using Disagg.Tokenization;
using System.Net;
using System.Net.Sockets;
using Disagg.Transport.InProcess;
using Disagg.Transport.Sockets;

namespace Disagg.Extensions.Hosting;

/// <summary>
/// Composes the engine(s) that <see cref="DisaggregatedInferenceOptions"/> describe: the one place that knows how a mode
/// becomes executors, engines, transports and a coordinator. Everything it creates is owned by the returned <see cref="LoadedModel"/>;
/// if composition fails half-way, whatever was already created is disposed before the error propagates.
/// </summary>
internal sealed class EngineFactory(DisaggMetrics metrics)
{
    /// <summary>Loads the model in the configured mode. Blocking and slow (reads weights): call it off the startup thread.</summary>
    public LoadedModel Create(DisaggregatedInferenceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var defaults = SamplingDefaults(options); // a small file: its errors come before the weights are read
        var loaded = options.Mode switch
        {
            InferenceMode.Colocated => CreateColocated(options),
            InferenceMode.Disaggregated when options.Transport.Kind != KvTransportKind.InProcess => CreateWithRemoteDecode(options),
            InferenceMode.Disaggregated => CreateDisaggregated(options),
            InferenceMode.DecodeWorker => CreateDecodeWorker(options),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Mode, "Unknown inference mode."),
        };
        loaded.SamplingDefaults = defaults;
        return loaded;
    }

    /// <summary>What a chat request leaves unset: <see cref="DisaggregatedInferenceOptions.DefaultMaxOutputTokens"/>, and the
    /// model's generation_config.json when <see cref="DisaggregatedInferenceOptions.UseModelSamplingDefaults"/> is on.</summary>
    internal static SamplingParameters SamplingDefaults(DisaggregatedInferenceOptions options)
    {
        var defaults = new SamplingParameters { MaxTokens = options.DefaultMaxOutputTokens };
        if (options.UseModelSamplingDefaults && GenerationConfig.TryLoadFromDirectory(options.ModelPath) is { } generation)
            defaults = generation.ApplyTo(defaults);
        return defaults;
    }

    /// <summary>One <see cref="LlmEngine"/> over one <see cref="TorchModelExecutor"/> on <see cref="DisaggregatedInferenceOptions.Device"/>.</summary>
    public LoadedModel CreateColocated(DisaggregatedInferenceOptions options)
    {
        var tokenizer = ModelTokenizer.Load(options.ModelPath);
        var engine = LoadEngine(options, options.Device, "colocated");
        string description = $"colocated on {options.Device}, {engine.KvLayout.DataType}, {engine.Allocator.Capacity} KV blocks of {engine.KvLayout.BlockSize} tokens";
        return new LoadedModel(engine, [engine], tokenizer, [], description);
    }

    /// <summary>
    /// A prefill <see cref="LlmEngine"/> on <see cref="DisaggregatedInferenceOptions.PrefillDevice"/> and a decode one on
    /// <see cref="DisaggregatedInferenceOptions.DecodeDevice"/>, joined by a <see cref="DisaggregatedEngine"/> over the configured transport.
    /// </summary>
    public LoadedModel CreateDisaggregated(DisaggregatedInferenceOptions options)
    {
        var tokenizer = ModelTokenizer.Load(options.ModelPath);
        string prefillDevice = options.PrefillDevice ?? options.Device, decodeDevice = options.DecodeDevice ?? options.Device;
        var created = new List<LlmEngine>(2);
        try
        {
            var prefill = LoadEngine(options, prefillDevice, "prefill", decodes: false);
            created.Add(prefill);
            var decode = LoadEngine(options, decodeDevice, "decode");
            created.Add(decode);
            var transport = new InProcessKvTransport(
                prefill.BlockStore ?? throw new InvalidOperationException("The prefill executor exposes no KV block store."),
                decode.BlockStore ?? throw new InvalidOperationException("The decode executor exposes no KV block store."));
            var coordinator = new DisaggregatedEngine([prefill], [decode], (_, _) => transport, Routing(options, transport.Name));
            string description = $"disaggregated: prefill on {prefillDevice}, decode on {decodeDevice}, {transport.Name} transport, " +
                $"{decode.KvLayout.DataType}, {decode.Allocator.Capacity} KV blocks of {decode.KvLayout.BlockSize} tokens per engine";
            return new LoadedModel(coordinator, [prefill, decode], tokenizer, [transport], description);
        }
        catch
        {
            foreach (var engine in created) engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    /// <summary>Prefill here on <see cref="DisaggregatedInferenceOptions.PrefillDevice"/>; decode in a worker process at the transport's endpoint.</summary>
    public LoadedModel CreateWithRemoteDecode(DisaggregatedInferenceOptions options)
    {
        var tokenizer = ModelTokenizer.Load(options.ModelPath);
        string prefillDevice = options.PrefillDevice ?? options.Device;
        var prefill = LoadEngine(options, prefillDevice, "prefill", decodes: false);
        RemoteDecodeEngine? remote = null;
        try
        {
            var endpoint = Endpoint(options.Transport);
            remote = RemoteDecodeEngine.ConnectAsync(endpoint, options.Transport.ToSocketOptions(server: false)).GetAwaiter().GetResult();
            var transport = remote.CreateTransport(prefill.BlockStore ?? throw new InvalidOperationException("The prefill executor exposes no KV block store."));
            var routing = Routing(options, transport.Name);
            var coordinator = new DisaggregatedEngine([prefill], [remote], (_, _) => transport, routing);
            string description = $"disaggregated: prefill on {prefillDevice}, decode in the worker at {options.Transport.Kind} {options.Transport.Endpoint}";
            return new LoadedModel(coordinator, [prefill], tokenizer, [remote], description);
        }
        catch
        {
            remote?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            prefill.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    /// <summary>A decode engine served to prefill processes at the transport's endpoint (and to this host's own requests).</summary>
    public LoadedModel CreateDecodeWorker(DisaggregatedInferenceOptions options)
    {
        var tokenizer = ModelTokenizer.Load(options.ModelPath);
        string device = options.DecodeDevice ?? options.Device;
        var engine = LoadEngine(options, device, "decode");
        try
        {
            var server = new DecodeWorkerServer(engine, engine.BlockStore ?? throw new InvalidOperationException("The executor exposes no KV block store."),
                options.Transport.ToSocketOptions(server: true));
            server.Start(Endpoint(options.Transport));
            string description = $"decode worker on {device}, serving at {options.Transport.Kind} {options.Transport.Endpoint}";
            return new LoadedModel(engine, [engine], tokenizer, [], description, front: [server]);
        }
        catch
        {
            engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    private DisaggregationOptions Routing(DisaggregatedInferenceOptions options, string transportName) => new()
    {
        Policy = options.Routing.Policy,
        LocalPrefillMaxUncachedTokens = options.Routing.LocalPrefillMaxUncachedTokens,
        CacheWeight = options.Routing.CacheWeight,
        KvLease = options.Routing.KvLease,
        RecoverLocally = options.Routing.RecoverLocally,
        TransferCompleted = result => metrics.RecordKvTransfer(result, transportName),
    };

    private static EndPoint Endpoint(KvTransportOptions transport)
    {
        string endpoint = transport.Endpoint ?? throw new InvalidOperationException("Transport:Endpoint is not set.");
        if (transport.Kind == KvTransportKind.Unix) return new UnixDomainSocketEndPoint(endpoint);
        int colon = endpoint.LastIndexOf(':');
        string host = endpoint[..colon];
        int port = int.Parse(endpoint[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        var address = IPAddress.TryParse(host.Trim('[', ']'), out var ip) ? ip : Dns.GetHostAddresses(host).First();
        return new IPEndPoint(address, port);
    }

    private static LlmEngine LoadEngine(DisaggregatedInferenceOptions options, string device, string name, bool decodes = true)
    {
        var executor = TorchModelExecutor.Load(options.ModelPath, RunnerOptions(options, device, decodes));
        try
        {
            return new LlmEngine(executor, new LlmEngineOptions { Name = name, Scheduler = CopyOf(options.Scheduler) });
        }
        catch
        {
            executor.Dispose();
            throw;
        }
    }

    /// <summary>
    /// One engine's runner options. An engine that only prefills (<paramref name="decodes"/> false) never runs a decode step,
    /// so it leaves the native decode path off: no CUDA graphs captured at load, no decode buffers held on its GPU (its prompt
    /// steps still run on the native kernels, <see cref="ModelRunnerOptions.UseNativePrefill"/>). A request
    /// recovered onto it (<see cref="DisaggregationOptions.RecoverLocally"/>) decodes on TorchSharp ops: the same tokens, slower.
    /// </summary>
    internal static ModelRunnerOptions RunnerOptions(DisaggregatedInferenceOptions options, string device, bool decodes)
    {
        var runner = new ModelRunnerOptions
        {
            Device = device,
            DataType = options.DataType,
            BlockSize = options.BlockSize,
            KvCacheBlocks = options.KvCacheBlocks,
            MaxContextLength = options.MaxContextLength,
            UseNativeKernels = decodes,
        };
        if (options.KvCacheBytes is { } bytes) runner.KvCacheBytes = bytes;
        return runner;
    }

    private static Scheduling.SchedulerOptions CopyOf(Scheduling.SchedulerOptions s) => new()
    {
        MaxBatchedTokens = s.MaxBatchedTokens,
        MaxRunningSequences = s.MaxRunningSequences,
        MaxWaitingRequests = s.MaxWaitingRequests,
        EnablePrefixCaching = s.EnablePrefixCaching,
    };
}

/// <summary>What <see cref="EngineFactory"/> made: the engine to serve requests with, the engines and transports it owns, the tokenizer.</summary>
internal sealed class LoadedModel(IInferenceEngine engine, IReadOnlyList<LlmEngine> workers, ModelTokenizer tokenizer,
    IReadOnlyList<IAsyncDisposable> transports, string description, IReadOnlyList<IAsyncDisposable>? front = null) : IAsyncDisposable
{
    /// <summary>The engine requests go to: the colocated engine, or the coordinator.</summary>
    public IInferenceEngine Engine { get; } = engine;

    /// <summary>Every <see cref="LlmEngine"/> composed (one colocated; prefill then decode when disaggregated).</summary>
    public IReadOnlyList<LlmEngine> Workers { get; } = workers;

    /// <summary>The model's tokenizer.</summary>
    public ModelTokenizer Tokenizer { get; } = tokenizer;

    /// <summary>For logs.</summary>
    public string Description { get; } = description;

    /// <summary>The sampling a chat request starts from (<see cref="EngineFactory.SamplingDefaults"/>).</summary>
    public SamplingParameters SamplingDefaults { get; set; } = new();

    /// <summary>Stops the engines (requests still in flight fail with <see cref="EngineStoppedException"/>), then the transports.</summary>
    public async ValueTask DisposeAsync()
    {
        List<Exception>? errors = null;
        foreach (var server in front ?? []) // servers first: they use the engines
        {
            try { await server.DisposeAsync().ConfigureAwait(false); }
            catch (Exception ex) { (errors ??= []).Add(ex); }
        }
        foreach (var worker in Workers)
        {
            try { await worker.DisposeAsync().ConfigureAwait(false); }
            catch (Exception ex) { (errors ??= []).Add(ex); }
        }
        foreach (var transport in transports)
        {
            try { await transport.DisposeAsync().ConfigureAwait(false); }
            catch (Exception ex) { (errors ??= []).Add(ex); }
        }
        if (errors is not null) throw new AggregateException("Disposing the engines failed.", errors);
    }
}
