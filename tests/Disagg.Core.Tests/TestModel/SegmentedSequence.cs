using System.Buffers;

namespace Disagg.Tests.TestModel;

/// <summary>Bytes as a <see cref="ReadOnlySequence{T}"/> of several segments, as a socket's receive pipe hands them over.</summary>
internal static class SegmentedSequence
{
    /// <summary>Splits <paramref name="data"/> at <paramref name="cuts"/> (offsets, any order, out-of-range ones ignored).</summary>
    public static ReadOnlySequence<byte> Of(byte[] data, IEnumerable<int> cuts)
    {
        int[] bounds = [0, .. cuts.Where(c => c > 0 && c < data.Length).Distinct().Order(), data.Length];
        if (bounds.Length == 2) return new ReadOnlySequence<byte>(data);
        var first = new Segment(data.AsMemory(bounds[0], bounds[1] - bounds[0]), 0);
        var last = first;
        for (int i = 1; i + 1 < bounds.Length; i++) last = last.Append(data.AsMemory(bounds[i], bounds[i + 1] - bounds[i]));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
