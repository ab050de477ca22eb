using System.Diagnostics;
using Disagg.Kv;

namespace Disagg.Transport.Sockets;

/// <summary>
/// GPU-direct transfer to a decode worker in another process on this host: the blocks are copied by a local transport
/// (typically an in-process transport whose destination is the worker's own KV memory, opened through CUDA IPC), and only
/// the "done" crosses the socket. The worker must allow it (<see cref="SocketTransportOptions.AcceptDirectTransfers"/>).
/// </summary>
public sealed class DirectKvTransport : IKvTransport
{
    private readonly RemoteDecodeEngine _remote;
    private readonly IKvTransport _copy;

    /// <summary>Creates the transport: <paramref name="copy"/> writes into the memory of <paramref name="remote"/>'s worker.</summary>
    public DirectKvTransport(RemoteDecodeEngine remote, IKvTransport copy)
    {
        ArgumentNullException.ThrowIfNull(remote);
        ArgumentNullException.ThrowIfNull(copy);
        _remote = remote;
        _copy = copy;
    }

    /// <inheritdoc />
    public string Name => $"direct+{_copy.Name}";

    /// <inheritdoc />
    public async ValueTask<KvTransferResult> TransferAsync(KvHandle source, KvReservation destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        _remote.ThrowIfFailed();
        var stream = _remote.OpenStreamOf(destination);
        if (!stream.TryBeginTransfer())
            throw new InvalidOperationException($"A transfer into the reservation of {destination.Request.Id} is already running.");
        long start = Stopwatch.GetTimestamp();
        var ack = new TaskCompletionSource<(int Blocks, long Bytes)>(TaskCreationOptions.RunContinuationsAsynchronously);
        stream.Ack = ack;
        using var timeout = _remote.StartTimeout(_remote.Options.TransferTimeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            if (stream.Failure is { } failed) throw failed;
            var copied = await _copy.TransferAsync(source, destination, linked.Token).ConfigureAwait(false); // synchronised when it returns
            await _remote.Connection.WriteEmptyAsync(FrameType.DirectTransferComplete, stream.Id, linked.Token).ConfigureAwait(false);
            var (blocks, _) = await ack.Task.WaitAsync(linked.Token).ConfigureAwait(false);
            if (blocks != copied.Blocks)
                throw new DisaggProtocolException(ProtocolErrorCode.ProtocolViolation, $"The worker acknowledged {blocks} blocks; {copied.Blocks} were written.");
            return new KvTransferResult(copied.Blocks, copied.Bytes, Stopwatch.GetElapsedTime(start));
        }
        catch (OperationCanceledException ex) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new DisaggTimeoutException($"the direct transfer of request {destination.Request.Id}'s KV to the decode worker at {_remote.RemoteEndPoint}",
                _remote.Options.TransferTimeout, ex);
        }
        finally
        {
            stream.EndTransfer();
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _copy.DisposeAsync();
}
