using System.Buffers;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Disagg.Transport.Sockets;

/// <summary>
/// The memory behind one connection's two pipes: pinned arrays (on the pinned object heap) in power-of-two size classes
/// from 64 KiB up, kept for reuse when the pipes return them.
/// </summary>
/// <remarks>
/// <para>Why not <see cref="MemoryPool{T}.Shared"/>: a KV transfer rents and returns thousands of segments a second, each
/// rented on one thread (a pump, a writer) and returned on another (the reader, the send pump). The shared array pool keeps
/// only a few arrays per size and core, so under that churn many rents missed and allocated: 17 MB of garbage per 256 MiB
/// transfer over a Unix socket, 49-57 MB over TCP, 35 MB over TLS (measured on 2 cores). Here every array returns to the
/// connection that rented it, and the same transfers allocate no buffers once the connection has carried one.</para>
/// <para>Bounded: the pipes' thresholds bound how much is rented at once, and at most <c>retainBytes</c> wait here
/// unused; a return beyond that is dropped for the GC. Everything goes with the connection.</para>
/// <para>Pinned: the socket and TLS layers pin a buffer for every operation; these need no pin handle and never fragment
/// the compacting heap.</para>
/// </remarks>
internal sealed class PinnedBufferPool : MemoryPool<byte>
{
    /// <summary>The smallest array handed out; a smaller request gets this much.</summary>
    public const int MinimumBufferSize = 64 << 10;

    private const int MinimumShift = 16; // log2(MinimumBufferSize)
    private readonly Stack<Buffer>[] _free;
    private readonly long _retainBytes;
    private long _retained;
    private int _allocations;
    private bool _disposed;

    /// <summary>Creates a pool that keeps at most <paramref name="retainBytes"/> of returned arrays for reuse and hands out
    /// arrays up to <paramref name="maxBufferSize"/> bytes.</summary>
    public PinnedBufferPool(long retainBytes, int maxBufferSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(retainBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBufferSize, MinimumBufferSize);
        MaxBufferSize = (int)Math.Min(BitOperations.RoundUpToPowerOf2((uint)maxBufferSize), Array.MaxLength);
        _retainBytes = retainBytes;
        _free = new Stack<Buffer>[SizeClass(MaxBufferSize) + 1];
        for (int i = 0; i < _free.Length; i++) _free[i] = new Stack<Buffer>();
    }

    /// <inheritdoc />
    public override int MaxBufferSize { get; }

    /// <summary>Bytes held for reuse now (not rented).</summary>
    public long RetainedBytes => Interlocked.Read(ref _retained);

    /// <summary>Arrays allocated so far (a measure of how often a rent missed).</summary>
    public int Allocations => Volatile.Read(ref _allocations);

    /// <inheritdoc />
    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        if (minBufferSize > MaxBufferSize)
            throw new ArgumentOutOfRangeException(nameof(minBufferSize), minBufferSize, $"The pool's largest buffer is {MaxBufferSize} bytes.");
        int sizeClass = SizeClass(Math.Max(minBufferSize, MinimumBufferSize));
        lock (_free)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_free[sizeClass].TryPop(out var buffer))
            {
                _retained -= buffer.Length;
                buffer.Rented = true;
                return buffer;
            }
            _allocations++;
        }
        return new Buffer(this, MinimumBufferSize << sizeClass) { Rented = true };
    }

    private void Return(Buffer buffer)
    {
        lock (_free)
        {
            if (!buffer.Rented) throw new InvalidOperationException("A pooled buffer was returned twice.");
            buffer.Rented = false;
            if (_disposed || _retained + buffer.Length > _retainBytes) return; // the GC takes it
            _retained += buffer.Length;
            _free[SizeClass(buffer.Length)].Push(buffer);
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        lock (_free)
        {
            _disposed = true;
            foreach (var stack in _free) stack.Clear();
            _retained = 0;
        }
    }

    private static int SizeClass(int size) => BitOperations.Log2(BitOperations.RoundUpToPowerOf2((uint)size)) - MinimumShift;

    /// <summary>One pinned array and its owner; the pool reuses the object itself, so a rent allocates nothing.</summary>
    private sealed class Buffer(PinnedBufferPool pool, int length) : IMemoryOwner<byte>
    {
        private readonly byte[] _array = GC.AllocateUninitializedArray<byte>(length, pinned: true);

        public int Length => _array.Length;

        public bool Rented { get; set; }

        public Memory<byte> Memory => MemoryMarshal.CreateFromPinnedArray(_array, 0, _array.Length);

        public void Dispose() => pool.Return(this);
    }
}
