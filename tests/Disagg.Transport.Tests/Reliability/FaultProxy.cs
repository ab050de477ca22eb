using System.Net;
using System.Net.Sockets;
using Disagg.Transport.Sockets;
using Disagg.Transport.Tests.Sockets;

namespace Disagg.Transport.Tests.Reliability;

/// <summary>What the proxy does with one frame.</summary>
internal enum ProxyAction
{
    /// <summary>Passes it on unchanged.</summary>
    Forward,
    /// <summary>Cuts both sockets before the frame goes on: the link drops mid-stream.</summary>
    Drop,
    /// <summary>Flips one bit in the middle of its payload, then passes it on.</summary>
    Corrupt,
    /// <summary>Swallows it (and every later frame of that kind): it never arrives.</summary>
    Hold,
    /// <summary>From now on nothing passes in either direction, and nothing is closed: a black hole, as when a host dies.</summary>
    BlackHole,
}

/// <summary>
/// A frame-aware relay between a client and a decode worker that injects faults: each frame, in each direction, is passed,
/// dropped with the connection, corrupted, held back, or the whole link goes silent. Listens on a Unix socket of its own.
/// </summary>
internal sealed class FaultProxy : IAsyncDisposable
{
    private readonly EndPoint _target;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    private readonly Task _accept;
    private volatile bool _blackHole;

    public FaultProxy(EndPoint target, Func<bool, FrameType, ProxyAction> decide)
    {
        _target = target;
        Decide = decide;
        EndPoint = TestSupport.NewEndPoint(unix: true);
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(EndPoint);
        _listener.Listen(8);
        _accept = Task.Run(AcceptLoopAsync);
    }

    /// <summary>Decides per frame: (from the client?, its type).</summary>
    public Func<bool, FrameType, ProxyAction> Decide { get; set; }

    public EndPoint EndPoint { get; }

    /// <summary>Released each time a fault is applied.</summary>
    public SemaphoreSlim FaultApplied { get; } = new(0);

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try { client = await _listener.AcceptAsync(_stop.Token); }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException) { return; }
            var server = new Socket(_target.AddressFamily, SocketType.Stream, _target is UnixDomainSocketEndPoint ? ProtocolType.Unspecified : ProtocolType.Tcp);
            await server.ConnectAsync(_target);
            lock (_sockets) _sockets.AddRange([client, server]);
            _ = PumpAsync(client, server, fromClient: true);
            _ = PumpAsync(server, client, fromClient: false);
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool fromClient)
    {
        var held = new HashSet<FrameType>();
        bool sending = false; // whether a failure came from the destination (gone) rather than the source
        try
        {
            var header = new byte[FrameCodec.HeaderSize];
            while (true)
            {
                await ReadExactly(from, header);
                var h = FrameCodec.ReadHeader(header, int.MaxValue);
                var payload = new byte[h.PayloadLength];
                await ReadExactly(from, payload);
                if (_blackHole || held.Contains(h.Type)) continue;
                var action = Decide(fromClient, h.Type);
                if (action != ProxyAction.Forward) FaultApplied.Release();
                switch (action)
                {
                    case ProxyAction.Drop:
                        Cut();
                        return;
                    case ProxyAction.BlackHole:
                        _blackHole = true;
                        continue;
                    case ProxyAction.Hold:
                        held.Add(h.Type);
                        continue;
                    case ProxyAction.Corrupt when payload.Length > 0:
                        payload[payload.Length / 2] ^= 0x10;
                        break;
                }
                sending = true;
                await to.SendAsync(header);
                if (payload.Length > 0) await to.SendAsync(payload);
                sending = false;
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or EndOfStreamException or DisaggProtocolException)
        {
            // The source closed: close the other side too, as a direct connection would. When the destination is what went
            // away, leave it to the opposite pump, which still forwards what the destination sent before closing (a worker's
            // error frame) and then sees it close: cutting here would drop that frame, which a direct connection delivers.
            if (!_blackHole && !sending) Cut();
        }
    }

    private static async Task ReadExactly(Socket socket, byte[] buffer)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None);
            if (n == 0) throw new EndOfStreamException();
            got += n;
        }
    }

    private void Cut()
    {
        lock (_sockets)
            foreach (var socket in _sockets)
            {
                try { socket.Shutdown(SocketShutdown.Both); } catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { }
                socket.Dispose();
            }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        await _accept;
        Cut();
        File.Delete(EndPoint.ToString()!);
        FaultApplied.Dispose();
    }
}
