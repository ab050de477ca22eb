// Decode attention for float (the kernels are in paged_attention.cuh).
#include "paged_attention.cuh"

namespace disagg {

cudaError_t paged_attention_f32(const PagedAttention& a, cudaStream_t stream) { return launch_groups<float>(a, stream); }

}  // namespace disagg
