// The CUDA kernels of libdisagg_cuda, as plain launchers over raw device pointers (no PyTorch types here, so that this
// half builds and can be checked with nvcc alone). abi/ops.cpp checks TorchSharp tensors and calls these on the
// current PyTorch stream. Every launcher returns the launch's cudaError_t.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace disagg {

enum class DType : int { Float32 = 0, Float16 = 1, BFloat16 = 2 };

// Whether the launchers below use programmatic dependent launch (launch.cuh says what it buys and what each kernel
// keeps to). Process-wide; read at each launch, so a CUDA graph keeps what was set when it was captured. Off by default;
// turning it on asks the device: false (and off) where it is older than Hopper.
bool set_programmatic_launch(bool enabled);
bool programmatic_launch();

// RMSNorm of `rows` rows of `cols` elements: out = weight * round(x * rsqrt(mean(x^2) + eps)), statistics in float.
// Row r lives at (r / group) * stride + (r % group) * cols in x and out (group > 1 normalises each head of a
// [tokens, heads, dim] view in place). With `residual` (contiguous [rows, cols], group 1): residual += x first (rounded
// to the element type, as an add would), and the sum is what gets normalised; residual keeps the sum.
cudaError_t rms_norm(DType dtype, void* out, int64_t out_stride, const void* x, int64_t x_stride, void* residual,
                     const void* weight, int rows, int cols, int group, float eps, cudaStream_t stream);

// Rotary embedding ("rotate half") of the q and k heads of each token's fused qkv row, in place, and the k and v rows
// written to the cache at the token's slot (a negative slot writes nothing: padding). qkv rows are `qkv_stride`
// elements apart and hold [heads q | kv_heads k | kv_heads v] of `dim` each. cos/sin: float32 [positions, dim].
// k_cache/v_cache: one layer, [slots, kv_heads, dim].
cudaError_t rope_store_kv(DType dtype, void* qkv, int64_t qkv_stride, const int32_t* positions, const int32_t* slots,
                          const float* cos, const float* sin, void* k_cache, void* v_cache, int tokens, int heads,
                          int kv_heads, int dim, cudaStream_t stream);

// out[t, i] = round(silu(gate[t, i])) * up[t, i] for gate_up = [gate | up] rows of 2 * width.
cudaError_t silu_mul(DType dtype, void* out, const void* gate_up, int tokens, int width, cudaStream_t stream);

// out [rows, n_out] = x' [rows, k] (rows x_stride elements apart) times w^T for a linear weight w [n_out, k] (or
// [2 * n_out, k] when gated), plus bias when not null. x' is x, or with `norm` (a [k] RMSNorm weight) x normalised per
// row as the rms_norm kernel would. Gated: out = silu(gate) * up of the two halves, rounded like silu_mul. Accumulate:
// out += the product (not with gated). For decode steps of at most kMaxGemvRows rows; k a multiple of 8; x, its rows,
// w and norm 16-byte aligned.
//
// With `rope` (a fused qkv projection, n_out = (heads + 2 * kv_heads) * dim, neither gated nor accumulating): the
// rope_store_kv kernel's work too, in the epilogue: each warp computes the pair of outputs (j, j + dim / 2) of a head,
// rotates q and k heads, writes all to out and stores k and v at the row's slot, rounded as rope_store_kv rounds.
struct RopeKv {
    const int32_t* positions;  // [rows]
    const int32_t* slots;      // [rows]; negative: nothing stored
    const float* cos;          // [positions, dim]
    const float* sin;
    void* k_cache;             // one layer, [slots, kv_heads, dim]
    void* v_cache;
    int heads, kv_heads, dim;
};
constexpr int kMaxGemvRows = 4;
struct Gemv {
    DType dtype;
    void* out;
    const void* x;
    int64_t x_stride;
    const void* w;
    const void* bias;
    const void* norm;
    float eps;
    int rows, n_out, k;
    bool gated, accumulate;
    const RopeKv* rope;  // null: a plain linear layer
};
cudaError_t gemv(const Gemv& g, cudaStream_t stream);

// Decode attention over a paged cache: one query token per sequence, each attending over its own positions
// [0, context_lens[b]) (or the last `window` of them when window > 0), read through its block table. Grouped-query:
// query head h reads kv head h / (heads / kv_heads). q rows are `q_stride` elements apart ([heads, dim] at their start);
// out is contiguous [batch, heads * dim]. Each sequence's context is divided among up to `partitions` CTAs per kv head
// (whole passes of 16 keys each, computed in parallel; the CTA of a (sequence, kv head) that finishes
// last merges them). When
// partitions > 1, workspace holds batch * heads * partitions * (dim + 2) floats (the partitions' sums and softmax
// statistics) and counters batch * kv_heads, which must be zero before the first launch (each launch leaves them at
// zero: allocate them zeroed once and reuse them). A sequence with no context gets zeros.
struct PagedAttention {
    DType dtype;
    void* out;
    const void* q;
    int64_t q_stride;
    const void* k_cache;
    const void* v_cache;
    const int32_t* block_tables;  // [batch, max_blocks]
    const int32_t* context_lens;  // [batch]
    float* workspace;
    unsigned* counters;  // [batch, kv_heads]: partitions done
    int batch, heads, kv_heads, dim, block_size, max_blocks, window, partitions;
    float scale;
};
constexpr int kMaxAttentionPartitions = 512;  // the merge keeps a weight per partition in shared memory
cudaError_t paged_attention(const PagedAttention& a, cudaStream_t stream);

// Copies whole KV blocks between two pools laid out [layers, 2, blocks, block_bytes]: for every layer in
// [layer_begin, layer_end), K and V, block src_ids[i] of `src` to block dst_ids[i] of `dst`. The pools may live on
// different devices (peer access) or in another process (CUDA IPC mapping); the kernel runs on the stream's device.
// ids: device int32 [2 * count], source ids then destination ids. block_bytes must be a multiple of 16.
cudaError_t copy_blocks(const void* src, int64_t src_blocks, void* dst, int64_t dst_blocks, const int32_t* ids, int count,
                        int layer_begin, int layer_end, int64_t block_bytes, cudaStream_t stream);

}  // namespace disagg
