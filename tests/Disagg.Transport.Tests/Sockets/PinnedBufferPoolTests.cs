using System.Buffers;
using System.Numerics;
using Disagg.Transport.Sockets;
using FsCheck.Xunit;

namespace Disagg.Transport.Tests.Sockets;

public class PinnedBufferPoolTests
{
    /// <summary>
    /// Drives the pool with a random script of rents and returns and checks it against a naive model: per size class, how
    /// many returned buffers it keeps (within the retain budget), so which rents must reuse and which must allocate.
    /// Each byte of <paramref name="script"/> is one step: even rents (the rest of the byte picks a size up to 1 MiB), odd
    /// returns one held buffer.
    /// </summary>
    [Property(MaxTest = 300)]
    public void Reuses_what_comes_back_within_its_budget_and_never_hands_out_a_held_buffer(byte[] script, byte budgetSeed)
    {
        const int max = 1 << 20;
        long budget = (budgetSeed % 8) * (256L << 10);
        using var pool = new PinnedBufferPool(budget, max);
        var held = new List<(IMemoryOwner<byte> Owner, int Size)>();
        var modelFree = new Dictionary<int, int>(); // size class length -> buffers kept
        long modelRetained = 0;
        int modelAllocations = 0;

        foreach (byte step in script)
        {
            int arg = step >> 1;
            if ((step & 1) == 0)
            {
                int request = Math.Max(1, (int)((long)arg * max / 127));
                int expectedLength = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(request, PinnedBufferPool.MinimumBufferSize));
                var owner = pool.Rent(request);
                var memory = owner.Memory;
                Assert.Equal(expectedLength, memory.Length);
                if (modelFree.GetValueOrDefault(expectedLength) > 0)
                {
                    modelFree[expectedLength]--;
                    modelRetained -= expectedLength;
                }
                else modelAllocations++;
                // No other holder may see this memory: mark it and check every held buffer keeps its own mark.
                memory.Span.Fill((byte)held.Count);
                held.Add((owner, expectedLength));
                for (int i = 0; i < held.Count; i++) Assert.Equal((byte)i, held[i].Owner.Memory.Span[0]);
            }
            else if (held.Count > 0)
            {
                int at = arg % held.Count;
                var (owner, size) = held[at];
                held.RemoveAt(at);
                for (int i = at; i < held.Count; i++) held[i].Owner.Memory.Span.Fill((byte)i); // keep marks equal to positions
                owner.Dispose();
                if (modelRetained + size <= budget)
                {
                    modelFree[size] = modelFree.GetValueOrDefault(size) + 1;
                    modelRetained += size;
                }
            }
            Assert.Equal(modelRetained, pool.RetainedBytes);
            Assert.True(pool.RetainedBytes <= budget);
            Assert.Equal(modelAllocations, pool.Allocations);
        }
    }

    [Fact]
    public void A_buffer_returned_twice_is_refused()
    {
        using var pool = new PinnedBufferPool(1 << 20, 1 << 20);
        var owner = pool.Rent(100);
        owner.Dispose();
        Assert.Throws<InvalidOperationException>(owner.Dispose);
    }

    [Fact]
    public void A_request_above_the_largest_buffer_is_refused_and_a_disposed_pool_rents_nothing()
    {
        var pool = new PinnedBufferPool(1 << 20, 300_000);
        Assert.Equal(512 << 10, pool.MaxBufferSize);
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent((512 << 10) + 1));
        var held = pool.Rent(1);
        pool.Dispose();
        held.Dispose(); // a buffer the pipes return late goes to the GC
        Assert.Equal(0, pool.RetainedBytes);
        Assert.Throws<ObjectDisposedException>(() => pool.Rent(1));
    }
}
