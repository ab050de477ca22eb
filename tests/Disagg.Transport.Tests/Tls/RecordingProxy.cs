using System.Net;
using System.Net.Sockets;

namespace Disagg.Transport.Tests.Tls;

/// <summary>A TCP relay that passes every byte on unchanged and keeps a copy of what crossed, both directions together:
/// what an eavesdropper on the link would see.</summary>
internal sealed class RecordingProxy : IAsyncDisposable
{
    private readonly EndPoint _target;
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    private readonly List<Task> _pumps = [];
    private readonly MemoryStream _recorded = new();
    private readonly Task _accept;

    public RecordingProxy(EndPoint target)
    {
        _target = target;
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(8);
        EndPoint = _listener.LocalEndPoint!;
        _accept = Task.Run(AcceptLoopAsync);
    }

    public EndPoint EndPoint { get; }

    /// <summary>Every byte relayed so far.</summary>
    public byte[] Recorded()
    {
        lock (_recorded) return _recorded.ToArray();
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket client;
            try { client = await _listener.AcceptAsync(_stop.Token); }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException) { return; }
            var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await server.ConnectAsync(_target);
            lock (_sockets)
            {
                _sockets.AddRange([client, server]);
                _pumps.Add(PumpAsync(client, server));
                _pumps.Add(PumpAsync(server, client));
            }
        }
    }

    private async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[64 << 10];
        try
        {
            while (true)
            {
                int n = await from.ReceiveAsync(buffer, SocketFlags.None);
                if (n == 0) break;
                lock (_recorded) _recorded.Write(buffer, 0, n);
                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
            }
            to.Shutdown(SocketShutdown.Send); // pass the end of stream on
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        await _accept;
        Task[] pumps;
        lock (_sockets)
        {
            foreach (var socket in _sockets) socket.Dispose();
            pumps = [.. _pumps];
        }
        await Task.WhenAll(pumps);
    }
}
