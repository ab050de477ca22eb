namespace Disagg.Cuda;

/// <summary>Where and how a model runs. Validate with <see cref="Validate"/>.</summary>
public sealed class ModelRunnerOptions
{
    /// <summary>"cpu", "cuda" or "cuda:N".</summary>
    public string Device { get; set; } = "cpu";

    /// <summary>Weights and KV dtype: "float32", "bfloat16" or "float16". Null picks bfloat16 on CUDA and float32 on CPU.</summary>
    public string? DataType { get; set; }

    /// <summary>Tokens per KV block.</summary>
    public int BlockSize { get; set; } = 16;

    /// <summary>KV blocks to allocate. Null sizes the pool from <see cref="KvCacheBytes"/>.</summary>
    public int? KvCacheBlocks { get; set; }

    /// <summary>Bytes of KV memory when <see cref="KvCacheBlocks"/> is null.</summary>
    public long KvCacheBytes { get; set; } = 256L << 20;

    /// <summary>Cap on the context length (prompt plus output); null uses the model's own maximum.</summary>
    public int? MaxContextLength { get; set; }

    /// <summary>
    /// On CUDA, run decode steps on libdisagg_cuda's fused kernels (paged attention, fused norms, rotary embedding and
    /// activation) when the library is present (<c>DISAGG_NATIVE_DIR</c> or next to the app; build it with
    /// native/cuda/build.sh). False keeps every step on plain TorchSharp ops, which give the same tokens. Default true.
    /// </summary>
    public bool UseNativeKernels { get; set; } = true;

    /// <summary>
    /// On CUDA with libdisagg_cuda present, steps with prompt chunks use its kernels: RMSNorm (with the residual add), the
    /// rotary embedding with the KV-cache write, and SiLU-mul between cuBLAS's linear layers (about 12 launches a layer
    /// instead of about 60 TorchSharp ops, which is what bounds a prompt step of a small model; the same rounding); and, in
    /// bfloat16 or float16, FlashAttention-2 for prompt chunks that follow cached tokens (a prefix-cache hit, the later chunks
    /// of a chunked prefill) or that a sliding window cuts, with the causal mask aligned to the chunk's last position and
    /// grouped KV heads read in place. False keeps every prompt step on TorchSharp ops and SDPA with an explicit mask.
    /// Independent of <see cref="UseNativeKernels"/>, so a prefill-only engine keeps it. Default true.
    /// </summary>
    public bool UseNativePrefill { get; set; } = true;

    /// <summary>With the native kernels: capture decode steps into CUDA graphs at load and replay them. Default true.</summary>
    public bool UseCudaGraphs { get; set; } = true;

    /// <summary>
    /// Most sequences in a decode step that the native path (and its graphs) serves: larger decode-only steps use TorchSharp
    /// ops, and in a step that mixes decode rows with prompt chunks the rows past it run with the prompt chunks.
    /// </summary>
    public int NativeDecodeMaxBatchSize { get; set; } = 64;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Device)) throw new ArgumentException("Device must be set (cpu, cuda or cuda:N).", nameof(Device));
        if (DataType is not (null or "float32" or "bfloat16" or "float16"))
            throw new ArgumentException($"DataType '{DataType}' is not one of float32, bfloat16, float16.", nameof(DataType));
        if (BlockSize is < 1 or > 1024) throw new ArgumentOutOfRangeException(nameof(BlockSize), BlockSize, "Must be in [1, 1024].");
        if (KvCacheBlocks is < 1) throw new ArgumentOutOfRangeException(nameof(KvCacheBlocks), KvCacheBlocks, "Must be positive.");
        if (KvCacheBytes < 1) throw new ArgumentOutOfRangeException(nameof(KvCacheBytes), KvCacheBytes, "Must be positive.");
        if (NativeDecodeMaxBatchSize is < 1 or > 1024)
            throw new ArgumentOutOfRangeException(nameof(NativeDecodeMaxBatchSize), NativeDecodeMaxBatchSize, "Must be in [1, 1024].");
        if (MaxContextLength is < 2) throw new ArgumentOutOfRangeException(nameof(MaxContextLength), MaxContextLength, "Must be at least 2.");
    }
}
