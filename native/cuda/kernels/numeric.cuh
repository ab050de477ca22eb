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

// Rotary embedding ("rotate half") of the pair (x1, x2) = (x[j], x[j + dim/2]) with cos/sin of j and j + dim/2 already
// rounded to T: each product and the sum rounded to T, as the TorchSharp expression x * cos + rotate_half(x) * sin is in T.
template <typename T>
__device__ __forceinline__ void rotate_pair(float x1, float x2, float c1, float c2, float s1, float s2, T& y1, T& y2)
{
    y1 = Num<T>::round(__fadd_rn(rounded<T>(__fmul_rn(x1, c1)), rounded<T>(__fmul_rn(-x2, s1))));
    y2 = Num<T>::round(__fadd_rn(rounded<T>(__fmul_rn(x2, c2)), rounded<T>(__fmul_rn(x1, s2))));
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
