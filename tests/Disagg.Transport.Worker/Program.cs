// A decode worker for two-process tests. Usage: Disagg.Transport.Worker <unix-socket-path | tcp:HOST:PORT> <kv-blocks>
// The shared secret comes from the DISAGG_WORKER_SECRET environment variable (hex), never from the command line; on TCP,
// DISAGG_WORKER_TLS_CERT (a PKCS#12 file) and DISAGG_WORKER_TLS_PASSWORD turn on TLS with that certificate.
// Prints "READY" once listening ("READY <port>" on TCP, as port 0 picks one). Reads commands from stdin: "stats" prints "STATS <free> <capacity> <running> <waiting> <open-streams>";
// "hang-after <steps>" lets the engine run that many more model steps, then hangs it for good (as a stuck device would) and prints
// "HANGING"; end of input (the parent closed the pipe or died) stops the worker.
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Disagg;
using Disagg.Scheduling;
using Disagg.Tests.TestModel;
using Disagg.Transport.Sockets;

if (args.Length != 2) { Console.Error.WriteLine("usage: <unix-socket-path | tcp:HOST:PORT> <kv-blocks>"); return 2; }
var secretHex = Environment.GetEnvironmentVariable("DISAGG_WORKER_SECRET");
if (string.IsNullOrEmpty(secretHex)) { Console.Error.WriteLine("DISAGG_WORKER_SECRET is not set."); return 2; }

var executor = new ToyExecutor(blocks: int.Parse(args[1], CultureInfo.InvariantCulture), endOfSequence: 3);
await using var engine = new LlmEngine(executor, new LlmEngineOptions
{
    Name = "worker",
    Scheduler = new SchedulerOptions { MaxBatchedTokens = 24, MaxRunningSequences = 8, EnablePrefixCaching = false },
});
var options = new SocketTransportOptions { SharedSecret = Convert.FromHexString(secretHex) };
if (Environment.GetEnvironmentVariable("DISAGG_WORKER_TLS_CERT") is { Length: > 0 } certificate)
    options.Tls = new SocketTlsOptions { ServerCertificate = TlsCertificateFile.Load(certificate, password: Environment.GetEnvironmentVariable("DISAGG_WORKER_TLS_PASSWORD")) };
bool tcp = args[0].StartsWith("tcp:", StringComparison.Ordinal);
EndPoint endPoint = tcp ? IPEndPoint.Parse(args[0]["tcp:".Length..]) : new UnixDomainSocketEndPoint(args[0]);
await using var server = new DecodeWorkerServer(engine, executor.BlockStore, options);
server.Start(endPoint);
Console.WriteLine(tcp ? FormattableString.Invariant($"READY {((IPEndPoint)server.LocalEndPoint!).Port}") : "READY");
Console.Out.Flush();

using var never = new ManualResetEventSlim(false);
while (await Console.In.ReadLineAsync() is { } line)
{
    if (line.StartsWith("hang-after ", StringComparison.Ordinal))
    {
        int limit = executor.Steps + int.Parse(line["hang-after ".Length..], CultureInfo.InvariantCulture);
        executor.BeforeStep = _ => { if (executor.Steps >= limit) never.Wait(); };
        Console.WriteLine("HANGING");
        Console.Out.Flush();
    }
    if (line == "stats")
    {
        var load = engine.GetLoad();
        Console.WriteLine(FormattableString.Invariant(
            $"STATS {engine.Allocator.FreeCount} {engine.Allocator.Capacity} {load.RunningSequences} {load.WaitingRequests} {server.OpenStreamCount}"));
        Console.Out.Flush();
    }
}
await server.StopAsync();
return 0;
