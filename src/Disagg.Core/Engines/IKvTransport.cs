using Disagg.Kv;

namespace Disagg;

/// <summary>
/// Moves a prompt's KV from a prefill engine's blocks into blocks a decode engine reserved: device to device in one process,
/// over a socket between processes, or GPU-direct. Implementations live in Disagg.Transport and Disagg.Cuda.
/// </summary>
public interface IKvTransport : IAsyncDisposable
{
    /// <summary>A short name for logs and metrics ("inproc", "tcp", ...).</summary>
    string Name { get; }

    /// <summary>
    /// Copies blocks [<see cref="KvReservation.FirstBlockToFill"/>, used blocks) of <paramref name="source"/> into the matching
    /// blocks of <paramref name="destination"/>: only what the decode side lacks crosses. Completes when the data is in place.
    /// </summary>
    /// <exception cref="KvLayoutMismatchException">The two pools' layouts differ.</exception>
    /// <exception cref="KvTransferException">The transfer failed; the destination blocks must not be used.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the caller still owns (and must dispose) both ends.</exception>
    ValueTask<KvTransferResult> TransferAsync(KvHandle source, KvReservation destination, CancellationToken cancellationToken = default);
}

/// <summary>What a transfer moved and how long it took.</summary>
/// <param name="Blocks">Blocks copied.</param>
/// <param name="Bytes">Payload bytes copied.</param>
/// <param name="Elapsed">Wall time of the transfer.</param>
public readonly record struct KvTransferResult(int Blocks, long Bytes, TimeSpan Elapsed)
{
    /// <summary>Achieved payload bandwidth in bytes per second (0 for an empty transfer).</summary>
    public double BytesPerSecond => Elapsed > TimeSpan.Zero ? Bytes / Elapsed.TotalSeconds : 0;
}

/// <summary>
/// A transport that can start moving a prompt's KV while the prefill engine is still computing it: the prefill engine reports
/// each layer as written (<see cref="IKvLayerListener"/>) and the stream copies it right away, so that by the time the first
/// token is ready only the tail is left.
/// </summary>
public interface IStreamingKvTransport : IKvTransport
{
    /// <summary>Opens a stream into <paramref name="destination"/>. Pass it to <see cref="IPrefillEngine.PrefillAsync"/> as the layer listener.</summary>
    IKvTransferStream BeginTransfer(KvReservation destination);
}

/// <summary>One streaming transfer: a layer listener for the prefill engine, completed once the prefill has finished.</summary>
public interface IKvTransferStream : IKvLayerListener, IDisposable
{
    /// <summary>
    /// Copies whatever the stream has not yet copied of <paramref name="source"/> (the finished prefill's KV) and waits until
    /// all of it is in place. The result counts every block that crossed during the whole stream.
    /// </summary>
    ValueTask<KvTransferResult> CompleteAsync(KvHandle source, CancellationToken cancellationToken = default);
}
