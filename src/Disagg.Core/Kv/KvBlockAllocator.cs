namespace Disagg.Kv;

/// <summary>
/// A fixed pool of KV blocks, identified by ids 0 .. <see cref="Capacity"/>-1, with reference counts so that
/// sequences sharing a prefix share its blocks.
/// </summary>
/// <remarks>
/// <para>The allocator only does bookkeeping; the memory the ids stand for lives with the engine (a tensor per layer on its device).
/// A block is free when its reference count is 0. <see cref="TryAllocate(Span{int})"/> hands out free blocks with count 1,
/// <see cref="AddRef(int)"/> adds a holder, <see cref="Release(int)"/> drops one and frees the block when none is left.</para>
/// <para>Running out is an explicit result (<see langword="false"/>), never an overwrite: the caller decides whether to evict,
/// preempt, queue or reject.</para>
/// <para>Thread-safety: every member is safe to call from any thread, and the span overloads are atomic (all or nothing).
/// Misuse — releasing or referencing a free block, or an id outside the pool — throws <see cref="InvalidOperationException"/>
/// or <see cref="ArgumentOutOfRangeException"/> and leaves the pool unchanged.</para>
/// </remarks>
public sealed class KvBlockAllocator
{
    private readonly int[] _refCounts;
    private readonly int[] _freeStack;
    private int _freeCount;
    private readonly Lock _lock = new();

    /// <summary>Creates a pool of <paramref name="capacity"/> free blocks.</summary>
    public KvBlockAllocator(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _refCounts = new int[capacity];
        _freeStack = new int[capacity];
        // Lowest ids on top of the stack, so a fresh pool hands out 0, 1, 2, ...
        for (int i = 0; i < capacity; i++) _freeStack[i] = capacity - 1 - i;
        _freeCount = capacity;
    }

    /// <summary>Total blocks in the pool.</summary>
    public int Capacity => _refCounts.Length;

    /// <summary>Blocks with no holder.</summary>
    public int FreeCount => Volatile.Read(ref _freeCount);

    /// <summary>Blocks with at least one holder.</summary>
    public int UsedCount => Capacity - FreeCount;

    /// <summary>Fraction of the pool in use, in [0, 1].</summary>
    public double Usage => (double)UsedCount / Capacity;

    /// <summary>
    /// Allocates <c>blockIds.Length</c> blocks, each with reference count 1, writing their ids into <paramref name="blockIds"/>.
    /// Returns <see langword="false"/> and allocates nothing when fewer blocks are free.
    /// </summary>
    public bool TryAllocate(Span<int> blockIds)
    {
        lock (_lock)
        {
            int n = blockIds.Length;
            if (n > _freeCount) return false;
            int top = _freeCount;
            for (int i = 0; i < n; i++)
            {
                int id = _freeStack[--top];
                _refCounts[id] = 1;
                blockIds[i] = id;
            }
            _freeCount = top;
            return true;
        }
    }

    /// <summary>Allocates one block with reference count 1, or returns <see langword="false"/> when none is free.</summary>
    public bool TryAllocate(out int blockId)
    {
        lock (_lock)
        {
            if (_freeCount == 0)
            {
                blockId = -1;
                return false;
            }
            blockId = _freeStack[--_freeCount];
            _refCounts[blockId] = 1;
            return true;
        }
    }

    /// <summary>Adds a holder to an allocated block.</summary>
    public void AddRef(int blockId)
    {
        lock (_lock)
        {
            CheckAllocated(blockId);
            _refCounts[blockId]++;
        }
    }

    /// <summary>Adds a holder to each of <paramref name="blockIds"/> (all allocated; a block may appear more than once).</summary>
    public void AddRef(ReadOnlySpan<int> blockIds)
    {
        lock (_lock)
        {
            foreach (int id in blockIds) CheckAllocated(id);
            foreach (int id in blockIds) _refCounts[id]++;
        }
    }

    /// <summary>Drops a holder; returns <see langword="true"/> when that freed the block.</summary>
    public bool Release(int blockId)
    {
        lock (_lock)
        {
            CheckAllocated(blockId);
            return ReleaseUnchecked(blockId);
        }
    }

    /// <summary>Drops one holder from each of <paramref name="blockIds"/>; returns how many blocks that freed.</summary>
    public int Release(ReadOnlySpan<int> blockIds)
    {
        lock (_lock)
        {
            // Take the holders off first, undoing on a bad id so that the pool stays untouched.
            // A block listed k times needs k holders.
            for (int i = 0; i < blockIds.Length; i++)
            {
                int id = blockIds[i];
                if ((uint)id >= (uint)_refCounts.Length || _refCounts[id] <= 0)
                {
                    for (int j = 0; j < i; j++) _refCounts[blockIds[j]]++;
                    CheckAllocated(id); // throws for an out-of-range or free id
                    throw new InvalidOperationException($"KV block {id} is released more times than it is held.");
                }
                _refCounts[id]--;
            }
            int freed = 0;
            foreach (int id in blockIds)
            {
                if (_refCounts[id] == 0)
                {
                    _refCounts[id] = -1; // mark as pushed, so a repeated id is pushed once
                    _freeStack[_freeCount++] = id;
                    freed++;
                }
            }
            foreach (int id in blockIds)
                if (_refCounts[id] == -1) _refCounts[id] = 0;
            return freed;
        }
    }

    /// <summary>Current reference count of a block (0 when free).</summary>
    public int RefCount(int blockId)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)blockId, (uint)Capacity, nameof(blockId));
        lock (_lock) return _refCounts[blockId];
    }

    private bool ReleaseUnchecked(int blockId)
    {
        if (--_refCounts[blockId] > 0) return false;
        _freeStack[_freeCount++] = blockId;
        return true;
    }

    private void CheckAllocated(int blockId)
    {
        if ((uint)blockId >= (uint)_refCounts.Length)
            throw new ArgumentOutOfRangeException(nameof(blockId), blockId, $"KV block id must be in [0, {_refCounts.Length}).");
        if (_refCounts[blockId] <= 0)
            throw new InvalidOperationException($"KV block {blockId} is not allocated.");
    }
}
