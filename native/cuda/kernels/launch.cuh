// How the kernels are launched: with programmatic dependent launch (Hopper and later) when it is on, so that a kernel of
// a decode step starts while the one before it finishes. A decode step of a small model is a chain of ~170 kernels of a
// few microseconds each, and without this each one pays the launch, the ramp-up of its CTAs and its first loads after
// the previous kernel has drained. With it, the next kernel's CTAs are already resident, have their weights in flight,
// and wait only for the data the previous kernel writes.
//
// The contract every kernel launched here keeps, in every CTA, before it exits:
//   1. before wait_for_prior_kernel() it reads only what was complete before the previous kernel started: weights,
//      constants, the step's inputs copied in before its first kernel (the attention's block tables), never the
//      previous kernel's output;
//   2. it calls wait_for_prior_kernel() (a no-op when the launch was not programmatic), then
//   3. allow_next_kernel(), so the next kernel may start; it comes after the wait, so whatever any earlier kernel wrote
//      has landed before a kernel can start (the order is transitive across the chain).
#pragma once
#include <cuda_runtime.h>

#include "kernels.h"

namespace disagg {

__device__ __forceinline__ void wait_for_prior_kernel()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void allow_next_kernel()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Launches kernel<<<grid, block, shared, stream>>>(args...), programmatically when programmatic_launch() is on.
template <typename... Params, typename... Args>
cudaError_t launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream, Args... args)
{
    cudaLaunchAttribute attribute{};
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config{};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = shared;
    config.stream = stream;
    config.attrs = &attribute;
    config.numAttrs = programmatic_launch() ? 1 : 0;
    return cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
}

}  // namespace disagg
