using Disagg.Kv;

namespace Disagg.Tests.Reliability;

/// <summary>
/// Wraps a transport and, per request, drops or stalls its transfer (see <see cref="TransferFault"/>); <see cref="Starting"/>
/// runs as each transfer starts, so a test can cancel a request exactly mid-transfer. Always a streaming transport: a
/// non-streaming inner transport is driven by <see cref="IKvTransport.TransferAsync"/> when the stream completes.
/// </summary>
internal sealed class FaultInjectingKvTransport(IKvTransport inner, Func<InferenceRequest, TransferFault> plan) : IStreamingKvTransport
{
    private long _drops, _stalls;

    public string Name => $"faulty+{inner.Name}";

    /// <summary>Runs as a transfer starts (before any fault), with its request.</summary>
    public Action<InferenceRequest>? Starting { get; set; }

    /// <summary>Runs once a stalled transfer is waiting (for a test to advance a manual clock).</summary>
    public Action<InferenceRequest>? Stalled { get; set; }

    public long Drops => Interlocked.Read(ref _drops);

    public long Stalls => Interlocked.Read(ref _stalls);

    public IKvTransferStream BeginTransfer(KvReservation destination) =>
        new Stream(this, (inner as IStreamingKvTransport)?.BeginTransfer(destination), destination);

    public async ValueTask<KvTransferResult> TransferAsync(KvHandle source, KvReservation destination, CancellationToken cancellationToken = default)
    {
        using var stream = BeginTransfer(destination);
        return await stream.CompleteAsync(source, cancellationToken);
    }

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private async ValueTask<KvTransferResult> CompleteAsync(IKvTransferStream? stream, KvHandle source, KvReservation destination, CancellationToken cancellationToken)
    {
        Starting?.Invoke(destination.Request);
        cancellationToken.ThrowIfCancellationRequested();
        switch (plan(destination.Request))
        {
            case TransferFault.Drop:
                Interlocked.Increment(ref _drops);
                // Part of the KV lands (the destination now holds a half-written prompt), then the link goes.
                var half = new KvHandle(source.RequestId, source.Layout, source.BlockIds, source.SequenceLength / 2);
                if (stream is null && half.UsedBlockCount > destination.FirstBlockToFill) await inner.TransferAsync(half, destination, cancellationToken);
                throw new KvTransferException($"Injected fault: the link dropped in the middle of the transfer of {destination.Request.Id}.");
            case TransferFault.Stall:
                Interlocked.Increment(ref _stalls);
                Stalled?.Invoke(destination.Request);
                await Task.Delay(Timeout.Infinite, cancellationToken); // only a cancellation (caller, lease, timeout) ends it
                throw new InvalidOperationException("Unreachable.");
            default:
                return stream is not null
                    ? await stream.CompleteAsync(source, cancellationToken)
                    : await inner.TransferAsync(source, destination, cancellationToken);
        }
    }

    private sealed class Stream(FaultInjectingKvTransport owner, IKvTransferStream? inner, KvReservation destination) : IKvTransferStream
    {
        public void OnLayerWritten(KvHandle kv, int layer, int startPosition, int endPosition) =>
            inner?.OnLayerWritten(kv, layer, startPosition, endPosition);

        public ValueTask<KvTransferResult> CompleteAsync(KvHandle source, CancellationToken cancellationToken = default) =>
            owner.CompleteAsync(inner, source, destination, cancellationToken);

        public void Dispose() => inner?.Dispose();
    }
}
