using Disagg.Scheduling;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Cuda.Model;

/// <summary>One chunk's attention inputs. Decode chunks batched together have no slots of their own.</summary>
/// <param name="TokenOffset">Its first row in the step.</param>
/// <param name="Count">Its query tokens.</param>
/// <param name="Start">The position of its first query.</param>
/// <param name="ContextLength">Positions [0, ContextLength) its queries read: Start + Count.</param>
/// <param name="ContextSlots">Those positions' cache slots on the device; null for decode rows batched together.</param>
/// <param name="SequenceLengths">int32 [0, Count, 0, ContextLength] on the device: the cumulative query and key lengths that
/// flash prompt attention takes, made with the step's other index tensors (a host-to-device copy per layer would wait for
/// the device each time).</param>
internal readonly record struct StepChunk(int TokenOffset, int Count, int Start, int ContextLength, Tensor? ContextSlots, Tensor? SequenceLengths = null)
{
    public bool IsBatchedDecode => ContextSlots is null;
}

/// <summary>The decode chunks of a step, padded to the longest: one attention call for all of them.</summary>
/// <param name="Rows">Their token rows in the step.</param>
/// <param name="Slots">[n * MaxLength] cache slots, padded with slot 0 (masked out).</param>
/// <param name="Mask">[n, 1, 1, MaxLength]: true where a query may attend.</param>
/// <param name="MaxLength">The longest context among them.</param>
internal sealed record DecodeBatch(Tensor Rows, Tensor Slots, Tensor Mask, long MaxLength);

/// <summary>
/// The step's index tensors, built on the host from the batch and moved to the device in one copy: every one of them is a
/// view of one int64 upload (and, where the native kernels or flash attention read int32, of one int32 conversion of its
/// tail on the device). A copy from pageable host memory waits for the device's stream, so one copy per tensor would wait
/// six or more times per step (~30-60 µs each on an H100 host), and the first wait would hold the step's host work until
/// the step before it had finished on the GPU.
/// </summary>
internal sealed class StepTensors
{
    public required Tensor TokenIds { get; init; }

    /// <summary>Each row's position: int64 for TorchSharp's ops, int32 for the native kernels (see <see cref="Build"/>).</summary>
    public required Tensor Positions { get; init; }

    /// <summary>Each row's cache slot, in the element type of <see cref="Positions"/>.</summary>
    public required Tensor Slots { get; init; }

    public required Tensor SampleRows { get; init; }
    public required StepChunk[] Chunks { get; init; }
    public DecodeBatch? Decode { get; init; }

    /// <summary>Builds the step's tensors: <see cref="Positions"/> and <see cref="Slots"/> as int32 when
    /// <paramref name="int32Indices"/> (the native kernels' type), and each prompt chunk's
    /// <see cref="StepChunk.SequenceLengths"/> only when <paramref name="sequenceLengths"/> (flash prompt attention reads them).</summary>
    public static StepTensors Build(ReadOnlySpan<ScheduledChunk> all, int blockSize, int? slidingWindow, Device device,
        bool int32Indices = false, bool sequenceLengths = false)
    {
        int total = 0, sampling = 0, decodeCount = 0, maxDecodeContext = 0;
        foreach (var c in all)
        {
            total += c.Count;
            if (c.SamplesToken) sampling++;
            if (c.Count == 1)
            {
                decodeCount++;
                maxDecodeContext = Math.Max(maxDecodeContext, c.End);
            }
        }
        bool batchDecode = decodeCount > 1;
        long contexts = 0;
        int lengthChunks = 0;
        foreach (var c in all)
        {
            if (batchDecode && c.Count == 1) continue;
            contexts += c.End;
            if (sequenceLengths && c.Count > 1) lengthChunks++;
        }
        long decodeCells = batchDecode ? (long)decodeCount * maxDecodeContext : 0;

        // The upload's layout: what is only read as int64 first, then what the native path reads as int32.
        long sampleAt = total, contextAt = sampleAt + sampling, decodeRowsAt = contextAt + contexts;
        long decodeSlotsAt = decodeRowsAt + (batchDecode ? decodeCount : 0), decodeMaskAt = decodeSlotsAt + decodeCells;
        long positionsAt = decodeMaskAt + decodeCells, slotsAt = positionsAt + total, lengthsAt = slotsAt + total;
        var host = new long[lengthsAt + 4L * lengthChunks];

        var chunks = new StepChunk[all.Length];
        var placed = new (int Offset, long ContextAt, long LengthsAt)[all.Length]; // -1: none of its own
        int t = 0, s = 0, d = 0;
        long nextContext = contextAt, nextLengths = lengthsAt;
        for (int c = 0; c < all.Length; c++)
        {
            var chunk = all[c];
            var seq = chunk.Sequence;
            var tokens = seq.Tokens;
            var table = seq.BlockTable;
            int offset = t;
            for (int p = chunk.Start; p < chunk.End; p++, t++)
            {
                host[t] = tokens[p];
                host[positionsAt + t] = p;
                host[slotsAt + t] = PagedKvCache.SlotOf(table, p, blockSize);
            }
            if (chunk.SamplesToken) host[sampleAt + s++] = t - 1;
            if (batchDecode && chunk.Count == 1)
            {
                host[decodeRowsAt + d] = offset;
                long row = (long)d * maxDecodeContext;
                int query = chunk.Start;
                for (int p = 0; p < chunk.End; p++)
                {
                    host[decodeSlotsAt + row + p] = PagedKvCache.SlotOf(table, p, blockSize);
                    host[decodeMaskAt + row + p] = slidingWindow is not { } w || p > query - w ? 1 : 0;
                }
                d++;
                placed[c] = (offset, -1, -1);
                continue;
            }
            for (int p = 0; p < chunk.End; p++) host[nextContext + p] = PagedKvCache.SlotOf(table, p, blockSize);
            long lengthsOf = -1;
            if (sequenceLengths && chunk.Count > 1)
            {
                lengthsOf = nextLengths;
                host[nextLengths + 1] = chunk.Count;
                host[nextLengths + 3] = chunk.End;
                nextLengths += 4;
            }
            placed[c] = (offset, nextContext, lengthsOf);
            nextContext += chunk.End;
        }

        var uploaded = torch.tensor(host, device: device);
        // The int32 tail, converted on the device (no wait): positions, slots and sequence lengths.
        var int32 = int32Indices || lengthChunks > 0 ? uploaded.narrow(0, positionsAt, host.Length - positionsAt).to(ScalarType.Int32) : null;
        Tensor Int64(long at, long length) => uploaded.narrow(0, at, length);
        Tensor Int32(long at, long length) => int32!.narrow(0, at - positionsAt, length);

        for (int c = 0; c < all.Length; c++)
        {
            var chunk = all[c];
            var (offset, slotsOf, lengthsOf) = placed[c];
            chunks[c] = slotsOf < 0
                ? new StepChunk(offset, 1, chunk.Start, chunk.End, null)
                : new StepChunk(offset, chunk.Count, chunk.Start, chunk.End, Int64(slotsOf, chunk.End), lengthsOf < 0 ? null : Int32(lengthsOf, 4));
        }

        return new StepTensors
        {
            TokenIds = Int64(0, total),
            Positions = int32Indices ? Int32(positionsAt, total) : Int64(positionsAt, total),
            Slots = int32Indices ? Int32(slotsAt, total) : Int64(slotsAt, total),
            SampleRows = Int64(sampleAt, sampling),
            Chunks = chunks,
            Decode = batchDecode
                ? new DecodeBatch(Int64(decodeRowsAt, decodeCount), Int64(decodeSlotsAt, decodeCells),
                    Int64(decodeMaskAt, decodeCells).to(ScalarType.Bool).view(decodeCount, 1, 1, maxDecodeContext), maxDecodeContext)
                : null,
        };
    }
}
