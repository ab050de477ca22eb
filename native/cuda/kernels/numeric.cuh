// Element types the kernels handle, and how each is read into and rounded back from float (round to nearest even, as
// PyTorch's own kernels do), so that the fused kernels round exactly where the TorchSharp ops they replace do.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels.h"

namespace disagg {

template <typename T> struct Num;
template <> struct Num<float> {
    static __device__ __forceinline__ float load(float x) { return x; }
    static __device__ __forceinline__ float round(float x) { return x; }
};
template <> struct Num<__half> {
    static __device__ __forceinline__ float load(__half x) { return __half2float(x); }
    static __device__ __forceinline__ __half round(float x) { return __float2half_rn(x); }
};
template <> struct Num<__nv_bfloat16> {
    static __device__ __forceinline__ float load(__nv_bfloat16 x) { return __bfloat162float(x); }
    static __device__ __forceinline__ __nv_bfloat16 round(float x) { return __float2bfloat16_rn(x); }
};

// A float rounded to T and read back: what an op producing a T tensor leaves behind.
template <typename T> __device__ __forceinline__ float rounded(float x) { return Num<T>::load(Num<T>::round(x)); }

// Calls f with a null pointer of the element type `dtype` names; the kernels' launchers dispatch through it.
template <typename F> cudaError_t dispatch(DType dtype, F&& f)
{
    switch (dtype) {
        case DType::Float32: return f(static_cast<float*>(nullptr));
        case DType::Float16: return f(static_cast<__half*>(nullptr));
        case DType::BFloat16: return f(static_cast<__nv_bfloat16*>(nullptr));
    }
    return cudaErrorInvalidValue;
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

}  // namespace disagg
