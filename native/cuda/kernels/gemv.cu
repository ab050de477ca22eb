// Linear layers of decode steps with 1 to 4 rows: out[m, n] = x[m, :] . w[n, :] (+ bias[n]) for a PyTorch linear
// weight w [n_out, k]. cuBLAS tiles such thin products (and splits a long k over CTAs with a second reduction kernel);
// here a warp streams one weight row with 16-byte loads that skip L1 (the rows of x stay there) and multiplies it with
// every row of x, so each weight is read once, in one kernel. A layer of few, long rows (a small model's down
// projection) splits each row over 2 or 4 warps, so that every SM has enough loads in flight. Around it, what would otherwise be kernels of their own:
// - norm: x is the residual stream and each CTA normalises it on the fly (RMSNorm statistics per row, computed by the
//   CTA first; each element rounded as the rms_norm kernel rounds it);
// - gated: w holds [gate; up] (2 * n_out rows) and out = silu(gate) * up, rounded as the silu_mul kernel rounds;
// - accumulate: out is the residual stream and gets the product added (rounded as an add of the rounded product);
// - rope: a fused qkv projection whose warps each take the pair of rows (j, j + dim/2) of a head, rotate it (q and k
//   heads) and store k and v in the KV cache: the rotary kernel's work, done on the values still in registers.
// A decode step of a small model is a few hundred kernels of a few microseconds each: fewer kernels is what pays.
// The kernel is in gemv.cuh; this file checks the arguments and picks the element type's instantiation.
#include "kernels.h"

namespace disagg {

cudaError_t gemv_bf16(const Gemv& g, cudaStream_t stream);
cudaError_t gemv_f16(const Gemv& g, cudaStream_t stream);
cudaError_t gemv_f32(const Gemv& g, cudaStream_t stream);

cudaError_t gemv(const Gemv& g, cudaStream_t stream)
{
    if (g.rows < 1 || g.rows > kMaxGemvRows || g.k % 8 != 0 || (g.gated && g.accumulate)) return cudaErrorInvalidValue;
    if (g.rope != nullptr && (g.gated || g.accumulate || g.rope->dim % 2 != 0 || g.rope->kv_heads < 1 ||
                              g.n_out != (g.rope->heads + 2 * g.rope->kv_heads) * g.rope->dim))
        return cudaErrorInvalidValue;
    if (g.n_out == 0) return cudaSuccess;
    switch (g.dtype) {
        case DType::BFloat16: return gemv_bf16(g, stream);
        case DType::Float16: return gemv_f16(g, stream);
        case DType::Float32: return gemv_f32(g, stream);
    }
    return cudaErrorInvalidValue;
}

}  // namespace disagg
