// The thin linear kernel for float (the kernel is in gemv.cuh).
#include "gemv.cuh"

namespace disagg {

cudaError_t gemv_f32(const Gemv& g, cudaStream_t stream) { return launch_typed<float>(g, stream); }

}  // namespace disagg
