namespace Disagg.Scheduling;

/// <summary>A double-ended queue of sequences on a ring buffer: FCFS at the back, preempted sequences back at the front. No allocation once grown.</summary>
internal sealed class SequenceQueue
{
    private Sequence?[] _items = new Sequence?[16];
    private int _head;

    public int Count { get; private set; }

    public Sequence this[int index] => _items[(_head + index) % _items.Length]!;

    public Sequence PeekFirst() => Count > 0 ? _items[_head]! : throw new InvalidOperationException("The queue is empty.");

    public void AddLast(Sequence sequence)
    {
        Grow();
        _items[(_head + Count) % _items.Length] = sequence;
        Count++;
    }

    public void AddFirst(Sequence sequence)
    {
        Grow();
        _head = (_head - 1 + _items.Length) % _items.Length;
        _items[_head] = sequence;
        Count++;
    }

    public Sequence RemoveFirst()
    {
        var first = PeekFirst();
        _items[_head] = null;
        _head = (_head + 1) % _items.Length;
        Count--;
        return first;
    }

    /// <summary>Removes <paramref name="sequence"/> wherever it is, keeping the order of the rest. O(n).</summary>
    public bool Remove(Sequence sequence)
    {
        for (int i = 0; i < Count; i++)
        {
            if (!ReferenceEquals(this[i], sequence)) continue;
            for (int j = i; j < Count - 1; j++) _items[(_head + j) % _items.Length] = this[j + 1];
            _items[(_head + Count - 1) % _items.Length] = null;
            Count--;
            return true;
        }
        return false;
    }

    private void Grow()
    {
        if (Count < _items.Length) return;
        var bigger = new Sequence?[_items.Length * 2];
        for (int i = 0; i < Count; i++) bigger[i] = this[i];
        _items = bigger;
        _head = 0;
    }
}
