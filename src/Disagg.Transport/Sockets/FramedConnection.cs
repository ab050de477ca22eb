using System.Buffers;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;

namespace Disagg.Transport.Sockets;

/// <summary>
/// One socket (Unix domain or TCP) with a receive pipe and a send pipe, and frame-level reads and writes on top.
/// </summary>
/// <remarks>
/// <para>Receive: a pump copies socket bytes into a pipe whose pause threshold is a little over two frames, so at most that
/// much is buffered; once it is full the pump stops reading and the kernel's flow control (TCP window, UDS socket buffer)
/// pushes back on the sender. Headers are validated before their payload is awaited, so a claimed length above the limit
/// never causes buffering.</para>
/// <para>Send: writers serialize through a lock, write whole frames into the send pipe's pooled memory and flush; the flush
/// waits while more than <see cref="SocketTransportOptions.SendBufferBytes"/> wait unsent. A pump writes the pipe to the socket.</para>
/// <para>Liveness: once authenticated, a <see cref="KeepAlive"/> sends a Ping whenever this side has sent nothing for a while, and
/// ends the connection with <see cref="ProtocolErrorCode.IdleTimeout"/> when nothing at all has arrived for
/// <see cref="SocketTransportOptions.IdleTimeout"/>: a dead or unreachable peer cannot leave a read waiting forever.</para>
/// <para>Ending: a side that closes because of the peer's error (<see cref="CloseWithErrorAsync"/>) sends its error frame, half-closes,
/// and reads and drops what the peer still sends until the peer closes too, for at most <see cref="SocketTransportOptions.CloseLinger"/> and
/// <see cref="LingerDrainLimitBytes"/>. Closing a socket with unread bytes in it makes the kernel reset the connection (TCP RST),
/// and a reset can destroy the error frame before the peer has read it. On the receiving side, a failed receive (a reset, a broken
/// pipe) never hides frames that arrived before it, and a failed send leaves the receive pump <see cref="SocketTransportOptions.CloseLinger"/> to read the
/// peer's last frames (its error frame, typically) before the connection is given up.</para>
/// <para>Memory: both pipes rent from one <see cref="PinnedBufferPool"/> per connection, so steady traffic allocates nothing.
/// A TLS read yields one record (at most 16 KiB), so the receive pump asks the pipe for only that much: asking for 64 KiB
/// started a new segment for every record (4x the segments, and 499 MB of garbage per 256 MiB transfer before the pool).</para>
/// <para>TLS: when <see cref="AttachTls"/> was called (after <see cref="TlsNegotiation"/>, before <see cref="Start"/>) the pumps move
/// the same pipes' bytes through the <see cref="SslStream"/> instead of the socket; the pipes, and so the backpressure, are the same.
/// Without TLS the pumps use the socket directly.</para>
/// </remarks>
internal sealed class FramedConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly Pipe _input;
    private readonly Pipe _output;
    private readonly PinnedBufferPool _pool;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _closed = new();
    private readonly CancellationTokenSource _receiveStop = new(); // the receive pump's own end: later than _closed, see Linger
    private Task _receivePump = Task.CompletedTask, _sendPump = Task.CompletedTask;
    private SequencePosition _consumeTo;
    private bool _hasPendingFrame;
    private byte[]? _scratch;
    private int _disposed;
    private readonly TimeProvider _time;
    private long _lastReceive, _lastSend;
    private volatile string? _idleFailure;
    private KeepAlive? _keepAlive;
    private SslStream? _tls;
    private bool _started;
    private volatile Exception? _receiveError, _sendError;
    private volatile bool _draining;

    /// <summary>At most this much is read and dropped while lingering: more than a peer has in flight when it learns of the error
    /// (a full send pipe of the default <see cref="SocketTransportOptions.SendBufferBytes"/>, its socket buffers and a frame), so that
    /// only a peer that keeps sending regardless hits it.</summary>
    internal const int LingerDrainLimitBytes = 16 << 20;

    public FramedConnection(Socket socket, SocketTransportOptions options)
    {
        _socket = socket;
        _time = options.TimeProvider;
        Linger = options.CloseLinger;
        _lastReceive = _lastSend = _time.GetTimestamp();
        long receiveCap = 2L * (options.MaxFramePayload + FrameCodec.HeaderSize) + (64 << 10);
        // A frame is written whole into one segment (its payload filled in place), so the pool serves a frame's size; it keeps
        // what both pipes can hold at once, plus a frame, for reuse.
        int largestFrame = options.MaxFramePayload + FrameCodec.HeaderSize;
        _pool = new PinnedBufferPool(retainBytes: receiveCap + options.SendBufferBytes + 2L * largestFrame, maxBufferSize: largestFrame);
        _input = new Pipe(new PipeOptions(_pool, pauseWriterThreshold: receiveCap, resumeWriterThreshold: receiveCap / 2,
            minimumSegmentSize: PinnedBufferPool.MinimumBufferSize, useSynchronizationContext: false));
        _output = new Pipe(new PipeOptions(_pool, pauseWriterThreshold: options.SendBufferBytes, resumeWriterThreshold: options.SendBufferBytes / 2,
            minimumSegmentSize: PinnedBufferPool.MinimumBufferSize, useSynchronizationContext: false));
        ReceiveLimit = FrameCodec.HandshakePayloadLimit;
        SendLimit = FrameCodec.HandshakePayloadLimit;
    }

    /// <summary>See <see cref="SocketTransportOptions.CloseLinger"/>: how long a closing side drains, and a receive outlives a failed send.</summary>
    public TimeSpan Linger { get; }

    /// <summary>Largest payload accepted from the peer now (small until the handshake completes).</summary>
    public int ReceiveLimit { get; set; }

    /// <summary>Largest payload the peer accepts (learned in the handshake).</summary>
    public int SendLimit { get; set; }

    /// <summary>Cancelled when the connection is closed or fails.</summary>
    public CancellationToken Closed => _closed.Token;

    /// <summary>Buffers this connection's pool has allocated so far: once traffic is steady, this stops growing.</summary>
    internal int BufferAllocations => _pool.Allocations;

    /// <summary>The connected socket (for the TLS handshake, which runs on it before <see cref="Start"/>).</summary>
    public Socket Socket => _socket;

    /// <summary>Client side, over TLS: whether the worker asked for a client certificate during the TLS handshake. In TLS 1.3 the
    /// worker checks it after our side of the handshake has completed, so its refusal arrives as a closed connection.</summary>
    public bool ClientCertificateRequested { get; set; }

    /// <summary>Routes every later byte through <paramref name="tls"/>, an authenticated stream over <see cref="Socket"/>.</summary>
    public void AttachTls(SslStream tls)
    {
        if (_started) throw new InvalidOperationException("TLS must be attached before the connection starts.");
        _tls = tls;
    }

    public void Start()
    {
        _started = true;
        _receivePump = Task.Run(ReceivePumpAsync);
        _sendPump = Task.Run(SendPumpAsync);
    }

    /// <summary>Completes when the receive pump has stopped: the peer closed or reset, or this side closed.</summary>
    internal Task InputEnded => _receivePump;

    /// <summary>Starts pinging and idle detection (after the handshake: before it, the handshake timeout bounds every wait).</summary>
    public void StartKeepAlive(SocketTransportOptions options) => _keepAlive ??= new KeepAlive(this, options);

    /// <summary>When bytes last arrived from the peer, or were last committed for it (<see cref="TimeProvider"/> timestamps).</summary>
    public (long LastReceive, long LastSend) Activity => (Volatile.Read(ref _lastReceive), Volatile.Read(ref _lastSend));

    /// <summary>Ends the connection because the peer went silent: the pending and every later read fail with IdleTimeout.</summary>
    public void ExpireIdle(string reason)
    {
        _idleFailure = reason;
        _receiveStop.Cancel(); // nothing arrives any more: nothing to wait for
        try { _input.Reader.CancelPendingRead(); } catch (InvalidOperationException) { }
        _closed.Cancel();
    }

    /// <summary>Sends a Ping unless a writer is busy (then bytes are flowing, or the peer is not reading: a ping would not help).</summary>
    public async Task TryPingAsync()
    {
        if (_writeLock.CurrentCount == 0 || _closed.IsCancellationRequested) return;
        try { await WriteEmptyAsync(FrameType.Ping, 0, _closed.Token).ConfigureAwait(false); }
        catch (Exception ex) when (ex is DisaggProtocolException or OperationCanceledException or ObjectDisposedException) { }
    }

    private async Task ReceivePumpAsync()
    {
        Exception? error = null;
        var tls = _tls;
        // A TLS read returns at most a record's plaintext (16 KiB): asking for more would start a new segment for every record.
        int readHint = tls is null ? PinnedBufferPool.MinimumBufferSize : 16 << 10;
        try
        {
            while (true)
            {
                var memory = _input.Writer.GetMemory(readHint);
                int n = await ReceiveAsync(tls, memory).ConfigureAwait(false);
                if (n == 0) break;
                Volatile.Write(ref _lastReceive, _time.GetTimestamp());
                _input.Writer.Advance(n);
                var flush = await _input.Writer.FlushAsync().ConfigureAwait(false);
                if (flush.IsCompleted)
                {
                    if (_draining) await DrainAsync(tls).ConfigureAwait(false);
                    break;
                }
            }
        }
        catch (OperationCanceledException) { }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or AuthenticationException) { error = ex; }
        // Completing the pipe with the error would make the reader throw at once, dropping frames that arrived before the failure
        // (the peer's error frame, followed by the reset of its close). The reader reports the failure after those frames instead.
        _receiveError = error;
        await _input.Writer.CompleteAsync().ConfigureAwait(false);
    }

    private ValueTask<int> ReceiveAsync(SslStream? tls, Memory<byte> memory) => tls is null
        ? _socket.ReceiveAsync(memory, SocketFlags.None, _receiveStop.Token)
        : tls.ReadAsync(memory, _receiveStop.Token);

    /// <summary>Reads and drops what the peer sends until it closes, <see cref="LingerDrainLimitBytes"/> have come, or the linger ends.</summary>
    private async Task DrainAsync(SslStream? tls)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(64 << 10);
        try
        {
            long drained = 0;
            while (drained < LingerDrainLimitBytes)
            {
                int n = await ReceiveAsync(tls, buffer).ConfigureAwait(false);
                if (n == 0) return;
                drained += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task SendPumpAsync()
    {
        Exception? error = null;
        var tls = _tls;
        try
        {
            while (true)
            {
                var result = await _output.Reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                foreach (var segment in buffer)
                {
                    if (tls is not null)
                    {
                        await tls.WriteAsync(segment, _closed.Token).ConfigureAwait(false);
                        continue;
                    }
                    var remaining = segment;
                    while (!remaining.IsEmpty)
                    {
                        int sent = await _socket.SendAsync(remaining, SocketFlags.None, _closed.Token).ConfigureAwait(false);
                        remaining = remaining[sent..];
                    }
                }
                _output.Reader.AdvanceTo(buffer.End);
                if (result.IsCompleted || result.IsCanceled) break;
            }
        }
        catch (OperationCanceledException) { }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or AuthenticationException) { error = ex; }
        // Completed without the error: a writer then gets a typed ConnectionClosed, not the raw socket exception.
        await _output.Reader.CompleteAsync().ConfigureAwait(false);
        if (error is not null)
        {
            _sendError = error;
            _closed.Cancel();
            // The peer closed or reset: what it sent before (its error frame, typically) may still be on its way in.
            try { _receiveStop.CancelAfter(Linger); } catch (ObjectDisposedException) { }
        }
    }

    /// <summary>
    /// Waits for the next whole frame. Returns false at a clean end of stream. The payload stays valid until
    /// <see cref="ConsumeFrame"/>, which must be called before the next read.
    /// </summary>
    public async ValueTask<(bool Ok, FrameHeader Header, ReadOnlySequence<byte> Payload)> ReadFrameAsync(CancellationToken cancellationToken)
    {
        if (_hasPendingFrame) ConsumeFrame();
        while (true)
        {
            ReadResult result;
            try
            {
                result = await _input.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or InvalidOperationException)
            {
                if (_idleFailure is { } idle) throw new DisaggProtocolException(ProtocolErrorCode.IdleTimeout, idle, inner: ex);
                throw new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, $"The connection failed: {ex.Message}", inner: ex);
            }
            if (_idleFailure is { } silent) throw new DisaggProtocolException(ProtocolErrorCode.IdleTimeout, silent);
            var buffer = result.Buffer;
            if (buffer.Length >= FrameCodec.HeaderSize)
            {
                var header = PeekHeader(buffer, ReceiveLimit);
                long total = FrameCodec.HeaderSize + (long)header.PayloadLength;
                if (buffer.Length >= total)
                {
                    _consumeTo = buffer.GetPosition(total);
                    _hasPendingFrame = true;
                    return (true, header, buffer.Slice(FrameCodec.HeaderSize, header.PayloadLength));
                }
            }
            if (result.IsCompleted || result.IsCanceled)
            {
                if (_receiveError is { } failed)
                    throw new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, $"The connection failed: {failed.Message}", inner: failed);
                if (buffer.Length == 0) return (false, default, default);
                throw new DisaggProtocolException(ProtocolErrorCode.TruncatedFrame,
                    $"The connection ended inside a frame ({buffer.Length} bytes of it arrived).");
            }
            _input.Reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static FrameHeader PeekHeader(in ReadOnlySequence<byte> buffer, int limit)
    {
        Span<byte> headerBytes = stackalloc byte[FrameCodec.HeaderSize];
        buffer.Slice(0, FrameCodec.HeaderSize).CopyTo(headerBytes);
        return FrameCodec.ReadHeader(headerBytes, limit);
    }

    /// <summary>Releases the last frame read.</summary>
    public void ConsumeFrame()
    {
        if (!_hasPendingFrame) return;
        _hasPendingFrame = false;
        _input.Reader.AdvanceTo(_consumeTo);
    }

    /// <summary>A contiguous view of a payload: the first segment itself, or a copy in a scratch buffer owned by the reader
    /// (valid until the next call; only the reading loop calls this).</summary>
    public ReadOnlySpan<byte> Contiguous(in ReadOnlySequence<byte> payload)
    {
        if (payload.IsSingleSegment) return payload.FirstSpan;
        int length = (int)payload.Length;
        if (_scratch is null || _scratch.Length < length)
        {
            if (_scratch is not null) ArrayPool<byte>.Shared.Return(_scratch);
            _scratch = ArrayPool<byte>.Shared.Rent(length);
        }
        payload.CopyTo(_scratch);
        return _scratch.AsSpan(0, length);
    }

    /// <summary>Writes one whole frame; <paramref name="fill"/> writes its payload in place. Waits while the send buffer is full.</summary>
    public async ValueTask WriteFrameAsync<TState>(FrameType type, ulong streamId, int payloadLength, TState state,
        FrameCodec.SpanFiller<TState> fill, CancellationToken cancellationToken = default)
    {
        if (payloadLength > SendLimit)
            throw new DisaggProtocolException(ProtocolErrorCode.FrameTooLarge,
                $"A {type} frame of {payloadLength} bytes exceeds the peer's limit of {SendLimit}.");
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_closed.IsCancellationRequested || Volatile.Read(ref _disposed) != 0) throw ClosedForWriting();
            var span = _output.Writer.GetSpan(FrameCodec.HeaderSize + payloadLength);
            FrameCodec.WriteHeader(span, type, payloadLength, streamId);
            fill(state, span.Slice(FrameCodec.HeaderSize, payloadLength));
            _output.Writer.Advance(FrameCodec.HeaderSize + payloadLength);
            Volatile.Write(ref _lastSend, _time.GetTimestamp());
            FlushResult flush;
            try
            {
                // The frame is committed: it is sent even when this wait is cancelled, so framing stays intact.
                flush = await _output.Writer.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (InvalidOperationException ex)
            {
                throw new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, "The connection is closed.", inner: ex);
            }
            if (flush.IsCompleted) throw ClosedForWriting();
        }
        catch (InvalidOperationException ex)
        {
            throw new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, "The connection is closed.", inner: ex);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private DisaggProtocolException ClosedForWriting() => _sendError is { } failed
        ? new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, $"The connection failed: {failed.Message}", inner: failed)
        : new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, "The connection is closed.");

    public ValueTask WriteEmptyAsync(FrameType type, ulong streamId, CancellationToken cancellationToken = default) =>
        WriteFrameAsync(type, streamId, 0, 0, static (_, _) => { }, cancellationToken);

    public ValueTask WriteErrorAsync(ulong streamId, ProtocolErrorCode code, string message, CancellationToken cancellationToken = default) =>
        WriteFrameAsync(FrameType.Error, streamId, FrameCodec.ErrorSize(message), (code, message),
            static (s, p) => FrameCodec.WriteError(p, s.code, s.message), cancellationToken);

    /// <summary>
    /// Sends a final error frame (best effort, bounded wait) and closes, lingering (see <see cref="SocketTransportOptions.CloseLinger"/>) so that the peer
    /// reads that frame before the connection is torn down. Call once the reading loop has ended: lingering drops what arrives.
    /// </summary>
    public async ValueTask CloseWithErrorAsync(ProtocolErrorCode code, string message)
    {
        if (!_started) { await DisposeAsync().ConfigureAwait(false); return; } // nothing carries frames yet (a failed TLS handshake)
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await WriteErrorAsync(0, code, message, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is DisaggProtocolException or OperationCanceledException or ObjectDisposedException) { }
        // A peer silent for the idle timeout has nothing in flight to wait for.
        await CloseAsync(linger: code != ProtocolErrorCode.IdleTimeout).ConfigureAwait(false);
    }

    /// <summary>Flushes what is queued (bounded wait: a peer that stops reading cannot hold us), then closes the socket. While
    /// <see cref="CloseWithErrorAsync"/> lingers, a call cuts the linger short.</summary>
    public ValueTask DisposeAsync() => CloseAsync(linger: false);

    private async ValueTask CloseAsync(bool linger)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            if (!linger) _receiveStop.Cancel();
            await WaitPumpsAsync().ConfigureAwait(false);
            return;
        }
        _keepAlive?.Dispose();
        // A writer stuck behind a peer that stopped reading keeps the lock: then the writer is not completed here
        // (pipes allow one writer at a time); closing the socket below fails that writer's flush instead.
        if (await _writeLock.WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false))
        {
            try { await _output.Writer.CompleteAsync().ConfigureAwait(false); }
            catch (InvalidOperationException) { }
            finally { _writeLock.Release(); }
        }
        bool sent = false;
        try { await _sendPump.WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false); sent = _sendError is null; }
        catch (TimeoutException) { }
        if (linger && sent && Linger > TimeSpan.Zero) await LingerAsync().ConfigureAwait(false);
        try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { }
        _closed.Cancel();
        _receiveStop.Cancel();
        _socket.Dispose();
        await WaitPumpsAsync().ConfigureAwait(false);
        _tls?.Dispose();
        _pool.Dispose(); // what the pipes still hold goes to the GC when they return it
    }

    /// <summary>
    /// Half-closes (the peer reads our last frame, then end of stream) and drops what the peer still sends until it closes too,
    /// within <see cref="SocketTransportOptions.CloseLinger"/> and <see cref="LingerDrainLimitBytes"/>: then our close finds no unread bytes and does not reset.
    /// </summary>
    private async Task LingerAsync()
    {
        try
        {
            if (_tls is { } tls) await tls.ShutdownAsync().WaitAsync(Linger).ConfigureAwait(false); // TLS close_notify
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException or TimeoutException or InvalidOperationException)
        {
            return; // the connection is already gone: nothing to linger for
        }
        _receiveStop.CancelAfter(Linger);
        _draining = true;
        // The reading loop has ended: completing its side of the pipe turns the pump into a drain (see ReceivePumpAsync).
        ConsumeFrameSafe();
        try { _input.Reader.Complete(); } catch (InvalidOperationException) { }
        try { await _receivePump.WaitAsync(2 * Linger).ConfigureAwait(false); }
        catch (TimeoutException) { }
    }

    private async Task WaitPumpsAsync()
    {
        try { await Task.WhenAll(_receivePump, _sendPump).ConfigureAwait(false); }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException) { }
    }

    /// <summary>Returns the reader's scratch buffer; call once the reading loop has ended.</summary>
    public void ReleaseReaderResources()
    {
        ConsumeFrameSafe();
        if (Interlocked.Exchange(ref _scratch, null) is { } scratch) ArrayPool<byte>.Shared.Return(scratch);
        try { _input.Reader.Complete(); } catch (InvalidOperationException) { }
    }

    private void ConsumeFrameSafe()
    {
        try { ConsumeFrame(); } catch (InvalidOperationException) { }
    }

    public static Socket NewSocket(System.Net.EndPoint endPoint)
    {
        bool unix = endPoint is System.Net.Sockets.UnixDomainSocketEndPoint;
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, unix ? ProtocolType.Unspecified : ProtocolType.Tcp);
        return socket;
    }

    public static void Tune(Socket socket)
    {
        if (socket.ProtocolType == ProtocolType.Tcp) socket.NoDelay = true;
    }
}
