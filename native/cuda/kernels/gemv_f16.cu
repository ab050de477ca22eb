// The thin linear kernel for __half (the kernel is in gemv.cuh).
#include "gemv.cuh"

namespace disagg {

cudaError_t gemv_f16(const Gemv& g, cudaStream_t stream) { return launch_typed<__half>(g, stream); }

}  // namespace disagg
