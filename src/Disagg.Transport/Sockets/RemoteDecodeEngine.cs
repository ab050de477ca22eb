using System.Collections.Concurrent;
using System.Net;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Disagg.Kv;

namespace Disagg.Transport.Sockets;

/// <summary>
/// A decode engine that lives in another process, behind a <see cref="DecodeWorkerServer"/>: one authenticated connection
/// that multiplexes any number of requests. Reservations name the worker's blocks; fill them with the
/// <see cref="SocketKvTransport"/> from <see cref="CreateTransport"/>, then decode.
/// </summary>
/// <remarks>
/// Disposing a reservation before decoding releases its blocks on the worker. Cancelling or abandoning a token stream cancels
/// the remote decode. When the connection fails, every pending operation fails with a <see cref="DisaggProtocolException"/>
/// and the worker releases everything this client held. Token timestamps are local receive times (the worker's
/// <see cref="System.Diagnostics.Stopwatch"/> clock means nothing in this process). Every wait on the worker is bounded
/// (<see cref="SocketTransportOptions.ConnectTimeout"/>, <see cref="SocketTransportOptions.ReserveTimeout"/>,
/// <see cref="SocketTransportOptions.TransferTimeout"/>, <see cref="SocketTransportOptions.TokenTimeout"/>, and the connection's
/// <see cref="SocketTransportOptions.IdleTimeout"/>) and ends in a typed error. Thread-safe.
/// </remarks>
public sealed class RemoteDecodeEngine : IDecodeEngine, IAsyncDisposable
{
    private readonly FramedConnection _connection;
    private readonly ConcurrentDictionary<ulong, ClientStream> _streams = new();
    private readonly ConditionalWeakTable<KvReservation, ClientStream> _byReservation = new();
    private readonly Task _readLoop;
    private long _nextStreamId;
    private EngineLoad _load;
    private readonly object _loadLock = new();
    private volatile Exception? _failure;
    private readonly TaskCompletionSource _failed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _disposed;
    private readonly SocketTransportOptions _options;

    private RemoteDecodeEngine(FramedConnection connection, SocketTransportOptions options, EndPoint endPoint, KvCacheLayout layout, int maxContextLength, EngineLoad load)
    {
        _connection = connection;
        _options = options;
        RemoteEndPoint = endPoint;
        KvLayout = layout;
        MaxContextLength = maxContextLength;
        _load = load;
        _readLoop = Task.Run(ReadLoopAsync);
        connection.StartKeepAlive(options);
    }

    /// <summary>Connects to a worker and authenticates both ways.</summary>
    /// <exception cref="DisaggProtocolException">The handshake failed (wrong secret, incompatible version, TLS refused or not agreed on, ...).</exception>
    /// <exception cref="ArgumentException">Invalid options, or TLS asked for on a Unix socket.</exception>
    /// <exception cref="System.Net.Sockets.SocketException">Nothing listens at <paramref name="endPoint"/>.</exception>
    /// <exception cref="DisaggTimeoutException">No connection within <see cref="SocketTransportOptions.ConnectTimeout"/>.</exception>
    public static async Task<RemoteDecodeEngine> ConnectAsync(EndPoint endPoint, SocketTransportOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        ArgumentNullException.ThrowIfNull(options);
        options.ValidateFor(endPoint, server: false);
        var socket = FramedConnection.NewSocket(endPoint);
        try
        {
            using var connectTimeout = new CancellationTokenSource(options.ConnectTimeout, options.TimeProvider);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, connectTimeout.Token);
            try
            {
                await socket.ConnectAsync(endPoint, linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException ex) when (connectTimeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new DisaggTimeoutException($"connecting to the decode worker at {endPoint}", options.ConnectTimeout, ex);
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        FramedConnection.Tune(socket);
        var connection = new FramedConnection(socket, options);
        try
        {
            using var handshakeTimeout = new CancellationTokenSource(options.HandshakeTimeout, options.TimeProvider);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, handshakeTimeout.Token);
            (KvCacheLayout, int, EngineLoad, byte[]?) ready;
            try
            {
                if (options.Tls is { } tls)
                    await TlsNegotiation.AuthenticateClientAsync(connection, tls, endPoint, timeout.Token).ConfigureAwait(false);
                connection.Start();
                ready = await Handshake.RunClientAsync(connection, options, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new DisaggProtocolException(ProtocolErrorCode.HandshakeTimeout,
                    $"The decode worker at {endPoint} did not complete the {(options.Tls is null ? "" : "TLS and ")}handshake within {options.HandshakeTimeout.TotalSeconds:0.#} s.");
            }
            var (layout, maxContext, load, descriptor) = ready;
            return new RemoteDecodeEngine(connection, options, endPoint, layout, maxContext, load) { DirectTransferDescriptor = descriptor };
        }
        catch (DisaggProtocolException ex) when (!ex.IsRemote && ex.Code != ProtocolErrorCode.ConnectionClosed)
        {
            await connection.CloseWithErrorAsync(ex.Code, ex.Detail).ConfigureAwait(false);
            connection.ReleaseReaderResources();
            throw;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            connection.ReleaseReaderResources();
            throw;
        }
    }

    /// <summary>
    /// What the worker published for direct transfers (<see cref="SocketTransportOptions.DirectTransferDescriptor"/>), such as the
    /// CUDA IPC handle of its KV memory; null when it accepts only blocks over the socket.
    /// </summary>
    public byte[]? DirectTransferDescriptor { get; private init; }

    /// <summary>The worker's address.</summary>
    public EndPoint RemoteEndPoint { get; }

    /// <inheritdoc />
    public KvCacheLayout KvLayout { get; }

    /// <inheritdoc />
    public int MaxContextLength { get; }

    /// <summary>False once the connection has failed or been disposed.</summary>
    public bool IsConnected => _failure is null;

    /// <summary>Why the connection ended (null while it is up).</summary>
    public Exception? Failure => _failure;

    /// <summary>The load the worker last reported (after the handshake, each reservation and each finished request).</summary>
    public EngineLoad GetLoad()
    {
        lock (_loadLock) return _load;
    }

    /// <summary>A transport that streams KV from <paramref name="source"/> (the local prefill engine's blocks) into this engine's reservations.</summary>
    public SocketKvTransport CreateTransport(IKvBlockStore source) => new(this, source, _options.BlockFrameTargetBytes);

    /// <inheritdoc />
    /// <exception cref="DisaggTimeoutException">No reservation within <see cref="SocketTransportOptions.ReserveTimeout"/>.</exception>
    public async ValueTask<KvReservation> ReserveAsync(InferenceRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ThrowIfFailed();
        int size = FrameCodec.ReserveSize(request);
        if (size > _connection.SendLimit)
            throw new PromptTooLongException(request.Id, request.PromptTokens.Length, (_connection.SendLimit - (size - 4 * request.PromptTokens.Length)) / 4,
                "the socket transport's frame limit");
        var stream = new ClientStream((ulong)Interlocked.Increment(ref _nextStreamId), request);
        _streams[stream.Id] = stream;
        using var registration = cancellationToken.Register(static s =>
        {
            var (self, st, ct) = ((RemoteDecodeEngine, ClientStream, CancellationToken))s!;
            if (st.Reserve.TrySetCanceled(ct)) self.EndStream(st, FrameType.Release);
        }, (this, stream, cancellationToken));
        using var timeout = StartTimeout(_options.ReserveTimeout);
        using var expiry = timeout.Token.Register(static s =>
        {
            var (self, st) = ((RemoteDecodeEngine, ClientStream))s!;
            if (st.Reserve.TrySetException(new DisaggTimeoutException(
                $"reserving KV blocks for request {st.Request.Id} on the decode worker at {self.RemoteEndPoint}", self._options.ReserveTimeout)))
                self.EndStream(st, FrameType.Release);
        }, (this, stream));
        try
        {
            await _connection.WriteFrameAsync(FrameType.Reserve, stream.Id, size, request,
                static (r, p) => FrameCodec.WriteReserve(p, r), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            stream.Reserve.TrySetException(await ExplainAsync(ex).ConfigureAwait(false));
            EndStream(stream, FrameType.Release);
        }
        return await stream.Reserve.Task.ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <exception cref="DisaggTimeoutException">No token for <see cref="SocketTransportOptions.TokenTimeout"/>, or the worker's
    /// reservation lease expired first.</exception>
    public async IAsyncEnumerable<GeneratedToken> DecodeAsync(
        KvReservation reservation, GeneratedToken firstToken, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reservation);
        ThrowIfFailed();
        var stream = OpenStreamOf(reservation);
        if (stream.TransferInFlight || !reservation.TryClaim())
            throw new InvalidOperationException($"Reservation of {reservation.Request.Id} is not open on remote engine {RemoteEndPoint} (released, claimed, being transferred, or from another engine).");
        var tokens = Channel.CreateUnbounded<GeneratedToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        stream.Tokens = tokens;
        if (stream.Failure is { } failedMeanwhile) tokens.Writer.TryComplete(failedMeanwhile);
        bool finished = false;
        try
        {
            await StartDecodeAsync(stream.Id, firstToken, cancellationToken).ConfigureAwait(false);
            var reader = tokens.Reader;
            // One timer for the whole stream, re-armed before each wait: a worker that stops sending tokens cannot hold us.
            using var stall = StartTimeout(Timeout.InfiniteTimeSpan);
            using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stall.Token);
            while (true)
            {
                if (_options.TokenTimeout != Timeout.InfiniteTimeSpan) stall.CancelAfter(_options.TokenTimeout);
                bool more;
                try
                {
                    more = await reader.WaitToReadAsync(waiting.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException ex) when (stall.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    throw new DisaggTimeoutException(
                        $"waiting for the next token of request {reservation.Request.Id} from the decode worker at {RemoteEndPoint}", _options.TokenTimeout, ex);
                }
                if (!more) break;
                while (reader.TryRead(out var token))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    finished = token.IsLast;
                    yield return token;
                    if (finished) yield break;
                }
            }
            throw new DisaggProtocolException(ProtocolErrorCode.ProtocolViolation, "The worker ended the token stream without a finish reason.");
        }
        finally
        {
            if (!finished) EndStream(stream, FrameType.Cancel); // cancelled, abandoned or failed: stop the remote decode
        }
    }

    private async Task StartDecodeAsync(ulong streamId, GeneratedToken firstToken, CancellationToken cancellationToken)
    {
        try
        {
            await _connection.WriteFrameAsync(FrameType.DecodeStart, streamId, FrameCodec.TokenPayloadSize, firstToken,
                static (t, p) => FrameCodec.WriteToken(p, t), cancellationToken).ConfigureAwait(false);
        }
        catch (DisaggProtocolException ex) when (ex.Code == ProtocolErrorCode.ConnectionClosed)
        {
            throw await ExplainAsync(ex).ConfigureAwait(false);
        }
    }

    /// <summary>Closes the connection; the worker releases every reservation and cancels every decode of this client.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Fail(new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, "The remote decode engine was disposed."));
        await _connection.DisposeAsync().ConfigureAwait(false);
        await _readLoop.ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ for the transport

    internal FramedConnection Connection => _connection;

    internal SocketTransportOptions Options => _options;

    /// <summary>A timeout on the options' clock (never fires for <see cref="Timeout.InfiniteTimeSpan"/>).</summary>
    internal CancellationTokenSource StartTimeout(TimeSpan timeout) => new(timeout, _options.TimeProvider);

    /// <summary>
    /// The open stream of <paramref name="reservation"/>. Throws the stream's own failure when the worker ended it (a lease that
    /// expired, an engine error), and <see cref="InvalidOperationException"/> when it was released or belongs to another engine.
    /// </summary>
    internal ClientStream OpenStreamOf(KvReservation reservation)
    {
        if (_byReservation.TryGetValue(reservation, out var stream) && !reservation.IsReleased)
        {
            if (_streams.ContainsKey(stream.Id)) return stream;
            if (stream.Failure is { } failure) throw failure;
        }
        throw new InvalidOperationException($"The reservation of {reservation.Request.Id} is not open on remote engine {RemoteEndPoint} (released, claimed, or from another engine).");
    }

    /// <summary>
    /// What to report for <paramref name="sendFailure"/>: a send fails when the worker has closed, usually after an error frame
    /// saying why, which the read loop may not have read yet. This waits (at most twice <see cref="SocketTransportOptions.CloseLinger"/>:
    /// the read loop ends within one linger of a failed send) for the read loop's verdict, and returns it in place of a bare
    /// ConnectionClosed.
    /// </summary>
    internal async ValueTask<Exception> ExplainAsync(Exception sendFailure)
    {
        if (sendFailure is not DisaggProtocolException { Code: ProtocolErrorCode.ConnectionClosed, IsRemote: false }) return sendFailure;
        try { await _failed.Task.WaitAsync(2 * _connection.Linger).ConfigureAwait(false); }
        catch (TimeoutException) { return sendFailure; }
        var failure = _failure!;
        if (failure is DisaggProtocolException { Code: ProtocolErrorCode.ConnectionClosed, IsRemote: false } || sendFailure.InnerException == failure)
            return sendFailure; // nothing more precise to say
        return new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, $"The connection to the decode worker failed: {failure.Message}", inner: failure);
    }

    internal void ThrowIfFailed()
    {
        if (_failure is { } failure)
            throw new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, $"The connection to the decode worker is down: {failure.Message}", inner: failure);
    }

    // ------------------------------------------------------------------ receiving

    private async Task ReadLoopAsync()
    {
        Exception? error = null;
        try
        {
            while (true)
            {
                var (ok, header, payload) = await _connection.ReadFrameAsync(CancellationToken.None).ConfigureAwait(false);
                if (!ok)
                {
                    error = new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, "The decode worker closed the connection.");
                    break;
                }
                Dispatch(header, _connection.Contiguous(payload));
            }
        }
        catch (DisaggProtocolException ex)
        {
            error = ex;
        }
        catch (Exception ex)
        {
            error = new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, $"The connection failed: {ex.Message}", inner: ex);
        }
        Fail(error);
        if (error is DisaggProtocolException { IsRemote: false, Code: not ProtocolErrorCode.ConnectionClosed } violation)
            await _connection.CloseWithErrorAsync(violation.Code, violation.Detail).ConfigureAwait(false);
        else
            await _connection.DisposeAsync().ConfigureAwait(false);
        _connection.ReleaseReaderResources();
    }

    private void Dispatch(FrameHeader header, ReadOnlySpan<byte> payload)
    {
        ulong id = header.StreamId;
        switch (header.Type)
        {
            case FrameType.Reserved:
            {
                var (cached, length, blockIds) = FrameCodec.ReadReserved(payload);
                if (!_streams.TryGetValue(id, out var stream)) return; // cancelled meanwhile; the release is on its way
                KvReservation reservation;
                try
                {
                    if (length != stream.Request.PromptTokens.Length) throw new ArgumentException("The reservation does not cover the prompt.");
                    var handle = new KvHandle(stream.Request.Id, KvLayout, blockIds, length);
                    reservation = new KvReservation(stream.Request, handle, cached, () => OnReservationDisposed(stream));
                }
                catch (ArgumentException ex)
                {
                    throw FrameCodec.Violation(ProtocolErrorCode.MalformedPayload, $"Invalid reservation: {ex.Message}");
                }
                _byReservation.AddOrUpdate(reservation, stream);
                if (!stream.Reserve.TrySetResult(reservation)) reservation.Dispose();
                return;
            }
            case FrameType.TransferAck:
            {
                var ack = FrameCodec.ReadTransferAck(payload);
                if (_streams.TryGetValue(id, out var stream)) stream.Ack?.TrySetResult(ack);
                return;
            }
            case FrameType.Token:
            {
                var token = FrameCodec.ReadToken(payload, FrameType.Token);
                if (!_streams.TryGetValue(id, out var stream)) return; // cancelled meanwhile
                if (stream.Tokens is not { } tokens)
                    throw FrameCodec.Violation(ProtocolErrorCode.InvalidStreamState, $"Token for stream {id}, which is not decoding.");
                tokens.Writer.TryWrite(token);
                if (token.IsLast)
                {
                    _streams.TryRemove(id, out _);
                    tokens.Writer.TryComplete();
                }
                return;
            }
            case FrameType.Load:
            {
                var load = FrameCodec.ReadLoad(payload);
                lock (_loadLock) _load = load;
                return;
            }
            case FrameType.Ping:
                FrameCodec.CheckPing(header); // its arrival is what counts (the connection's idle clock)
                return;
            case FrameType.Error:
            {
                var (code, message) = FrameCodec.ReadError(payload);
                if (id == 0) throw new DisaggProtocolException(code, message, isRemote: true);
                if (_streams.TryGetValue(id, out var stream))
                {
                    stream.Fail(RemoteError(stream, code, message)); // before it leaves the table, so that its failure is what callers see
                    _streams.TryRemove(id, out _);
                }
                return;
            }
            default:
                throw FrameCodec.Violation(ProtocolErrorCode.UnexpectedFrameType, $"A worker may not send {header.Type} frames after the handshake.");
        }
    }

    private Exception RemoteError(ClientStream stream, ProtocolErrorCode code, string message) => code switch
    {
        ProtocolErrorCode.LeaseExpired => new DisaggTimeoutException(
            $"putting the reservation of request {stream.Request.Id} to use before the decode worker's lease ran out ({message})", _options.ReservationLease,
            new DisaggProtocolException(code, message, isRemote: true)),
        ProtocolErrorCode.InvalidRequest => new InvalidRequestException(stream.Request.Id, $"Rejected by the decode worker: {message}"),
        ProtocolErrorCode.EngineOverloaded => new EngineOverloadedException(message),
        ProtocolErrorCode.EngineStopped => new EngineStoppedException($"The decode worker stopped: {message}"),
        _ => new DisaggProtocolException(code, message, isRemote: true),
    };

    private void Fail(Exception error)
    {
        Interlocked.CompareExchange(ref _failure, error, null);
        var failure = _failure!;
        _failed.TrySetResult();
        foreach (var stream in _streams.Values)
        {
            if (_streams.TryRemove(stream.Id, out _))
                stream.Fail(new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, $"The connection to the decode worker failed: {failure.Message}", inner: failure));
        }
    }

    // ------------------------------------------------------------------ ending streams

    private void OnReservationDisposed(ClientStream stream)
    {
        stream.Ack?.TrySetException(new KvTransferException($"The reservation of {stream.Request.Id} was released during its transfer."));
        EndStream(stream, FrameType.Release);
    }

    /// <summary>Forgets a stream and tells the worker (best effort: if the connection is gone, the worker has already released it).</summary>
    internal void EndStream(ClientStream stream, FrameType type)
    {
        if (!_streams.TryRemove(stream.Id, out _)) return;
        if (_failure is not null) return;
        _ = SendQuietlyAsync(type, stream.Id);
    }

    private async Task SendQuietlyAsync(FrameType type, ulong id)
    {
        try { await _connection.WriteEmptyAsync(type, id).ConfigureAwait(false); }
        catch (DisaggProtocolException) { }
        catch (ObjectDisposedException) { }
    }

    /// <summary>Client-side state of one request.</summary>
    internal sealed class ClientStream(ulong id, InferenceRequest request)
    {
        public ulong Id { get; } = id;
        public InferenceRequest Request { get; } = request;
        public TaskCompletionSource<KvReservation> Reserve { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public volatile TaskCompletionSource<(int Blocks, long Bytes)>? Ack;
        public volatile Channel<GeneratedToken>? Tokens;
        public volatile Exception? Failure;
        private int _transferInFlight;

        public bool TransferInFlight => Volatile.Read(ref _transferInFlight) != 0;

        public bool TryBeginTransfer() => Interlocked.CompareExchange(ref _transferInFlight, 1, 0) == 0;

        public void EndTransfer()
        {
            Ack = null;
            Volatile.Write(ref _transferInFlight, 0);
        }

        public void Fail(Exception error)
        {
            Failure = error;
            Reserve.TrySetException(error);
            Ack?.TrySetException(error);
            Tokens?.Writer.TryComplete(error);
        }
    }
}
