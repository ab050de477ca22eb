// Decode attention for __nv_bfloat16 (the kernels are in paged_attention.cuh).
#include "paged_attention.cuh"

namespace disagg {

cudaError_t paged_attention_bf16(const PagedAttention& a, cudaStream_t stream) { return launch_groups<__nv_bfloat16>(a, stream); }

}  // namespace disagg
