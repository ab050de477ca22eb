using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Disagg.Transport.Tests.Tls;
using Xunit.Abstractions;

namespace Disagg.Chat.Tests;

/// <summary>
/// The chat program itself, run as processes on the bundled demo model (CPU): disaggregated across two processes, over a Unix
/// socket, TCP, TLS and mutual TLS, it prints the tokens the colocated chat prints for the same seed; a worker started on its
/// own (--serve-decode) with CA-issued certificates serves an attaching chat that presents a certificate from the right CA, and
/// refuses one that presents none.
/// </summary>
public sealed class ChatProcessTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(2); // an upper bound on one process, never a timing assumption
    private const string Secret = "a shared secret for the chat process test";

    // Seeded sampling, not greedy: the two processes must agree on the sampler's random stream too.
    private static readonly string[] Generate = ["--prompt-ids", "5,6,7,8,9,10,11", "--print-ids", "--max-tokens", "12", "--temperature", "0.8", "--seed", "7"];

    private readonly string _folder = Directory.CreateTempSubdirectory("disagg-chat-process-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    public static TheoryData<string[], string> Links() => new()
    {
        { ["--transport", "unix"], "over unix:" },
        { ["--transport", "tcp"], "over tcp:127.0.0.1:" },
        { ["--transport", "tcp", "--tls"], "with TLS" },
        { ["--transport", "tcp", "--tls", "--tls-client-cert", "{client}", "--tls-password", "{password}"], "with mutual TLS (this chat presents CN=chat.test)" },
    };

    [Theory]
    [MemberData(nameof(Links))]
    public async Task A_chat_that_starts_its_decode_worker_prints_the_colocated_tokens(string[] link, string described)
    {
        using var client = TestCertificates.SelfSigned("chat.test");
        const string password = "client password";
        string clientFile = Write("client.p12", client.ExportPkcs12(Pkcs12ExportPbeParameters.Pbes2Aes256Sha256, password));
        string[] linkArguments = [.. link.Select(a => a.Replace("{client}", clientFile, StringComparison.Ordinal).Replace("{password}", password, StringComparison.Ordinal))];

        var colocated = await RunAsync([.. Generate]);
        var disaggregated = await RunAsync(["--mode", "disaggregated", .. linkArguments, .. Generate]);

        Assert.Equal(0, colocated.ExitCode);
        Assert.Equal(0, disaggregated.ExitCode);
        Assert.Matches(@"^\d+(,\d+){11}$", colocated.Stdout.Trim());
        Assert.Equal(colocated.Stdout.Trim(), disaggregated.Stdout.Trim());
        Assert.Contains("decode on cpu in process ", disaggregated.Stderr, StringComparison.Ordinal); // a second process decoded
        Assert.Contains(described, disaggregated.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_chat_run_through_the_dotnet_host_starts_its_worker_through_it_too()
    {
        var colocated = await RunAsync([.. Generate]);
        var disaggregated = await RunAsync(["--mode", "disaggregated", "--transport", "unix", .. Generate], throughDotnetHost: true);

        Assert.Equal(0, disaggregated.ExitCode);
        Assert.Equal(colocated.Stdout.Trim(), disaggregated.Stdout.Trim());
    }

    [Fact]
    public async Task An_attached_chat_needs_a_certificate_from_the_authority_the_worker_names()
    {
        using var authority = TestCertificates.Authority("Disagg Test CA");
        using var workerCertificate = TestCertificates.IssuedBy(authority, "decode.test");
        using var chatCertificate = TestCertificates.IssuedBy(authority, "chat.test");
        using var stranger = TestCertificates.SelfSigned("chat.test");
        const string password = "pkcs12 password";
        string ca = Write("ca.pem", System.Text.Encoding.ASCII.GetBytes(authority.ExportCertificatePem()));
        string worker = Write("worker.p12", workerCertificate.ExportPkcs12(Pkcs12ExportPbeParameters.Pbes2Aes256Sha256, password));
        string chat = Write("chat.p12", chatCertificate.ExportPkcs12(Pkcs12ExportPbeParameters.Pbes2Aes256Sha256, password));
        string strangerFile = Write("stranger.p12", stranger.ExportPkcs12(Pkcs12ExportPbeParameters.Pbes2Aes256Sha256, password));
        string endpoint = $"tcp:127.0.0.1:{FreePort()}";

        using var server = Start(["--serve-decode", "--endpoint", endpoint, "--tls", "--tls-cert", worker, "--tls-client-ca", ca], password);
        try
        {
            using (var ready = new CancellationTokenSource(Bound))
                Assert.Equal("ready", await server.StandardOutput.ReadLineAsync(ready.Token));
            string[] attach = ["--mode", "disaggregated", "--transport", "tcp", "--attach", "--endpoint", endpoint, "--tls", "--tls-ca", ca, "--tls-host", "decode.test"];

            var colocated = await RunAsync([.. Generate]);
            var accepted = await RunAsync([.. attach, "--tls-client-cert", chat, .. Generate], password);
            var withoutCertificate = await RunAsync([.. attach, .. Generate], password);
            var withStranger = await RunAsync([.. attach, "--tls-client-cert", strangerFile, .. Generate], password);

            Assert.Equal(0, accepted.ExitCode);
            Assert.Equal(colocated.Stdout.Trim(), accepted.Stdout.Trim());
            Assert.Contains("with mutual TLS (this chat presents CN=chat.test)", accepted.Stderr, StringComparison.Ordinal);
            Assert.Contains("this client presents none", withoutCertificate.Stderr, StringComparison.Ordinal);
            Assert.Contains("did not accept this client's certificate (CN=chat.test", withStranger.Stderr, StringComparison.Ordinal);
            foreach (var refused in new[] { withoutCertificate, withStranger })
            {
                Assert.NotEqual(0, refused.ExitCode);
                Assert.Equal("", refused.Stdout.Trim());
                Assert.Contains("TlsHandshakeFailed: The decode worker asked for a client certificate", refused.Stderr, StringComparison.Ordinal);
                Assert.Contains("--tls-client-cert", refused.Stderr, StringComparison.Ordinal); // the hint names the flag that would help
            }
        }
        finally
        {
            server.StandardInput.Close(); // the worker serves until its stdin closes
            using var exit = new CancellationTokenSource(Bound);
            await server.WaitForExitAsync(exit.Token);
        }
        Assert.Equal(0, server.ExitCode);
    }

    private string Write(string name, byte[] contents)
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllBytes(path, contents);
        return path;
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private static Process Start(IEnumerable<string> arguments, string? tlsPassword = null, bool throughDotnetHost = false)
    {
        string program = Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "Disagg.Chat.exe" : "Disagg.Chat");
        var start = new ProcessStartInfo(throughDotnetHost ? DotnetHost() : program)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (throughDotnetHost) start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Disagg.Chat.dll"));
        foreach (var a in arguments) start.ArgumentList.Add(a);
        start.Environment["DISAGG_SHARED_SECRET"] = Secret;
        start.Environment.Remove("DISAGG_TLS_PASSWORD");
        if (tlsPassword is not null) start.Environment["DISAGG_TLS_PASSWORD"] = tlsPassword;
        return Process.Start(start) ?? throw new InvalidOperationException("The chat did not start.");
    }

    /// <summary>The dotnet host running these tests (or the one on PATH).</summary>
    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host
        : Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self
        : "dotnet";

    private async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string[] arguments, string? tlsPassword = null, bool throughDotnetHost = false)
    {
        using var process = Start(arguments, tlsPassword, throughDotnetHost);
        process.StandardInput.Close(); // one-shot runs read nothing
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var bound = new CancellationTokenSource(Bound);
        try
        {
            await process.WaitForExitAsync(bound.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"The chat ran past {Bound}: {string.Join(' ', arguments)}");
        }
        var result = (process.ExitCode, await stdout, await stderr);
        output.WriteLine($"$ Disagg.Chat {string.Join(' ', arguments)}\nexit {result.ExitCode}\n{result.Item2}{result.Item3}");
        return result;
    }
}
