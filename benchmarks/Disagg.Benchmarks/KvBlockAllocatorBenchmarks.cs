using BenchmarkDotNet.Attributes;
using Disagg.Kv;

namespace Disagg.Benchmarks;

/// <summary>Allocate-then-free cost per block, for single blocks (decode growth) and batches (prefill).</summary>
[MemoryDiagnoser]
public class KvBlockAllocatorBenchmarks
{
    private readonly KvBlockAllocator _allocator = new(65_536);
    private readonly int[] _batch = new int[128];

    /// <summary>One block allocated and freed (what a decode step does at a block boundary).</summary>
    [Benchmark]
    public int AllocateFreeOne()
    {
        _allocator.TryAllocate(out int id);
        _allocator.Release(id);
        return id;
    }

    /// <summary>128 blocks allocated and freed in one call each (a 2,048-token prompt at 16 tokens per block). Divide by 128 for the per-block cost.</summary>
    [Benchmark(OperationsPerInvoke = 128)]
    public int AllocateFreeBatchOf128()
    {
        _allocator.TryAllocate(_batch);
        return _allocator.Release(_batch);
    }

    /// <summary>Sharing a prefix: add a holder to 128 blocks and drop it again.</summary>
    [Benchmark(OperationsPerInvoke = 128)]
    public void AddRefReleaseBatchOf128()
    {
        _allocator.AddRef(_batch);
        _allocator.Release(_batch);
    }

    [GlobalSetup(Target = nameof(AddRefReleaseBatchOf128))]
    public void HoldBatch() => _allocator.TryAllocate(_batch);
}
