namespace Disagg.Transport.Sockets;

/// <summary>
/// Keeps an authenticated connection provably alive: every <see cref="SocketTransportOptions.KeepAliveInterval"/> it pings the
/// peer if this side has sent nothing for that long, and ends the connection once nothing has arrived for
/// <see cref="SocketTransportOptions.IdleTimeout"/>. Both sides run one, so a healthy but quiet connection always carries a frame
/// per interval, and a peer that died without closing (power loss, a partition, a hung process) is detected within the timeout.
/// </summary>
/// <remarks>One timer of the options' <see cref="TimeProvider"/> per connection; nothing is allocated per frame.</remarks>
internal sealed class KeepAlive : IDisposable
{
    private readonly FramedConnection _connection;
    private readonly TimeProvider _time;
    private readonly TimeSpan _interval, _idleTimeout;
    private readonly ITimer _timer;

    public KeepAlive(FramedConnection connection, SocketTransportOptions options)
    {
        _connection = connection;
        _time = options.TimeProvider;
        _interval = options.KeepAliveInterval;
        _idleTimeout = options.IdleTimeout;
        _timer = _time.CreateTimer(static s => ((KeepAlive)s!).Tick(), this, _interval, _interval);
    }

    private void Tick()
    {
        var (lastReceive, lastSend) = _connection.Activity;
        long now = _time.GetTimestamp();
        if (_idleTimeout != Timeout.InfiniteTimeSpan && _time.GetElapsedTime(lastReceive, now) >= _idleTimeout)
        {
            _timer.Dispose();
            _connection.ExpireIdle($"Nothing arrived from the peer for {_idleTimeout.TotalSeconds:0.###} s (IdleTimeout).");
            return;
        }
        if (_time.GetElapsedTime(lastSend, now) >= _interval) _ = _connection.TryPingAsync();
    }

    public void Dispose() => _timer.Dispose();
}
