// RMSNorm (optionally fused with the residual add before it), rotary embedding fused with the KV-cache write, and
// SiLU-and-multiply: the element-wise steps of a decoder layer, one kernel each instead of five to ten TorchSharp ops.
#include <cstdint>

#include "launch.cuh"
#include "numeric.cuh"

namespace disagg {
namespace {

constexpr int kNormThreads = 256;

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The sum of every thread's `value` in a block of up to kNormThreads threads (a multiple of 32), returned to all of them.
__device__ float block_sum(float value)
{
    __shared__ float partial[kNormThreads / 32];
    value = warp_sum(value);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = value;
    __syncthreads();
    if (threadIdx.x < 32) {
        float s = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0.f;
        s = warp_sum(s);
        if (threadIdx.x == 0) partial[0] = s;
    }
    __syncthreads();
    return partial[0];
}

// Where row `row` of an rms_norm call reads, writes and keeps its residual (the layout is in kernels.h).
template <typename T>
struct NormRow {
    const T* in;
    T* out;
    T* residual;  // null without a residual
};
template <typename T>
__device__ __forceinline__ NormRow<T> norm_row(int row, T* out, int64_t out_stride, const T* x, int64_t x_stride, T* residual, int cols, int group)
{
    const int64_t at = static_cast<int64_t>(row % group) * cols;
    return {x + (row / group) * x_stride + at, out + (row / group) * out_stride + at,
            residual == nullptr ? nullptr : residual + static_cast<int64_t>(row) * cols};
}

template <typename T>
__global__ void rms_norm_kernel(T* out, int64_t out_stride, const T* x, int64_t x_stride, T* residual, const T* weight,
                                int cols, int group, float eps)
{
    wait_for_prior_kernel();
    allow_next_kernel();
    const auto [in, dst, res] = norm_row(blockIdx.x, out, out_stride, x, x_stride, residual, cols, group);

    float sum = 0.f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = Num<T>::load(in[i]);
        if (res != nullptr) {
            v = rounded<T>(__fadd_rn(Num<T>::load(res[i]), v));
            res[i] = Num<T>::round(v);
        }
        sum += v * v;
    }
    const float inverse = rsqrtf(block_sum(sum) / cols + eps);
    // Each thread reads back only what it wrote above, so no barrier is needed between the two passes over res.
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = res != nullptr ? Num<T>::load(res[i]) : Num<T>::load(in[i]);
        float normed = rounded<T>(__fmul_rn(v, inverse));
        dst[i] = Num<T>::round(__fmul_rn(Num<T>::load(weight[i]), normed));
    }
}

// The same for rows whose elements start 16-byte aligned and fill whole 16-byte vectors: each thread loads its VPT
// vectors at once and keeps them in registers between the two passes, instead of a loop whose every load waits for the
// store before it (the compiler cannot tell that the residual and the input do not overlap).
template <typename T, int VPT>
__global__ void rms_norm_vector_kernel(T* out, int64_t out_stride, const T* x, int64_t x_stride, T* residual, const T* weight,
                                       int cols, int group, float eps)
{
    constexpr int kVec = 16 / sizeof(T);
    wait_for_prior_kernel();
    allow_next_kernel();
    const auto [in, dst, res] = norm_row(blockIdx.x, out, out_stride, x, x_stride, residual, cols, group);

    float v[VPT][kVec];
    float sum = 0.f;
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        const int i = (k * blockDim.x + threadIdx.x) * kVec;
        if (i >= cols) continue;
        const uint4 a = *reinterpret_cast<const uint4*>(in + i);
        uint4 r = a;
        if (res != nullptr) r = *reinterpret_cast<const uint4*>(res + i);
        const T* pa = reinterpret_cast<const T*>(&a);
        const T* pr = reinterpret_cast<const T*>(&r);
#pragma unroll
        for (int e = 0; e < kVec; e++) {
            float value = Num<T>::load(pa[e]);
            if (res != nullptr) value = rounded<T>(__fadd_rn(Num<T>::load(pr[e]), value));
            v[k][e] = value;
            sum += value * value;
        }
    }
    if (res != nullptr) {
#pragma unroll
        for (int k = 0; k < VPT; k++) {
            const int i = (k * blockDim.x + threadIdx.x) * kVec;
            if (i >= cols) continue;
            uint4 o;
            T* po = reinterpret_cast<T*>(&o);
#pragma unroll
            for (int e = 0; e < kVec; e++) po[e] = Num<T>::round(v[k][e]);
            *reinterpret_cast<uint4*>(res + i) = o;
        }
    }
    const float inverse = rsqrtf(block_sum(sum) / cols + eps);
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        const int i = (k * blockDim.x + threadIdx.x) * kVec;
        if (i >= cols) continue;
        const uint4 w = *reinterpret_cast<const uint4*>(weight + i);
        const T* pw = reinterpret_cast<const T*>(&w);
        uint4 o;
        T* po = reinterpret_cast<T*>(&o);
#pragma unroll
        for (int e = 0; e < kVec; e++) po[e] = Num<T>::round(__fmul_rn(Num<T>::load(pw[e]), rounded<T>(__fmul_rn(v[k][e], inverse))));
        *reinterpret_cast<uint4*>(dst + i) = o;
    }
}

// One block per (token, head): thread i rotates the pair (i, i + dim/2) of its head:
//   x1' = round(round(x1 * cos) + round(-x2 * sin)),  x2' = round(round(x2 * cos) + round(x1 * sin))
// with cos and sin first rounded to T: the rounding of the TorchSharp expression x * cos + rotate_half(x) * sin in T.
template <typename T>
__global__ void rope_store_kv_kernel(T* qkv, int64_t qkv_stride, const int32_t* positions, const int32_t* slots,
                                     const float* cos, const float* sin, T* k_cache, T* v_cache, int heads, int kv_heads,
                                     int dim)
{
    wait_for_prior_kernel();
    allow_next_kernel();
    const int token = blockIdx.x, head = blockIdx.y;
    const int half = dim / 2;
    T* row = qkv + token * qkv_stride;
    const int slot = slots[token];
    const int rotated_heads = heads + kv_heads;
    if (head == rotated_heads) {  // the last block of a token stores its values
        if (slot < 0) return;
        constexpr int kVec = 16 / sizeof(T);
        const T* v = row + rotated_heads * dim;
        T* dst = v_cache + static_cast<int64_t>(slot) * kv_heads * dim;
        if ((reinterpret_cast<uintptr_t>(v) | reinterpret_cast<uintptr_t>(dst)) % 16 == 0 && dim % kVec == 0) {
            for (int i = threadIdx.x; i < kv_heads * dim / kVec; i += blockDim.x)
                reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(v)[i];
        } else {
            for (int i = threadIdx.x; i < kv_heads * dim; i += blockDim.x) dst[i] = v[i];
        }
        return;
    }
    const float* c = cos + static_cast<int64_t>(positions[token]) * dim;
    const float* s = sin + static_cast<int64_t>(positions[token]) * dim;

    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        T* h = row + head * dim;
        const float x1 = Num<T>::load(h[j]), x2 = Num<T>::load(h[j + half]);
        const float c1 = rounded<T>(c[j]), c2 = rounded<T>(c[j + half]);
        const float s1 = rounded<T>(s[j]), s2 = rounded<T>(s[j + half]);
        T y1, y2;
        rotate_pair(x1, x2, c1, c2, s1, s2, y1, y2);
        h[j] = y1;
        h[j + half] = y2;
        if (head >= heads && slot >= 0) {
            T* k = k_cache + (static_cast<int64_t>(slot) * kv_heads + (head - heads)) * dim;
            k[j] = y1;
            k[j + half] = y2;
        }
    }
}

template <typename T>
__global__ void silu_mul_kernel(T* out, const T* gate_up, int width, int64_t total)
{
    wait_for_prior_kernel();
    allow_next_kernel();
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const int64_t t = i / width, j = i % width;
        const float g = Num<T>::load(gate_up[t * 2 * width + j]);
        const float u = Num<T>::load(gate_up[t * 2 * width + width + j]);
        const float silu = rounded<T>(g / (1.f + expf(-g)));
        out[i] = Num<T>::round(__fmul_rn(silu, u));
    }
}

}  // namespace

cudaError_t rms_norm(DType dtype, void* out, int64_t out_stride, const void* x, int64_t x_stride, void* residual,
                     const void* weight, int rows, int cols, int group, float eps, cudaStream_t stream)
{
    if (rows == 0) return cudaSuccess;
    return dispatch(dtype, [&](auto* type) {
        using T = std::remove_pointer_t<decltype(type)>;
        constexpr int kVec = 16 / sizeof(T);
        const int vectors = cols / kVec;
        const int vector_threads = vectors >= kNormThreads ? kNormThreads : ((vectors + 31) / 32) * 32;
        const int per_thread = (vectors + vector_threads - 1) / vector_threads;
        const bool aligned = cols % kVec == 0 && x_stride % kVec == 0 && out_stride % kVec == 0 && per_thread <= 4 &&
                             aligned16(out) && aligned16(x) && aligned16(weight) && (residual == nullptr || aligned16(residual));
        auto run = [&](auto kernel, int threads) {
            return launch_kernel(kernel, rows, threads, 0, stream, static_cast<T*>(out), out_stride, static_cast<const T*>(x), x_stride,
                                 static_cast<T*>(residual), static_cast<const T*>(weight), cols, group, eps);
        };
        if (aligned && per_thread == 1) return run(rms_norm_vector_kernel<T, 1>, vector_threads);
        if (aligned && per_thread == 2) return run(rms_norm_vector_kernel<T, 2>, vector_threads);
        if (aligned) return run(rms_norm_vector_kernel<T, 4>, vector_threads);
        return run(rms_norm_kernel<T>, cols >= kNormThreads ? kNormThreads : ((cols + 31) / 32) * 32);
    });
}

cudaError_t rope_store_kv(DType dtype, void* qkv, int64_t qkv_stride, const int32_t* positions, const int32_t* slots,
                          const float* cos, const float* sin, void* k_cache, void* v_cache, int tokens, int heads,
                          int kv_heads, int dim, cudaStream_t stream)
{
    if (tokens == 0) return cudaSuccess;
    return dispatch(dtype, [&](auto* type) {
        using T = std::remove_pointer_t<decltype(type)>;
        // A block per (token, rotated head), and one more per token that stores its values.
        return launch_kernel(rope_store_kv_kernel<T>, dim3(tokens, heads + kv_heads + 1), 128, 0, stream, static_cast<T*>(qkv), qkv_stride,
                             positions, slots, cos, sin, static_cast<T*>(k_cache), static_cast<T*>(v_cache), heads, kv_heads, dim);
    });
}

cudaError_t silu_mul(DType dtype, void* out, const void* gate_up, int tokens, int width, cudaStream_t stream)
{
    const int64_t total = static_cast<int64_t>(tokens) * width;
    if (total == 0) return cudaSuccess;
    return dispatch(dtype, [&](auto* type) {
        using T = std::remove_pointer_t<decltype(type)>;
        const int threads = 256;
        const int64_t blocks = (total + threads - 1) / threads;
        return launch_kernel(silu_mul_kernel<T>, static_cast<unsigned>(blocks < 65535 * 8 ? blocks : 65535 * 8), threads, 0, stream,
                             static_cast<T*>(out), static_cast<const T*>(gate_up), width, total);
    });
}

}  // namespace disagg
