using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Disagg.Kv;

namespace Disagg.Transport.Sockets;

/// <summary>
/// Serves a decode engine to other processes over a Unix domain socket or TCP: clients (<see cref="RemoteDecodeEngine"/>)
/// reserve KV blocks, stream the prompt's KV into them (<see cref="SocketKvTransport"/>), then decode and receive the tokens.
/// </summary>
/// <remarks>
/// Every connection must authenticate with the shared secret first. Each connection multiplexes many requests ("streams").
/// Received blocks are checked (reservation, size, checksum) and written with <see cref="IKvBlockStore.WriteLayer(int, ReadOnlySpan{int}, in ReadOnlySequence{byte})"/>.
/// Anything a peer sends that breaks the protocol closes that connection with a typed error frame; other connections
/// carry on. When a connection ends for any reason, its reservations are released and its decode streams cancelled.
/// A connection whose peer goes silent is closed after <see cref="SocketTransportOptions.IdleTimeout"/>, and a reservation not
/// put to use within <see cref="SocketTransportOptions.ReservationLease"/> is released (<see cref="ExpiredLeaseCount"/>).
/// </remarks>
public sealed class DecodeWorkerServer : IAsyncDisposable
{
    private readonly IDecodeEngine _engine;
    private readonly IKvBlockStore _store;
    private readonly SocketTransportOptions _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly HashSet<WorkerConnection> _connections = [];
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Socket? _listener;
    private Task _acceptLoop = Task.CompletedTask;
    private string? _socketPath;
    private int _openStreams;
    private long _expiredLeases;
    private volatile bool _stopping;

    /// <summary>Creates a server for <paramref name="engine"/>, whose KV memory <paramref name="blockStore"/> exposes.</summary>
    /// <exception cref="KvLayoutMismatchException">The block store's layout is not the engine's.</exception>
    public DecodeWorkerServer(IDecodeEngine engine, IKvBlockStore blockStore, SocketTransportOptions options)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(blockStore);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        engine.KvLayout.EnsureCompatible(blockStore.Layout);
        _engine = engine;
        _store = blockStore;
        _options = options;
    }

    /// <summary>The endpoint the server listens on (with the actual port when started on TCP port 0). Null before <see cref="Start"/>.</summary>
    public EndPoint? LocalEndPoint { get; private set; }

    /// <summary>Authenticated or authenticating connections now open.</summary>
    public int ConnectionCount
    {
        get { lock (_connections) return _connections.Count; }
    }

    /// <summary>Requests in flight across all connections: reserving, reserved, or decoding.</summary>
    public int OpenStreamCount => Volatile.Read(ref _openStreams);

    /// <summary>Buffers the open connections' pools have allocated so far (a reused buffer does not count).</summary>
    internal int BufferAllocations
    {
        get { lock (_connections) return _connections.Sum(c => c.Connection.BufferAllocations); }
    }

    /// <summary>Reservations released because their client did not start decoding within <see cref="SocketTransportOptions.ReservationLease"/>.</summary>
    public long ExpiredLeaseCount => Interlocked.Read(ref _expiredLeases);

    /// <summary>Raised after a connection has closed and released everything it held. <see cref="WorkerConnectionClosedEventArgs.Error"/>
    /// says why it failed (null for a clean close by the peer or by <see cref="StopAsync"/>). Raised on a pool thread.</summary>
    public event EventHandler<WorkerConnectionClosedEventArgs>? ConnectionClosed;

    /// <summary>Binds <paramref name="endPoint"/> (a <see cref="UnixDomainSocketEndPoint"/> or an <see cref="IPEndPoint"/>) and starts accepting.</summary>
    /// <exception cref="ArgumentException">TLS is set for a Unix socket, or without <see cref="SocketTlsOptions.ServerCertificate"/>.</exception>
    public void Start(EndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        if (_listener is not null) throw new InvalidOperationException("The server is already started.");
        _options.ValidateFor(endPoint, server: true);
        ObjectDisposedException.ThrowIf(_stopping, this);
        var listener = FramedConnection.NewSocket(endPoint);
        try
        {
            listener.Bind(endPoint);
            listener.Listen(128);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
        _listener = listener;
        if (endPoint is UnixDomainSocketEndPoint) _socketPath = endPoint.ToString();
        LocalEndPoint = listener.LocalEndPoint ?? endPoint;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    private async Task AcceptLoopAsync()
    {
        var listener = _listener!;
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) { break; }
            catch (ObjectDisposedException) { break; }
            catch (SocketException) when (_stop.IsCancellationRequested) { break; }
            catch (SocketException) { continue; } // one failed accept (peer reset before accept) must not stop the server
            FramedConnection.Tune(socket);
            var connection = new WorkerConnection(this, new FramedConnection(socket, _options));
            lock (_connections)
            {
                if (_stopping) { socket.Dispose(); continue; }
                _connections.Add(connection);
            }
            connection.Run = Task.Run(connection.RunAsync);
        }
    }

    /// <summary>
    /// Stops accepting connections and new requests (they fail with <see cref="ProtocolErrorCode.EngineStopped"/>), waits for
    /// requests in flight to finish until <paramref name="cancellationToken"/> fires, then closes every connection, which
    /// releases whatever they still hold.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        _stopping = true;
        try { _listener?.Dispose(); } catch (SocketException) { }
        if (OpenStreamCount == 0) _drained.TrySetResult();
        try { await _drained.Task.WaitAsync(cancellationToken).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        _stop.Cancel();
        await _acceptLoop.ConfigureAwait(false);
        WorkerConnection[] open;
        lock (_connections) open = [.. _connections];
        foreach (var c in open) await c.AbortAsync().ConfigureAwait(false);
        await Task.WhenAll(open.Select(c => c.Run)).ConfigureAwait(false);
        if (_socketPath is not null)
        {
            try { File.Delete(_socketPath); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            _socketPath = null;
        }
    }

    /// <summary>Stops at once: in-flight requests are cancelled and every block is released.</summary>
    public async ValueTask DisposeAsync()
    {
        using var now = new CancellationTokenSource();
        now.Cancel();
        await StopAsync(now.Token).ConfigureAwait(false);
    }

    private void StreamOpened() => Interlocked.Increment(ref _openStreams);

    private void StreamClosed()
    {
        if (Interlocked.Decrement(ref _openStreams) == 0 && _stopping) _drained.TrySetResult();
    }

    private void ConnectionEnded(WorkerConnection connection, Exception? error)
    {
        lock (_connections) _connections.Remove(connection);
        try { ConnectionClosed?.Invoke(this, new WorkerConnectionClosedEventArgs(error)); }
        catch (Exception) { /* a handler's failure must not take the server down */ }
    }

    private static ProtocolErrorCode CodeOf(Exception ex) => ex switch
    {
        InvalidRequestException or ArgumentException => ProtocolErrorCode.InvalidRequest,
        EngineOverloadedException => ProtocolErrorCode.EngineOverloaded,
        EngineStoppedException or ObjectDisposedException => ProtocolErrorCode.EngineStopped,
        InvalidOperationException => ProtocolErrorCode.InvalidStreamState,
        DisaggProtocolException p => p.Code,
        _ => ProtocolErrorCode.RemoteFailure,
    };

    private enum StreamState { Reserving, Reserved, Decoding, Closed }

    private sealed class ServerStream(ulong id)
    {
        public readonly ulong Id = id;
        public readonly CancellationTokenSource Cancel = new();
        /// <summary>Held while the stream's blocks are written, and to close the stream: blocks are never written after their release.</summary>
        public readonly Lock WriteGate = new();
        public ITimer? Lease;
        public StreamState State;
        public KvReservation? Reservation;
        public Dictionary<int, int>? Writable; // remote block id -> index in the fill range
        public bool[]? Written;                // [layer * fillCount + index]
        public int WrittenCount;
        public int FillCount;
        public bool IsComplete => Written is not null && WrittenCount == Written.Length;
    }

    /// <summary>One client connection: handshake, then a loop that reads frames in order; reservations and decodes run as tasks.</summary>
    private sealed class WorkerConnection(DecodeWorkerServer server, FramedConnection connection)
    {
        private readonly Dictionary<ulong, ServerStream> _streams = [];
        private readonly List<Task> _work = [];
        private ulong _highestStreamId;
        private volatile bool _aborted;

        public Task Run { get; set; } = Task.CompletedTask;

        public FramedConnection Connection => connection;

        private KvCacheLayout Layout => server._store.Layout;

        public async Task AbortAsync()
        {
            _aborted = true;
            await connection.DisposeAsync().ConfigureAwait(false);
        }

        public async Task RunAsync()
        {
            Exception? error = null;
            try
            {
                using (var handshakeTimeout = new CancellationTokenSource(server._options.HandshakeTimeout, server._options.TimeProvider))
                using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(server._stop.Token, handshakeTimeout.Token))
                {
                    try
                    {
                        if (server._options.Tls is { } tls)
                            await TlsNegotiation.AuthenticateServerAsync(connection, tls, timeout.Token).ConfigureAwait(false);
                        connection.Start();
                        await Handshake.RunServerAsync(connection, server._options, server._engine, timeout.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (!server._stop.IsCancellationRequested)
                    {
                        throw new DisaggProtocolException(ProtocolErrorCode.HandshakeTimeout,
                            $"The peer did not authenticate within {server._options.HandshakeTimeout.TotalSeconds:0.#} s.");
                    }
                }
                connection.StartKeepAlive(server._options);
                await ReadLoopAsync().ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (server._stop.IsCancellationRequested) { }
            catch (DisaggProtocolException ex) when (_aborted && ex.Code == ProtocolErrorCode.ConnectionClosed) { }
            catch (DisaggProtocolException ex)
            {
                error = ex;
            }
            catch (Exception ex)
            {
                // Our own failure (a block store that throws, for instance): tell the peer, keep the process up.
                error = new DisaggProtocolException(ProtocolErrorCode.RemoteFailure, $"The decode worker failed: {ex.Message}", inner: ex);
            }
            await CleanupAsync(error).ConfigureAwait(false);
        }

        private async Task CleanupAsync(Exception? error)
        {
            ServerStream[] open;
            lock (_streams) open = [.. _streams.Values];
            foreach (var s in open) CloseStream(s);
            if (error is DisaggProtocolException { IsRemote: false, Code: not ProtocolErrorCode.ConnectionClosed } p)
                await connection.CloseWithErrorAsync(p.Code, p.Detail).ConfigureAwait(false);
            else
                await connection.DisposeAsync().ConfigureAwait(false);
            connection.ReleaseReaderResources();
            Task[] work;
            lock (_streams) work = [.. _work];
            try { await Task.WhenAll(work).ConfigureAwait(false); }
            catch (Exception) { /* each task reports its own failure to its stream */ }
            server.ConnectionEnded(this, error);
        }

        private async Task ReadLoopAsync()
        {
            while (true)
            {
                var (ok, header, payload) = await connection.ReadFrameAsync(server._stop.Token).ConfigureAwait(false);
                if (!ok) return;
                ulong id = header.StreamId;
                switch (header.Type)
                {
                    case FrameType.Reserve:
                        await OnReserveAsync(id, FrameCodec.ReadReserve(connection.Contiguous(payload))).ConfigureAwait(false);
                        break;
                    case FrameType.Blocks:
                        OnBlocks(id, payload);
                        break;
                    case FrameType.TransferComplete:
                        ExpectEmpty(header);
                        await OnTransferCompleteAsync(id, direct: false).ConfigureAwait(false);
                        break;
                    case FrameType.DirectTransferComplete:
                        ExpectEmpty(header);
                        await OnTransferCompleteAsync(id, direct: true).ConfigureAwait(false);
                        break;
                    case FrameType.DecodeStart:
                        await OnDecodeStartAsync(id, FrameCodec.ReadToken(connection.Contiguous(payload), FrameType.DecodeStart)).ConfigureAwait(false);
                        break;
                    case FrameType.Ping:
                        FrameCodec.CheckPing(header);
                        break;
                    case FrameType.Cancel:
                    case FrameType.Release:
                        ExpectEmpty(header);
                        if (Find(id) is { } s) CloseStream(s);
                        break;
                    case FrameType.Error:
                        var (code, message) = FrameCodec.ReadError(connection.Contiguous(payload));
                        if (id == 0) throw new DisaggProtocolException(code, message, isRemote: true);
                        if (Find(id) is { } failed) CloseStream(failed);
                        break;
                    default:
                        throw FrameCodec.Violation(ProtocolErrorCode.UnexpectedFrameType, $"A client may not send {header.Type} frames after the handshake.");
                }
            }
        }

        private static void ExpectEmpty(FrameHeader header)
        {
            if (header.PayloadLength != 0)
                throw FrameCodec.Violation(ProtocolErrorCode.MalformedPayload, $"A {header.Type} frame has no payload.");
        }

        /// <summary>The open stream <paramref name="id"/>; null when it was opened and has since closed (frames may legitimately
        /// still be in flight for it); a violation when it was never opened.</summary>
        private ServerStream? Find(ulong id)
        {
            lock (_streams)
            {
                if (_streams.TryGetValue(id, out var s)) return s;
                if (id == 0 || id > _highestStreamId)
                    throw FrameCodec.Violation(ProtocolErrorCode.UnknownStream, $"Stream {id} was never opened.");
                return null;
            }
        }

        private async ValueTask OnReserveAsync(ulong id, InferenceRequest request)
        {
            var stream = new ServerStream(id);
            lock (_streams)
            {
                if (id <= _highestStreamId)
                    throw FrameCodec.Violation(ProtocolErrorCode.InvalidStreamState, $"Stream id {id} is not above every id used before ({_highestStreamId}).");
                _highestStreamId = id;
                if (server._stopping)
                {
                    stream = null;
                }
                else
                {
                    _streams.Add(id, stream);
                    server.StreamOpened();
                }
            }
            if (stream is null)
            {
                await connection.WriteErrorAsync(id, ProtocolErrorCode.EngineStopped, "The decode worker is stopping.").ConfigureAwait(false);
                return;
            }
            Track(ReserveAsync(stream, request));
        }

        private void Track(Task task)
        {
            lock (_streams)
            {
                _work.RemoveAll(t => t.IsCompleted);
                _work.Add(task);
            }
        }

        private async Task ReserveAsync(ServerStream stream, InferenceRequest request)
        {
            try
            {
                var reservation = await server._engine.ReserveAsync(request, stream.Cancel.Token).ConfigureAwait(false);
                var layout = Layout;
                lock (_streams)
                {
                    if (stream.State != StreamState.Reserving)
                    {
                        reservation.Dispose();
                        return;
                    }
                    var ids = reservation.Destination.BlockIds.Span;
                    int first = reservation.FirstBlockToFill, used = reservation.Destination.UsedBlockCount;
                    stream.FillCount = used - first;
                    stream.Writable = new Dictionary<int, int>(stream.FillCount);
                    for (int i = first; i < used; i++) stream.Writable[ids[i]] = i - first;
                    stream.Written = new bool[stream.FillCount * layout.NumLayers];
                    stream.Reservation = reservation;
                    stream.State = StreamState.Reserved;
                    if (server._options.ReservationLease != Timeout.InfiniteTimeSpan)
                        stream.Lease = server._options.TimeProvider.CreateTimer(static s =>
                        {
                            var (self, st) = ((WorkerConnection, ServerStream))s!;
                            _ = self.ExpireLeaseAsync(st);
                        }, (this, stream), server._options.ReservationLease, Timeout.InfiniteTimeSpan);
                }
                var d = reservation.Destination;
                await connection.WriteFrameAsync(FrameType.Reserved, stream.Id, FrameCodec.ReservedSize(d.BlockIds.Length), reservation,
                    static (r, p) => FrameCodec.WriteReserved(p, r.CachedTokens, r.Destination.SequenceLength, r.Destination.BlockIds.Span),
                    stream.Cancel.Token).ConfigureAwait(false);
                await SendLoadAsync().ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stream.Cancel.IsCancellationRequested) { }
            catch (DisaggProtocolException ex) when (ex.Code == ProtocolErrorCode.ConnectionClosed) { CloseStream(stream); }
            catch (Exception ex)
            {
                await FailStreamAsync(stream, ex).ConfigureAwait(false);
            }
        }

        /// <summary>A block frame, read where it lies in the receive segments: the checksum and the store's copy each make one
        /// pass over them, and nothing joins them first.</summary>
        private void OnBlocks(ulong id, in ReadOnlySequence<byte> payload)
        {
            var stream = Find(id);
            var (layer, count) = FrameCodec.ReadBlocks(payload, Layout); // shape and checksum, before anything is written
            if (stream is null) return; // released while these blocks were in flight
            var rentedIds = ArrayPool<byte>.Shared.Rent(4 * count);
            var rented = ArrayPool<int>.Shared.Rent(count);
            try
            {
                var idBytes = rentedIds.AsSpan(0, 4 * count);
                payload.Slice(8, 4 * count).CopyTo(idBytes);
                WriteBlocks(stream, id, layer, idBytes, FrameCodec.BlockData(payload, count), rented.AsSpan(0, count));
            }
            finally
            {
                ArrayPool<int>.Shared.Return(rented);
                ArrayPool<byte>.Shared.Return(rentedIds);
            }
        }

        private void WriteBlocks(ServerStream stream, ulong id, int layer, ReadOnlySpan<byte> idBytes, in ReadOnlySequence<byte> data, Span<int> ids)
        {
            lock (stream.WriteGate) WriteBlocksLocked(stream, id, layer, idBytes, data, ids);
        }

        private void WriteBlocksLocked(ServerStream stream, ulong id, int layer, ReadOnlySpan<byte> idBytes, in ReadOnlySequence<byte> data, Span<int> ids)
        {
            int count = ids.Length;
            lock (_streams)
            {
                if (stream.State == StreamState.Closed) return; // released meanwhile (its lease expired): these blocks are not ours any more
                if (stream.State != StreamState.Reserved)
                    throw FrameCodec.Violation(ProtocolErrorCode.InvalidStreamState,
                        $"Blocks for stream {id} arrived while it is {stream.State}: blocks may only be written between Reserved and DecodeStart.");
                for (int i = 0; i < count; i++)
                {
                    int block = FrameCodec.I32(idBytes, 4 * i);
                    if (!stream.Writable!.ContainsKey(block))
                        throw FrameCodec.Violation(ProtocolErrorCode.BlockNotInReservation,
                            $"Block {block} is not among the blocks stream {id} may write.");
                    ids[i] = block;
                }
            }
            // The read loop is the only writer of this stream's blocks, and it alone moves the stream to Decoding; closing the
            // stream waits for the write gate, so the blocks cannot be released (and reused) while they are written here.
            server._store.WriteLayer(layer, ids, data);
            lock (_streams)
            {
                for (int i = 0; i < count; i++)
                {
                    int slot = layer * stream.FillCount + stream.Writable![ids[i]];
                    if (!stream.Written![slot]) { stream.Written[slot] = true; stream.WrittenCount++; }
                }
            }
        }

        private async ValueTask OnTransferCompleteAsync(ulong id, bool direct)
        {
            if (direct && !server._options.AcceptDirectTransfers && server._options.DirectTransferDescriptor is null)
                throw FrameCodec.Violation(ProtocolErrorCode.UnexpectedFrameType, "This worker does not accept direct transfers.");
            var stream = Find(id);
            if (stream is null)
            {
                await connection.WriteErrorAsync(id, ProtocolErrorCode.InvalidStreamState, "The reservation was released.").ConfigureAwait(false);
                return;
            }
            string? problem = null;
            int blocks = 0;
            lock (_streams)
            {
                if (stream.State != StreamState.Reserved) problem = $"Transfer completed while the stream is {stream.State}.";
                else if (direct) // the client wrote every block itself, into our device memory
                {
                    Array.Fill(stream.Written!, true);
                    stream.WrittenCount = stream.Written!.Length;
                    blocks = stream.FillCount;
                }
                else if (!stream.IsComplete) problem = $"Only {stream.WrittenCount} of {stream.Written!.Length} block-layers were written.";
                else blocks = stream.FillCount;
            }
            if (problem is not null)
            {
                await connection.WriteErrorAsync(id, ProtocolErrorCode.TransferIncomplete, problem).ConfigureAwait(false);
                return;
            }
            long bytes = blocks * Layout.BytesPerBlock;
            await connection.WriteFrameAsync(FrameType.TransferAck, id, FrameCodec.TransferAckSize, (blocks, bytes),
                static (s, p) => FrameCodec.WriteTransferAck(p, s.blocks, s.bytes)).ConfigureAwait(false);
        }

        private async ValueTask OnDecodeStartAsync(ulong id, GeneratedToken firstToken)
        {
            var stream = Find(id);
            if (stream is null) return; // cancelled meanwhile
            string? problem = null;
            lock (_streams)
            {
                if (stream.State != StreamState.Reserved) problem = $"Decode started while the stream is {stream.State}.";
                else if (!stream.IsComplete) problem = $"Decode started after {stream.WrittenCount} of {stream.Written!.Length} block-layers were written.";
                else stream.State = StreamState.Decoding;
            }
            if (problem is null) stream.Lease?.Dispose(); // put to use in time: the engine owns the blocks now
            if (problem is not null)
            {
                await FailStreamAsync(stream, new DisaggProtocolException(ProtocolErrorCode.TransferIncomplete, problem)).ConfigureAwait(false);
                return;
            }
            Track(DecodeAsync(stream, firstToken));
        }

        private async Task DecodeAsync(ServerStream stream, GeneratedToken firstToken)
        {
            await Task.Yield(); // off the read loop
            bool finished = false;
            try
            {
                await foreach (var token in server._engine.DecodeAsync(stream.Reservation!, firstToken, stream.Cancel.Token).ConfigureAwait(false))
                {
                    await connection.WriteFrameAsync(FrameType.Token, stream.Id, FrameCodec.TokenPayloadSize, token,
                        static (t, p) => FrameCodec.WriteToken(p, t), stream.Cancel.Token).ConfigureAwait(false);
                    // No break on the last token: the engine releases some sequences' blocks only when its stream runs to the end.
                    if (token.IsLast) finished = true;
                }
                if (!finished) throw new DisaggException("The decode engine ended the stream without a finish reason.");
                CloseStream(stream);
                await SendLoadAsync().ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stream.Cancel.IsCancellationRequested) { }
            catch (DisaggProtocolException ex) when (ex.Code == ProtocolErrorCode.ConnectionClosed) { CloseStream(stream); }
            catch (Exception ex)
            {
                await FailStreamAsync(stream, ex).ConfigureAwait(false);
            }
        }

        private async Task FailStreamAsync(ServerStream stream, Exception error)
        {
            CloseStream(stream);
            try
            {
                await connection.WriteErrorAsync(stream.Id, CodeOf(error), error.Message).ConfigureAwait(false);
            }
            catch (DisaggProtocolException) { /* connection gone: nothing to tell */ }
        }

        private async Task SendLoadAsync()
        {
            try
            {
                await connection.WriteFrameAsync(FrameType.Load, 0, FrameCodec.LoadSize, server._engine,
                    static (e, p) => FrameCodec.WriteLoad(p, e.GetLoad())).ConfigureAwait(false);
            }
            catch (DisaggProtocolException) { }
        }

        /// <summary>A reservation nobody put to use in time: release it and tell the client, which sees a timeout.</summary>
        private async Task ExpireLeaseAsync(ServerStream stream)
        {
            lock (_streams)
                if (stream.State != StreamState.Reserved) return;
            if (!CloseStream(stream, onlyIfReserved: true)) return;
            Interlocked.Increment(ref server._expiredLeases);
            try
            {
                await connection.WriteErrorAsync(stream.Id, ProtocolErrorCode.LeaseExpired,
                    $"The reservation was not put to use within {server._options.ReservationLease.TotalSeconds:0.###} s; its blocks were released.").ConfigureAwait(false);
            }
            catch (DisaggProtocolException) { /* connection gone: nothing to tell */ }
        }

        /// <summary>Ends a stream: cancels its reserve or decode and returns an unclaimed reservation's blocks. Idempotent.
        /// Returns false when it was already closed (or, with <paramref name="onlyIfReserved"/>, is no longer just reserved).</summary>
        private bool CloseStream(ServerStream stream, bool onlyIfReserved = false)
        {
            KvReservation? reservation;
            lock (stream.WriteGate) // a block write in progress finishes first
            lock (_streams)
            {
                if (stream.State == StreamState.Closed || (onlyIfReserved && stream.State != StreamState.Reserved)) return false;
                stream.State = StreamState.Closed;
                _streams.Remove(stream.Id);
                reservation = stream.Reservation;
            }
            stream.Lease?.Dispose();
            stream.Cancel.Cancel();
            reservation?.Dispose(); // no-op once the engine has claimed it; the cancellation above frees those blocks
            server.StreamClosed();
            return true;
        }
    }
}

/// <summary>Why a <see cref="DecodeWorkerServer"/> connection closed.</summary>
/// <param name="error">Null for a clean close; otherwise the failure (usually a <see cref="DisaggProtocolException"/>).</param>
public sealed class WorkerConnectionClosedEventArgs(Exception? error) : EventArgs
{
    /// <summary>Null for a clean close; otherwise the failure (usually a <see cref="DisaggProtocolException"/>).</summary>
    public Exception? Error { get; } = error;
}
