using System.Buffers;
using System.Diagnostics;
using Disagg.Kv;

namespace Disagg.Transport.InProcess;

/// <summary>
/// Moves KV between two engines in one process: device to device when both block stores support it
/// (<see cref="IDeviceKvBlockStore"/>, e.g. cuda:0 to cuda:1), otherwise staged through a pooled host buffer.
/// Only blocks the decode side lacks cross (<see cref="KvReservation.FirstBlockToFill"/>). As an
/// <see cref="IStreamingKvTransport"/> it copies each prefill chunk's layers as soon as the prefill engine reports them.
/// Thread-safe: one instance serves any number of concurrent transfers between its two stores.
/// </summary>
public sealed class InProcessKvTransport : IStreamingKvTransport
{
    private readonly IKvBlockStore _source;
    private readonly IKvBlockStore _destination;
    private readonly IDeviceKvBlockStore? _direct;

    /// <summary>Creates a transport from the prefill engine's <paramref name="source"/> store to the decode engine's <paramref name="destination"/>.</summary>
    /// <exception cref="KvLayoutMismatchException">The layouts differ.</exception>
    public InProcessKvTransport(IKvBlockStore source, IKvBlockStore destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        source.Layout.EnsureCompatible(destination.Layout);
        _source = source;
        _destination = destination;
        _direct = source is IDeviceKvBlockStore d && d.CanCopyTo(destination) ? d : null;
    }

    /// <inheritdoc />
    public string Name => _direct is null ? "inproc-staged" : "inproc";

    /// <summary>True when blocks go device to device rather than through host memory.</summary>
    public bool IsDeviceToDevice => _direct is not null;

    /// <inheritdoc />
    public ValueTask<KvTransferResult> TransferAsync(KvHandle source, KvReservation destination, CancellationToken cancellationToken = default)
    {
        using var stream = new TransferStream(this, destination);
        return stream.CompleteAsync(source, cancellationToken);
    }

    /// <inheritdoc />
    public IKvTransferStream BeginTransfer(KvReservation destination) => new TransferStream(this, destination);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private void CopyAllLayers(ReadOnlySpan<int> from, ReadOnlySpan<int> to)
    {
        if (from.IsEmpty) return;
        if (_direct is not null)
        {
            _direct.CopyBlocksTo(_destination, from, to);
            return;
        }
        for (int layer = 0; layer < _source.Layout.NumLayers; layer++) CopyStaged(layer, from, to);
    }

    private void CopyStaged(int layer, ReadOnlySpan<int> from, ReadOnlySpan<int> to)
    {
        int bytes = checked((int)(from.Length * _source.Layout.BytesPerBlockPerLayer));
        byte[] staging = ArrayPool<byte>.Shared.Rent(bytes);
        try
        {
            _source.ReadLayer(layer, from, staging.AsSpan(0, bytes));
            _destination.WriteLayer(layer, to, staging.AsSpan(0, bytes));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(staging);
        }
    }

    /// <summary>
    /// One transfer. It remembers which blocks were copied after their last write: a prefill writes chunks in position
    /// order, so those are the blocks from the first streamed chunk's start up to the last streamed chunk's end.
    /// </summary>
    private sealed class TransferStream(InProcessKvTransport transport, KvReservation destination) : IKvTransferStream
    {
        private readonly long _started = Stopwatch.GetTimestamp();
        private int _firstStreamedBlock = int.MaxValue, _streamedUpTo;
        private readonly Lock _gate = new();
        private long _blocksCopied;
        private bool _failed, _disposed;

        public void OnLayerWritten(KvHandle kv, int layer, int startPosition, int endPosition)
        {
            lock (_gate)
            {
                if (_failed || _disposed) return;
                // The last chunk is left to CompleteAsync: copying it here would delay the first token, and nothing is left to overlap with.
                if (endPosition >= destination.Destination.SequenceLength) return;
                // A store whose copies run on the device behind the compute gets each layer as soon as it is issued, so the
                // copy overlaps the later layers; otherwise all layers of the chunk go together when the last one is reported.
                bool perLayer = transport._direct is { CopiesAsynchronously: true };
                bool lastLayer = layer == transport._source.Layout.NumLayers - 1;
                if (!perLayer && !lastLayer) return;
                try
                {
                    int blockSize = kv.Layout.BlockSize;
                    int first = Math.Max(destination.FirstBlockToFill, startPosition / blockSize);
                    int end = (endPosition + blockSize - 1) / blockSize;
                    if (end > first)
                    {
                        var from = kv.BlockIds.Span[first..end];
                        var to = destination.Destination.BlockIds.Span[first..end];
                        if (perLayer) transport._direct!.CopyLayerTo(transport._destination, layer, from, to);
                        else transport.CopyAllLayers(from, to);
                        if (!lastLayer) return; // the chunk counts as streamed once its last layer is on its way
                        _blocksCopied += end - first;
                    }
                    _firstStreamedBlock = Math.Min(_firstStreamedBlock, first);
                    _streamedUpTo = Math.Max(_streamedUpTo, endPosition);
                }
                catch (Exception)
                {
                    _failed = true; // CompleteAsync copies everything again and reports the error if it persists
                }
            }
        }

        public ValueTask<KvTransferResult> CompleteAsync(KvHandle source, CancellationToken cancellationToken = default)
        {
            var layout = transport._source.Layout;
            layout.EnsureCompatible(source.Layout);
            int first = destination.FirstBlockToFill, used = source.UsedBlockCount;
            if (destination.Destination.BlockIds.Length < used)
                throw new KvTransferException($"The reservation of {destination.Request.Id} has {destination.Destination.BlockIds.Length} blocks; the prompt's KV needs {used}.");
            var from = source.BlockIds.Span;
            var to = destination.Destination.BlockIds.Span;
            lock (_gate)
            {
                try
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    // Blocks [doneFrom, doneTo) were copied after their last write; copy the rest.
                    int doneFrom = _failed ? used : Math.Min(_firstStreamedBlock, used);
                    int doneTo = _failed ? used : _streamedUpTo >= source.SequenceLength ? used : Math.Min(_streamedUpTo / layout.BlockSize, used);
                    if (doneTo < doneFrom) doneTo = doneFrom;
                    int headEnd = Math.Max(first, doneFrom);
                    int tailStart = Math.Max(first, doneTo);
                    transport.CopyAllLayers(from[first..headEnd], to[first..headEnd]);
                    transport.CopyAllLayers(from[tailStart..used], to[tailStart..used]);
                    _blocksCopied += (headEnd - first) + (used - tailStart);
                    // Both devices: the gather runs on the source's stream, the scatter on the destination's, and the
                    // destination may belong to another process (CUDA IPC) that must see the data once we return.
                    transport._direct?.Synchronize();
                    (transport._destination as IDeviceKvBlockStore)?.Synchronize();
                }
                catch (Exception e) when (e is not (OperationCanceledException or KvTransferException or KvLayoutMismatchException))
                {
                    throw new KvTransferException($"Copying the KV of {destination.Request.Id} failed: {e.Message}", e);
                }
                // Blocks: distinct blocks delivered. Bytes: what really moved, including blocks re-copied because a chunk ended inside them.
                long bytes = _blocksCopied * layout.BytesPerBlock;
                return ValueTask.FromResult(new KvTransferResult(Math.Max(0, used - first), bytes, Stopwatch.GetElapsedTime(_started)));
            }
        }

        public void Dispose()
        {
            lock (_gate)
            {
                if (_disposed) return;
                _disposed = true;
                // Copies may still be in flight on a device stream (a cancelled transfer never reached CompleteAsync's
                // wait): let them land before the caller frees the blocks on either side, or a reused block could be
                // overwritten by a late copy.
                if (_blocksCopied > 0) transport._direct?.Synchronize();
            }
        }
    }
}
