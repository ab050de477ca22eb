// The thin linear kernel for __nv_bfloat16 (the kernel is in gemv.cuh).
#include "gemv.cuh"

namespace disagg {

cudaError_t gemv_bf16(const Gemv& g, cudaStream_t stream) { return launch_typed<__nv_bfloat16>(g, stream); }

}  // namespace disagg
