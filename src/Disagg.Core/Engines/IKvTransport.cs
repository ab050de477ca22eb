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
