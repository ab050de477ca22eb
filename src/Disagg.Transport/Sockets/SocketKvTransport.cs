using System.Diagnostics;
using Disagg.Kv;

namespace Disagg.Transport.Sockets;

/// <summary>
/// Streams a prompt's KV from a local block store (the prefill engine's) into a reservation of a <see cref="RemoteDecodeEngine"/>,
/// over that engine's connection. Create it with <see cref="RemoteDecodeEngine.CreateTransport"/>.
/// </summary>
/// <remarks>
/// <para>Only blocks [<see cref="KvReservation.FirstBlockToFill"/>, used) cross, layer by layer, in frames of about
/// <see cref="SocketTransportOptions.BlockFrameTargetBytes"/> (at least one block each). Each frame's data is read with
/// <see cref="IKvBlockStore.ReadLayer"/> straight into the send pipe's memory (the connection's <see cref="PinnedBufferPool"/>,
/// back in the pool once the bytes are on the socket), so there is no second staging copy; the worker checks and writes each
/// frame where it lies in its receive segments. The flush after each
/// frame waits while the send pipe holds more than <see cref="SocketTransportOptions.SendBufferBytes"/>: a slow receiver
/// makes the sender wait instead of buffer. The transfer completes when the worker acknowledges that every block is written,
/// within <see cref="SocketTransportOptions.TransferTimeout"/> of its first block frame (else <see cref="DisaggTimeoutException"/>;
/// when streaming, that bound includes the rest of the prefill).</para>
/// <para>As an <see cref="IStreamingKvTransport"/> it sends each prefill chunk's full blocks while later chunks compute (the
/// blocks a chunk completes never change again); <see cref="IKvTransferStream.CompleteAsync"/> sends the rest. The worker
/// accepts a block written twice, so a chunk that failed to stream is simply sent again.</para>
/// <para>Several transfers (for different reservations) may run at once; their frames interleave with token frames.</para>
/// </remarks>
public sealed class SocketKvTransport : IStreamingKvTransport
{
    private readonly RemoteDecodeEngine _remote;
    private readonly IKvBlockStore _source;
    private readonly int _targetFrameBytes;

    internal SocketKvTransport(RemoteDecodeEngine remote, IKvBlockStore source, int targetFrameBytes)
    {
        ArgumentNullException.ThrowIfNull(source);
        _remote = remote;
        _source = source;
        _targetFrameBytes = targetFrameBytes;
    }

    /// <inheritdoc />
    public string Name => "socket";

    /// <summary>The local block store read from.</summary>
    public IKvBlockStore Source => _source;

    /// <inheritdoc />
    public async ValueTask<KvTransferResult> TransferAsync(KvHandle source, KvReservation destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        using var stream = new TransferStream(this, destination);
        return await stream.CompleteAsync(source, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public IKvTransferStream BeginTransfer(KvReservation destination) => new TransferStream(this, destination);

    /// <summary>Nothing to release: the connection belongs to the <see cref="RemoteDecodeEngine"/>.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>
    /// One transfer into one reservation. Chunks reported by the prefill engine queue their full blocks on a chain of sends
    /// (one at a time, in order, off the engine's thread); <see cref="CompleteAsync"/> waits for that chain, sends the blocks
    /// not yet sent, then asks the worker to confirm.
    /// </summary>
    private sealed class TransferStream : IKvTransferStream
    {
        private readonly SocketKvTransport _transport;
        private readonly KvReservation _destination;
        private readonly RemoteDecodeEngine.ClientStream _stream;
        private readonly TaskCompletionSource<(int Blocks, long Bytes)> _ack = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly CancellationTokenSource _stop = new();
        private readonly long _start = Stopwatch.GetTimestamp();
        private readonly Lock _gate = new();
        private Task _sending = Task.CompletedTask;
        private CancellationTokenSource? _timeout;      // TransferTimeout, armed by the first send
        private CancellationTokenSource? _sendCancel;   // _stop or the timeout: what streamed sends observe
        private int _sentUpTo;    // blocks [FirstBlockToFill, _sentUpTo) are queued or sent
        private long _bytesSent;
        private int _ended;

        public TransferStream(SocketKvTransport transport, KvReservation destination)
        {
            ArgumentNullException.ThrowIfNull(destination);
            var layout = transport._source.Layout;
            layout.EnsureCompatible(destination.Destination.Layout);
            layout.EnsureCompatible(transport._remote.KvLayout);
            transport._remote.ThrowIfFailed();
            _transport = transport;
            _destination = destination;
            _stream = transport._remote.OpenStreamOf(destination);
            if (!_stream.TryBeginTransfer())
                throw new InvalidOperationException($"A transfer into the reservation of {destination.Request.Id} is already running.");
            _stream.Ack = _ack;
            _sentUpTo = destination.FirstBlockToFill;
        }

        public void OnLayerWritten(KvHandle kv, int layer, int startPosition, int endPosition)
        {
            // A chunk is sent once all its layers are written; the last chunk is left to CompleteAsync (nothing left to overlap).
            if (layer != kv.Layout.NumLayers - 1 || endPosition >= _destination.Destination.SequenceLength) return;
            lock (_gate)
            {
                if (Volatile.Read(ref _ended) != 0 || _stop.IsCancellationRequested) return;
                int full = endPosition / kv.Layout.BlockSize; // blocks before this one are complete and final
                if (full <= _sentUpTo) return;
                var local = kv.BlockIds[_sentUpTo..full];
                var remote = _destination.Destination.BlockIds[_sentUpTo..full];
                _sentUpTo = full;
                var previous = _sending;
                _sending = SendAfterAsync(previous, local, remote, ArmTimeout());
            }
        }

        /// <summary>Starts the transfer's timeout at the first send (call under the gate); the token streamed sends observe.</summary>
        private CancellationToken ArmTimeout()
        {
            if (_timeout is null)
            {
                _timeout = _transport._remote.StartTimeout(_transport._remote.Options.TransferTimeout);
                _sendCancel = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, _timeout.Token);
            }
            return _sendCancel!.Token;
        }

        private async Task SendAfterAsync(Task previous, ReadOnlyMemory<int> local, ReadOnlyMemory<int> remote, CancellationToken cancellationToken)
        {
            await previous.ConfigureAwait(false);
            await Task.Yield(); // off the engine's thread: it goes on with the next chunk
            await SendAsync(local, remote, cancellationToken).ConfigureAwait(false);
        }

        /// <summary>Every layer of the given blocks, in frames of at most the target size.</summary>
        private async Task SendAsync(ReadOnlyMemory<int> localIds, ReadOnlyMemory<int> remoteIds, CancellationToken cancellationToken)
        {
            if (localIds.IsEmpty) return;
            var layout = _transport._source.Layout;
            var connection = _transport._remote.Connection;
            long perBlock = layout.BytesPerBlockPerLayer;
            int maxPayload = Math.Min(connection.SendLimit, _transport._targetFrameBytes);
            long perFrameLong = (maxPayload - FrameCodec.BlocksFixedBytes) / (4 + perBlock);
            if (perFrameLong < 1)
            {
                if (FrameCodec.BlocksFixedBytes + 4 + perBlock > connection.SendLimit)
                    throw new KvTransferException($"One block of one layer ({perBlock} bytes) does not fit the worker's frame limit ({connection.SendLimit} bytes).");
                perFrameLong = 1;
            }
            int perFrame = (int)Math.Min(perFrameLong, localIds.Length);
            for (int layer = 0; layer < layout.NumLayers; layer++)
            {
                for (int offset = 0; offset < localIds.Length; offset += perFrame)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    if (_ack.Task.IsCompleted) return; // failed or released meanwhile: CompleteAsync reports it
                    int n = Math.Min(perFrame, localIds.Length - offset);
                    var state = new BlockFrame(_transport._source, layer, localIds.Slice(offset, n), remoteIds.Slice(offset, n));
                    await connection.WriteFrameAsync(FrameType.Blocks, _stream.Id, FrameCodec.BlocksSize(n, perBlock), state,
                        static (s, p) => FrameCodec.WriteBlocks(p, s.Layer, s.RemoteIds.Span, s,
                            static (f, data) => f.Store.ReadLayer(f.Layer, f.LocalIds.Span, data)),
                        cancellationToken).ConfigureAwait(false);
                    Interlocked.Add(ref _bytesSent, n * perBlock);
                }
            }
        }

        public async ValueTask<KvTransferResult> CompleteAsync(KvHandle source, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(source);
            var layout = _transport._source.Layout;
            layout.EnsureCompatible(source.Layout);
            if (source.SequenceLength != _destination.Destination.SequenceLength)
                throw new ArgumentException($"The source holds {source.SequenceLength} tokens; the reservation is for {_destination.Destination.SequenceLength}.", nameof(source));
            var remote = _transport._remote;
            int from;
            Task streamed;
            CancellationTokenSource timeout;
            lock (_gate)
            {
                from = Math.Min(_sentUpTo, source.UsedBlockCount);
                streamed = _sending;
                ArmTimeout(); // still unarmed when nothing streamed: the bound starts here
                timeout = _timeout!;
            }
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
            var token = linked.Token;
            int first = _destination.FirstBlockToFill, used = source.UsedBlockCount;
            try
            {
                if (_stream.Failure is { } failed) throw failed;
                try
                {
                    await streamed.WaitAsync(token).ConfigureAwait(false);
                }
                catch (Exception) when (!token.IsCancellationRequested && !_ack.Task.IsCompleted)
                {
                    from = first; // a chunk failed to stream: send everything again (rewriting a block is harmless)
                }
                await SendAsync(source.BlockIds[from..used], _destination.Destination.BlockIds[from..used], token).ConfigureAwait(false);
                if (!_ack.Task.IsCompleted)
                    await remote.Connection.WriteEmptyAsync(FrameType.TransferComplete, _stream.Id, token).ConfigureAwait(false);
                var (blocks, bytes) = await _ack.Task.WaitAsync(token).ConfigureAwait(false);
                if (blocks != used - first)
                    throw new DisaggProtocolException(ProtocolErrorCode.ProtocolViolation,
                        $"The worker acknowledged {blocks} blocks; {used - first} were sent.");
                // Blocks: distinct blocks delivered. Bytes: what crossed, blocks sent twice included.
                return new KvTransferResult(blocks, Math.Max(bytes, Interlocked.Read(ref _bytesSent)), Stopwatch.GetElapsedTime(_start));
            }
            catch (OperationCanceledException ex) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new DisaggTimeoutException($"transferring the KV of request {_destination.Request.Id} to the decode worker at {remote.RemoteEndPoint}",
                    remote.Options.TransferTimeout, ex);
            }
            catch (DisaggProtocolException ex) when (ex.Code == ProtocolErrorCode.ConnectionClosed)
            {
                var reason = await remote.ExplainAsync(ex).ConfigureAwait(false); // the worker's error frame, when it sent one
                if (reason == ex) throw;
                throw new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, $"The transfer failed: {reason.InnerException!.Message}", inner: reason.InnerException);
            }
            finally
            {
                End();
            }
        }

        /// <summary>Stops queued sends and frees the reservation's transfer slot (once).</summary>
        private void End()
        {
            if (Interlocked.Exchange(ref _ended, 1) != 0) return;
            _stop.Cancel(); // first, so that sends still queued see a cancelled token, never a disposed one
            lock (_gate) _timeout?.Dispose(); // its timer must not outlive the transfer
            _stream.EndTransfer();
        }

        public void Dispose()
        {
            End();
            // Sends still queued observe the cancellation; their failure is not the caller's concern any more.
            _sending.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        }
    }

    private readonly record struct BlockFrame(IKvBlockStore Store, int Layer, ReadOnlyMemory<int> LocalIds, ReadOnlyMemory<int> RemoteIds);
}
