using System.Net;
using System.Net.Sockets;

namespace Disagg.Chat;

/// <summary>"unix:/path" and "tcp:host:port" endpoints.</summary>
internal static class Endpoints
{
    public static EndPoint Parse(string text)
    {
        if (text.StartsWith("unix:", StringComparison.Ordinal) && text.Length > 5) return new UnixDomainSocketEndPoint(text[5..]);
        if (text.StartsWith("tcp:", StringComparison.Ordinal))
        {
            int colon = text.LastIndexOf(':');
            if (colon > 4 && int.TryParse(text[(colon + 1)..], out int port) && port is > 0 and < 65536)
            {
                string host = text[4..colon];
                var address = host == "localhost" ? IPAddress.Loopback : IPAddress.TryParse(host, out var ip) ? ip : null;
                if (address is not null) return new IPEndPoint(address, port);
            }
        }
        throw new UsageException($"--endpoint '{text}' is not unix:/path or tcp:address:port.");
    }

    /// <summary>A fresh endpoint of the given kind on this machine.</summary>
    public static string Fresh(string transport)
    {
        if (transport == "unix") return "unix:" + Path.Combine(Path.GetTempPath(), $"disagg-{Guid.NewGuid():N}.sock");
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return $"tcp:127.0.0.1:{port}";
    }
}
