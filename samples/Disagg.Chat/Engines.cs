using System.Diagnostics;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Disagg.Coordination;
using Disagg.Cuda;
using Disagg.Cuda.Model;
using Disagg.Cuda.Native;
using Disagg.Transport.InProcess;
using Disagg.Transport.Sockets;

namespace Disagg.Chat;

/// <summary>
/// The engine the chat talks to: one colocated engine; or a prefill and a decode engine behind a coordinator, in this process
/// (inproc) or with the decode engine in a second process reached over a socket (unix, tcp).
/// </summary>
internal sealed class Engines : IAsyncDisposable
{
    /// <summary>Environment variable holding the shared secret of the socket transport.</summary>
    public const string SecretVariable = "DISAGG_SHARED_SECRET";

    private readonly List<IAsyncDisposable> _owned = [];
    private Process? _worker;

    private Engines(IInferenceEngine engine, string description)
    {
        Engine = engine;
        Description = description;
    }

    public IInferenceEngine Engine { get; }

    public string Description { get; }

    public static async Task<Engines> CreateAsync(ChatOptions options)
    {
        ModelRunnerOptions On(string device) => new() { Device = device, DataType = options.DataType };
        if (!options.Disaggregated)
        {
            var executor = TorchModelExecutor.Load(options.Model, On(options.Device));
            var engine = new LlmEngine(executor);
            var colocated = new Engines(engine, $"{executor.Config.Architecture}, colocated on {executor.Device}, {executor.KvLayout.DataType}, {executor.KvBlockCount} KV blocks");
            colocated._owned.Add(engine);
            return colocated;
        }

        string prefillDevice = options.PrefillDevice ?? options.Device, decodeDevice = options.DecodeDevice ?? options.Device;
        // The prefill engine never runs a decode step: no CUDA graphs or decode buffers on its GPU.
        var onPrefillDevice = On(prefillDevice);
        onPrefillDevice.UseNativeKernels = false;
        var prefillExecutor = TorchModelExecutor.Load(options.Model, onPrefillDevice);
        var prefill = new LlmEngine(prefillExecutor, new LlmEngineOptions { Name = "prefill" });
        if (options.Transport == "inproc")
        {
            var decode = new LlmEngine(TorchModelExecutor.Load(options.Model, On(decodeDevice)), new LlmEngineOptions { Name = "decode" });
            var transport = new InProcessKvTransport(prefill.BlockStore!, decode.BlockStore!);
            var local = new Engines(new DisaggregatedEngine([prefill], [decode], (_, _) => transport),
                $"{prefillExecutor.Config.Architecture}, disaggregated: prefill on {prefillDevice}, decode on {decodeDevice}, {transport.Name} transport");
            local._owned.AddRange([prefill, decode]);
            return local;
        }

        // Cross-process: start (or attach to) a decode worker, connect, and move KV over the socket.
        string endpoint = options.Endpoint ?? Endpoints.Fresh(options.Transport);
        byte[] secret = Secret(options.Attach);
        using var handover = options.Tls.Enabled && !options.Attach ? HandOverCertificate(options.Tls, endpoint) : null;
        // Loaded before the worker starts, so that a bad --tls-ca or --tls-client-cert fails at once; a worker this chat starts
        // accepts only the chat's own certificate when it has one.
        var clientOptions = new SocketTransportOptions { SharedSecret = secret, Tls = ChatTls.ForClient(options.Tls, handover?.Thumbprint) };
        var clientCertificate = clientOptions.Tls?.ClientCertificate;
        Process? worker = options.Attach ? null : StartWorker(options, decodeDevice, endpoint, secret, handover, clientCertificate);
        handover?.Dispose(); // the worker has loaded its certificate: a throwaway one's file goes now
        try
        {
            var remote = await RemoteDecodeEngine.ConnectAsync(Endpoints.Parse(endpoint), clientOptions);
            // GPU-direct when the worker published its KV memory (CUDA IPC, same host, native/cuda built); else blocks over the socket.
            IKvTransport transport = remote.DirectTransferDescriptor is { } handle && CudaIpcKv.IsAvailable && decodeDevice.StartsWith("cuda", StringComparison.Ordinal)
                ? new DirectKvTransport(remote, new InProcessKvTransport(prefill.BlockStore!, CudaIpcKv.Open(handle, DeviceIndex(decodeDevice))))
                : remote.CreateTransport(prefill.BlockStore!);
            string security = !options.Tls.Enabled ? "" : clientCertificate is null ? " with TLS" : $" with mutual TLS (this chat presents {clientCertificate.Subject})";
            var engines = new Engines(new DisaggregatedEngine([prefill], [remote], (_, _) => transport),
                $"{prefillExecutor.Config.Architecture}, disaggregated: prefill on {prefillDevice} here, decode on {decodeDevice} in process {worker?.Id.ToString() ?? "(attached)"} over {endpoint}{security}, KV {transport.Name}")
            {
                _worker = worker,
            };
            engines._owned.AddRange([remote, prefill]);
            return engines;
        }
        catch
        {
            await prefill.DisposeAsync();
            Stop(worker);
            throw;
        }
    }

    /// <summary>The certificate for the worker this chat starts with --tls, and a line saying which it is and that it is pinned.</summary>
    private static WorkerCertificateHandover HandOverCertificate(TlsFlags tls, string endpoint)
    {
        string host = ((System.Net.IPEndPoint)Endpoints.Parse(endpoint)).Address.ToString();
        var handover = WorkerCertificateHandover.Prepare(tls, host);
        Console.Error.WriteLine(handover.Generated
            ? $"[TLS: made a throwaway self-signed certificate for {tls.TargetHost ?? host} (SHA-256 {handover.Thumbprint}); the decode worker presents it and this chat trusts only it (pinned)]"
            : $"[TLS: the decode worker presents {handover.Subject} from {tls.CertificatePath} (SHA-256 {handover.Thumbprint}), pinned here]");
        return handover;
    }

    /// <summary>The decode worker role: serves a decode engine at <see cref="ChatOptions.Endpoint"/> until stdin closes.</summary>
    public static async Task<int> ServeDecodeAsync(ChatOptions options)
    {
        var serverOptions = new SocketTransportOptions { SharedSecret = Secret(attach: true), Tls = ChatTls.ForWorker(options.Tls) }; // before the model: fail fast
        using var certificate = serverOptions.Tls?.ServerCertificate;
        var executor = TorchModelExecutor.Load(options.Model, new ModelRunnerOptions { Device = options.DecodeDevice ?? options.Device, DataType = options.DataType });
        await using var engine = new LlmEngine(executor, new LlmEngineOptions { Name = "decode" });
        if (executor.Device.type == TorchSharp.DeviceType.CUDA && CudaIpcKv.IsAvailable)
            serverOptions.DirectTransferDescriptor = CudaIpcKv.Export(executor); // lets a prefill process on this host write our KV directly
        await using var server = new DecodeWorkerServer(engine, engine.BlockStore!, serverOptions);
        server.Start(Endpoints.Parse(options.Endpoint!));
        Console.Out.WriteLine("ready");
        Console.Out.Flush();
        string security = certificate is null ? "" : $" with TLS ({certificate.Subject}, SHA-256 {ChatTls.Thumbprint(certificate)}: the chat's --tls-pin)";
        Console.Error.WriteLine($"[decode worker {Environment.ProcessId}: {executor.Config.Architecture} on {executor.Device}, listening at {options.Endpoint}{security}]");
        await Console.In.ReadToEndAsync(); // the parent closes our stdin (or exits) to stop us
        await server.StopAsync();
        return 0;
    }

    private static int DeviceIndex(string device) =>
        device.Length > 5 && int.TryParse(device.AsSpan(5), out int index) ? index : 0; // "cuda:N" or "cuda"

    private static byte[] Secret(bool attach)
    {
        string? configured = Environment.GetEnvironmentVariable(SecretVariable);
        if (!string.IsNullOrEmpty(configured))
        {
            if (configured.Length < 16) throw new UsageException($"{SecretVariable} must hold at least 16 characters.");
            return Encoding.UTF8.GetBytes(configured);
        }
        if (attach) throw new UsageException($"Set {SecretVariable} (at least 16 characters) to the decode worker's shared secret.");
        return Encoding.UTF8.GetBytes(Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24)));
    }

    private static Process StartWorker(ChatOptions options, string decodeDevice, string endpoint, byte[] secret, WorkerCertificateHandover? tls,
        X509Certificate2? chatCertificate)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        // Started as `dotnet Disagg.Chat.dll` the process is the dotnet host: the worker needs the same program after it.
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") start.ArgumentList.Add(Environment.GetCommandLineArgs()[0]);
        foreach (var a in new[] { "--serve-decode", "--model", options.Model, "--device", decodeDevice, "--endpoint", endpoint })
            start.ArgumentList.Add(a);
        if (options.DataType is { } dtype)
        {
            start.ArgumentList.Add("--dtype");
            start.ArgumentList.Add(dtype);
        }
        start.Environment[SecretVariable] = Encoding.UTF8.GetString(secret);
        if (tls is not null)
        {
            foreach (var a in tls.WorkerArguments) start.ArgumentList.Add(a);
            if (tls.Password is { } password) start.Environment[TlsFlags.PasswordVariable] = password;
            if (chatCertificate is not null)
            {
                start.ArgumentList.Add("--tls-client-pin");
                start.ArgumentList.Add(ChatTls.Thumbprint(chatCertificate));
            }
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the decode worker.");
        var ready = process.StandardOutput.ReadLineAsync();
        if (!ready.Wait(TimeSpan.FromMinutes(5)) || ready.Result != "ready")
        {
            Stop(process);
            throw new InvalidOperationException($"The decode worker did not start (exit code {(process.HasExited ? process.ExitCode : -1)}).");
        }
        return process;
    }

    private static void Stop(Process? worker)
    {
        if (worker is null) return;
        try
        {
            worker.StandardInput.Close();
            if (!worker.WaitForExit(TimeSpan.FromSeconds(10))) worker.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        worker.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var owned in _owned) await owned.DisposeAsync();
        Stop(_worker);
    }
}
