// Decode attention for __half (the kernels are in paged_attention.cuh).
#include "paged_attention.cuh"

namespace disagg {

cudaError_t paged_attention_f16(const PagedAttention& a, cudaStream_t stream) { return launch_groups<__half>(a, stream); }

}  // namespace disagg
