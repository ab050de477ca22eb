using Disagg.Kv;
using FsCheck.Xunit;

namespace Disagg.Tests.Kv;

public class KvBlockAllocatorTests
{
    /// <summary>
    /// Drives the allocator with a random script and checks it against a naive model (a multiset of holdings).
    /// Each byte of <paramref name="script"/> is one step: its low 2 bits pick allocate / add-ref / release one / release batch,
    /// the rest pick a size or a holding.
    /// </summary>
    [Property(MaxTest = 300)]
    public void Matches_a_naive_model_and_every_block_comes_back(byte[] script, byte capacitySeed)
    {
        int capacity = 1 + capacitySeed % 24;
        var allocator = new KvBlockAllocator(capacity);
        var holdings = new List<int>();            // one entry per reference held by "someone"
        var modelRefs = new int[capacity];

        foreach (byte step in script)
        {
            int arg = step >> 2;
            switch (step & 3)
            {
                case 0: // allocate a batch
                {
                    var ids = new int[arg % 6];
                    int modelFree = modelRefs.Count(r => r == 0);
                    bool ok = allocator.TryAllocate(ids);
                    Assert.Equal(ids.Length <= modelFree, ok);
                    if (!ok) break;
                    Assert.Equal(ids.Length, ids.Distinct().Count());
                    foreach (int id in ids)
                    {
                        Assert.Equal(0, modelRefs[id]); // never hand out a held block
                        modelRefs[id] = 1;
                        holdings.Add(id);
                    }
                    break;
                }
                case 1: // another holder for a held block
                    if (holdings.Count == 0) break;
                    int shared = holdings[arg % holdings.Count];
                    allocator.AddRef(shared);
                    modelRefs[shared]++;
                    holdings.Add(shared);
                    break;
                case 2: // drop one holding
                {
                    if (holdings.Count == 0) break;
                    int at = arg % holdings.Count;
                    int id = holdings[at];
                    holdings.RemoveAt(at);
                    bool freed = allocator.Release(id);
                    modelRefs[id]--;
                    Assert.Equal(modelRefs[id] == 0, freed);
                    break;
                }
                default: // drop several holdings at once (may repeat a block)
                {
                    int n = Math.Min(holdings.Count, arg % 4);
                    var batch = holdings.GetRange(holdings.Count - n, n).ToArray();
                    holdings.RemoveRange(holdings.Count - n, n);
                    int freedBefore = allocator.FreeCount;
                    int freed = allocator.Release(batch);
                    foreach (int id in batch) modelRefs[id]--;
                    Assert.Equal(freed, allocator.FreeCount - freedBefore);
                    break;
                }
            }

            for (int id = 0; id < capacity; id++) Assert.Equal(modelRefs[id], allocator.RefCount(id));
            Assert.Equal(modelRefs.Count(r => r == 0), allocator.FreeCount);
        }

        allocator.Release(holdings.ToArray());
        Assert.Equal(capacity, allocator.FreeCount);
        Assert.All(Enumerable.Range(0, capacity), id => Assert.Equal(0, allocator.RefCount(id)));
    }

    [Fact]
    public void Running_out_is_an_explicit_result_and_allocates_nothing()
    {
        var allocator = new KvBlockAllocator(4);
        Assert.True(allocator.TryAllocate(new int[3]));
        var tooMany = new[] { -7, -7 };
        Assert.False(allocator.TryAllocate(tooMany));
        Assert.Equal(new[] { -7, -7 }, tooMany);
        Assert.Equal(1, allocator.FreeCount);
        Assert.True(allocator.TryAllocate(out int last));
        Assert.False(allocator.TryAllocate(out int none));
        Assert.Equal(-1, none);
        Assert.Equal(0, allocator.FreeCount);
        Assert.InRange(last, 0, 3);
    }

    [Fact]
    public void Misuse_throws_and_leaves_the_pool_untouched()
    {
        var allocator = new KvBlockAllocator(4);
        var ids = new int[2];
        allocator.TryAllocate(ids);
        int free = allocator.FreeCount;

        Assert.Throws<InvalidOperationException>(() => allocator.Release(3));      // never allocated
        Assert.Throws<InvalidOperationException>(() => allocator.AddRef(3));
        Assert.Throws<ArgumentOutOfRangeException>(() => allocator.Release(4));    // outside the pool
        Assert.Throws<ArgumentOutOfRangeException>(() => allocator.Release(-1));
        // A batch that releases one block twice but holds it once fails whole.
        Assert.Throws<InvalidOperationException>(() => allocator.Release([ids[0], ids[1], ids[1]]));
        Assert.Throws<InvalidOperationException>(() => allocator.AddRef([ids[0], 3]));

        Assert.Equal(free, allocator.FreeCount);
        Assert.Equal(1, allocator.RefCount(ids[0]));
        Assert.Equal(1, allocator.RefCount(ids[1]));
        Assert.Equal(2, allocator.Release(ids));
        Assert.Throws<InvalidOperationException>(() => allocator.Release(ids[0])); // double free
    }

    [Fact]
    public void Concurrent_holders_never_share_a_block_and_all_blocks_return()
    {
        const int capacity = 64, threads = 4, rounds = 20_000;
        var allocator = new KvBlockAllocator(capacity);
        var owner = new int[capacity]; // 0 = nobody, else thread number
        int violations = 0;

        Parallel.For(1, threads + 1, t =>
        {
            var rng = new Random(t);
            var mine = new int[3];
            for (int r = 0; r < rounds; r++)
            {
                var batch = mine.AsSpan(0, rng.Next(1, 4));
                if (!allocator.TryAllocate(batch)) continue;
                foreach (int id in batch)
                    if (Interlocked.CompareExchange(ref owner[id], t, 0) != 0) Interlocked.Increment(ref violations);
                foreach (int id in batch) Volatile.Write(ref owner[id], 0);
                allocator.Release(batch);
            }
        });

        Assert.Equal(0, violations);
        Assert.Equal(capacity, allocator.FreeCount);
    }
}
