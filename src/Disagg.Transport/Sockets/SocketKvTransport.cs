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
/// <see cref="IKvBlockStore.ReadLayer"/> straight into the send pipe's pooled memory (the pipe rents it from the shared
/// array pool and returns it once the bytes are on the socket), so there is no second staging copy. The flush after each
/// frame waits while the send pipe holds more than <see cref="SocketTransportOptions.SendBufferBytes"/>: a slow receiver
/// makes the sender wait instead of buffer. The transfer completes when the worker acknowledges that every block is written,
/// within <see cref="SocketTransportOptions.TransferTimeout"/> (else <see cref="DisaggTimeoutException"/>).</para>
/// <para>Several transfers (for different reservations) may run at once; their frames interleave with token frames.</para>
/// </remarks>
public sealed class SocketKvTransport : IKvTransport
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
        ArgumentNullException.ThrowIfNull(destination);
        var layout = _source.Layout;
        layout.EnsureCompatible(source.Layout);
        layout.EnsureCompatible(destination.Destination.Layout);
        layout.EnsureCompatible(_remote.KvLayout);
        _remote.ThrowIfFailed();
        var stream = _remote.OpenStreamOf(destination);
        if (source.SequenceLength != destination.Destination.SequenceLength)
            throw new ArgumentException($"The source holds {source.SequenceLength} tokens; the reservation is for {destination.Destination.SequenceLength}.", nameof(source));
        if (!stream.TryBeginTransfer())
            throw new InvalidOperationException($"A transfer into the reservation of {destination.Request.Id} is already running.");

        var connection = _remote.Connection;
        long start = Stopwatch.GetTimestamp();
        int first = destination.FirstBlockToFill, used = source.UsedBlockCount;
        long perBlock = layout.BytesPerBlockPerLayer;
        int maxPayload = Math.Min(connection.SendLimit, _targetFrameBytes);
        long perFrameLong = (maxPayload - FrameCodec.BlocksFixedBytes) / (4 + perBlock);
        if (perFrameLong < 1)
        {
            if (FrameCodec.BlocksFixedBytes + 4 + perBlock > connection.SendLimit)
            {
                stream.EndTransfer();
                throw new KvTransferException($"One block of one layer ({perBlock} bytes) does not fit the worker's frame limit ({connection.SendLimit} bytes).");
            }
            perFrameLong = 1;
        }
        int perFrame = (int)Math.Min(perFrameLong, Math.Max(1, used - first));
        var ack = new TaskCompletionSource<(int Blocks, long Bytes)>(TaskCreationOptions.RunContinuationsAsynchronously);
        stream.Ack = ack;
        using var timeout = _remote.StartTimeout(_remote.Options.TransferTimeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var caller = cancellationToken;
        cancellationToken = linked.Token;
        try
        {
            if (stream.Failure is { } failed) throw failed;
            var localIds = source.BlockIds[first..used];
            var remoteIds = destination.Destination.BlockIds[first..used];
            for (int layer = 0; layer < layout.NumLayers; layer++)
            {
                for (int offset = 0; offset < localIds.Length; offset += perFrame)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    if (ack.Task.IsCompleted) break; // failed or released meanwhile: stop sending, report below
                    int n = Math.Min(perFrame, localIds.Length - offset);
                    var state = new BlockFrame(_source, layer, localIds.Slice(offset, n), remoteIds.Slice(offset, n));
                    await connection.WriteFrameAsync(FrameType.Blocks, stream.Id, FrameCodec.BlocksSize(n, perBlock), state,
                        static (s, p) => FrameCodec.WriteBlocks(p, s.Layer, s.RemoteIds.Span, s,
                            static (f, data) => f.Store.ReadLayer(f.Layer, f.LocalIds.Span, data)),
                        cancellationToken).ConfigureAwait(false);
                }
            }
            if (!ack.Task.IsCompleted)
                await connection.WriteEmptyAsync(FrameType.TransferComplete, stream.Id, cancellationToken).ConfigureAwait(false);
            var (blocks, bytes) = await ack.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (blocks != used - first)
                throw new DisaggProtocolException(ProtocolErrorCode.ProtocolViolation,
                    $"The worker acknowledged {blocks} blocks; {used - first} were sent.");
            return new KvTransferResult(blocks, bytes, Stopwatch.GetElapsedTime(start));
        }
        catch (OperationCanceledException ex) when (timeout.IsCancellationRequested && !caller.IsCancellationRequested)
        {
            throw new DisaggTimeoutException($"transferring the KV of request {destination.Request.Id} to the decode worker at {_remote.RemoteEndPoint}",
                _remote.Options.TransferTimeout, ex);
        }
        catch (DisaggProtocolException ex) when (ex.Code == ProtocolErrorCode.ConnectionClosed && _remote.Failure is { } failure && failure != ex)
        {
            throw new DisaggProtocolException(ProtocolErrorCode.ConnectionClosed, $"The transfer failed: {failure.Message}", inner: failure);
        }
        finally
        {
            stream.EndTransfer();
        }
    }

    /// <summary>Nothing to release: the connection belongs to the <see cref="RemoteDecodeEngine"/>.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private readonly record struct BlockFrame(IKvBlockStore Store, int Layer, ReadOnlyMemory<int> LocalIds, ReadOnlyMemory<int> RemoteIds);
}
