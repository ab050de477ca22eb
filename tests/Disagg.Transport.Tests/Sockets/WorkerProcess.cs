using System.Diagnostics;

namespace Disagg.Transport.Tests.Sockets;

/// <summary>
/// A decode worker in a real child process (tests/Disagg.Transport.Worker): started on an endpoint argument, spoken to
/// through its standard input and output (see its Program.cs), killed with its process tree when disposed, and its
/// temporary folder (for its socket or certificate) deleted.
/// </summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private WorkerProcess(Process process, string ready, string folder, string endpoint)
    {
        _process = process;
        ReadyLine = ready;
        Folder = folder;
        Endpoint = endpoint;
    }

    /// <summary>The worker's temporary folder.</summary>
    public string Folder { get; }

    /// <summary>The endpoint argument the worker was started on (a Unix socket path, or tcp:HOST:PORT).</summary>
    public string Endpoint { get; }

    /// <summary>What the worker printed once listening: "READY", or "READY &lt;port&gt;" for a TCP endpoint.</summary>
    public string ReadyLine { get; }

    /// <summary>
    /// Starts the worker with <paramref name="blocks"/> KV blocks on the endpoint <paramref name="prepare"/> returns for a new
    /// temporary folder (a Unix socket path, or tcp:HOST:PORT), with the environment variables it returns.
    /// </summary>
    public static async Task<WorkerProcess> StartAsync(int blocks, Func<string, Task<(string Endpoint, Dictionary<string, string> Environment)>> prepare)
    {
        string folder = Directory.CreateTempSubdirectory("disagg-worker-").FullName;
        var (endpoint, environment) = await prepare(folder);
        string workerDll = Path.Combine(AppContext.BaseDirectory, "Disagg.Transport.Worker.dll");
        Assert.True(File.Exists(workerDll), $"The worker was not built next to the tests: {workerDll}");
        var start = new ProcessStartInfo(DotnetHost(), [workerDll, endpoint, blocks.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        {
            RedirectStandardInput = true, // closing it (or this process dying) ends the worker
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["DISAGG_WORKER_SECRET"] = Convert.ToHexString(TestSupport.Secret);
        foreach (var (name, value) in environment) start.Environment[name] = value;
        var process = Process.Start(start)!;
        var ready = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        if (ready is null || !ready.StartsWith("READY", StringComparison.Ordinal))
        {
            string error = await process.StandardError.ReadToEndAsync();
            process.Kill(entireProcessTree: true);
            process.Dispose();
            Directory.Delete(folder, recursive: true);
            Assert.Fail($"The worker did not start: '{ready}' {error}");
        }
        return new WorkerProcess(process, ready, folder, endpoint);
    }

    /// <summary>Sends one command line and returns the worker's one-line answer.</summary>
    public async Task<string> AskAsync(string command)
    {
        await _process.StandardInput.WriteLineAsync(command);
        await _process.StandardInput.FlushAsync();
        return (await _process.StandardOutput.ReadLineAsync().WaitAsync(TestSupport.Bound))!;
    }

    public async Task<(int Free, int Capacity, int Running, int Waiting, int OpenStreams)> StatsAsync()
    {
        var parts = (await AskAsync("stats")).Split(' ');
        Assert.Equal("STATS", parts[0]);
        var n = parts.Skip(1).Select(int.Parse).ToArray();
        return (n[0], n[1], n[2], n[3], n[4]);
    }

    /// <summary>Waits (bounded) until the worker runs nothing, has no open stream and every block is free.</summary>
    public async Task AssertHoldsNothing()
    {
        (int Free, int Capacity, int Running, int Waiting, int OpenStreams) stats = default;
        await TestSupport.WaitUntil(async () =>
        {
            stats = await StatsAsync();
            return stats is { Running: 0, Waiting: 0, OpenStreams: 0 } && stats.Free == stats.Capacity;
        }, () => $"The worker still holds blocks: {stats}.");
    }

    public void Kill() => _process.Kill(entireProcessTree: true);

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TestSupport.Bound);
        }
        finally
        {
            _process.Dispose();
            Directory.Delete(Folder, recursive: true);
        }
    }

    private static string DotnetHost()
    {
        var current = Environment.ProcessPath;
        if (current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet") return current;
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host) return host;
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } root) return Path.Combine(root, "dotnet");
        return "dotnet";
    }
}
