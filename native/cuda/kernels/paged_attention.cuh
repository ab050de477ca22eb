// The decode-attention kernels (see paged_attention.cu), instantiated once per element type in paged_attention_<type>.cu
// so that the three compile in parallel.
#pragma once
#include <cfloat>

#include "numeric.cuh"

namespace disagg {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRowsInFlight = 8;      // value rows whose loads a warp issues together

// GROUPS: most query heads per kv head this instantiation handles; DPL: output elements per lane (dim <= 32 * DPL).
template <typename T, int GROUPS, int DPL>
__global__ void __launch_bounds__(kThreads) attention_partition_kernel(PagedAttention a)
{
    const int b = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int groups = a.heads / a.kv_heads;
    const int dim = a.dim;
    const int context = a.context_lens[b];
    const int first = a.window > 0 ? max(0, context - a.window) : 0;
    const int size = ((context - first + a.partitions - 1) / a.partitions + 31) & ~31;  // whole tiles of 32 keys
    const int begin = first + part * size;
    const int end = min(context, begin + size);
    if (a.partitions > 1 && begin >= end) {  // nothing to attend to: tell the merge (l = 0) and stop
        if (threadIdx.x < groups)
            a.workspace[((static_cast<int64_t>(b) * a.heads + kvh * groups + threadIdx.x) * a.partitions + part) * (dim + 2) + dim + 1] = 0.f;
        return;
    }

    extern __shared__ float shared[];
    float* q = shared;                       // [GROUPS][dim]
    float* stats = q + GROUPS * dim;         // [kWarps][GROUPS][2]: max, sum
    float* merged = stats + kWarps * GROUPS * 2;  // [GROUPS][dim]

    const T* q_row = static_cast<const T*>(a.q) + b * a.q_stride + kvh * groups * dim;
    for (int i = threadIdx.x; i < groups * dim; i += kThreads) q[i] = Num<T>::load(q_row[i]) * a.scale;
    for (int i = threadIdx.x; i < GROUPS * dim; i += kThreads) merged[i] = 0.f;
    __syncthreads();

    float m[GROUPS], l[GROUPS], acc[GROUPS][DPL];
#pragma unroll
    for (int g = 0; g < GROUPS; g++) {
        m[g] = -FLT_MAX;
        l[g] = 0.f;
#pragma unroll
        for (int e = 0; e < DPL; e++) acc[g][e] = 0.f;
    }

    const int32_t* table = a.block_tables + static_cast<int64_t>(b) * a.max_blocks;
    const T* k_base = static_cast<const T*>(a.k_cache);
    const T* v_base = static_cast<const T*>(a.v_cache);
    const int64_t slot_stride = static_cast<int64_t>(a.kv_heads) * dim;
    constexpr int kVector = 16 / sizeof(T);

    for (int tile = begin + warp * 32; tile < end; tile += kWarps * 32) {
        const int key = tile + lane;
        const bool valid = key < end;
        int64_t slot = 0;
        if (valid) slot = static_cast<int64_t>(__ldg(table + key / a.block_size)) * a.block_size + key % a.block_size;
        const T* k_row = k_base + slot * slot_stride + kvh * dim;

        float score[GROUPS];
#pragma unroll
        for (int g = 0; g < GROUPS; g++) score[g] = 0.f;
        if (valid) {
            // Fully unrolled over the largest dim this instantiation handles, so that every 16-byte load of the row can
            // be issued before the first product waits on one.
#pragma unroll
            for (int d = 0; d < 32 * DPL; d += kVector) {
                if (d >= dim) continue;
                const uint4 packed = __ldg(reinterpret_cast<const uint4*>(k_row + d));
                const T* k = reinterpret_cast<const T*>(&packed);
#pragma unroll
                for (int e = 0; e < kVector; e++) {
                    const float kv = Num<T>::load(k[e]);
#pragma unroll
                    for (int g = 0; g < GROUPS; g++)
                        if (g < groups) score[g] += q[g * dim + d + e] * kv;
                }
            }
        }

        float p[GROUPS];
#pragma unroll
        for (int g = 0; g < GROUPS; g++) {
            if (g >= groups) continue;
            const float tile_max = warp_max(valid ? score[g] : -FLT_MAX);
            const float next = fmaxf(m[g], tile_max);
            p[g] = valid ? __expf(score[g] - next) : 0.f;
            const float correction = __expf(m[g] - next);
            l[g] = l[g] * correction + warp_sum(p[g]);
            m[g] = next;
#pragma unroll
            for (int e = 0; e < DPL; e++) acc[g][e] *= correction;
        }

        // Value rows eight at a time, their loads issued before any is used (rows past the tile's end weigh 0).
        const int count = min(32, end - tile);
        for (int i0 = 0; i0 < count; i0 += kRowsInFlight) {
            float v[kRowsInFlight][DPL];
#pragma unroll
            for (int j = 0; j < kRowsInFlight; j++) {
                const int i = (i0 + j) & 31;
                const long long slot_i = __shfl_sync(0xffffffffu, static_cast<long long>(slot), i);
                const T* v_row = v_base + slot_i * slot_stride + kvh * dim;
#pragma unroll
                for (int e = 0; e < DPL; e++) {
                    const int d = lane + 32 * e;
                    v[j][e] = (i0 + j < count && d < dim) ? Num<T>::load(__ldg(v_row + d)) : 0.f;
                }
            }
#pragma unroll
            for (int j = 0; j < kRowsInFlight; j++) {
#pragma unroll
                for (int g = 0; g < GROUPS; g++) {
                    if (g >= groups) continue;
                    const float pi = __shfl_sync(0xffffffffu, p[g], (i0 + j) & 31);
#pragma unroll
                    for (int e = 0; e < DPL; e++) acc[g][e] += pi * v[j][e];
                }
            }
        }
    }

    // Merge the warps: rescale each warp's sums to the CTA-wide max.
    if (lane == 0) {
#pragma unroll
        for (int g = 0; g < GROUPS; g++) {
            stats[(warp * GROUPS + g) * 2] = m[g];
            stats[(warp * GROUPS + g) * 2 + 1] = l[g];
        }
    }
    __syncthreads();
#pragma unroll
    for (int g = 0; g < GROUPS; g++) {
        if (g >= groups) continue;
        float total_max = -FLT_MAX;
        for (int w = 0; w < kWarps; w++) total_max = fmaxf(total_max, stats[(w * GROUPS + g) * 2]);
        const float factor = l[g] > 0.f ? __expf(m[g] - total_max) : 0.f;
#pragma unroll
        for (int e = 0; e < DPL; e++) {
            const int d = lane + 32 * e;
            if (d < dim) atomicAdd(&merged[g * dim + d], acc[g][e] * factor);
        }
    }
    __syncthreads();

    for (int g = 0; g < groups; g++) {
        float total_max = -FLT_MAX, total_sum = 0.f;
        for (int w = 0; w < kWarps; w++) total_max = fmaxf(total_max, stats[(w * GROUPS + g) * 2]);
        for (int w = 0; w < kWarps; w++) {
            const float lw = stats[(w * GROUPS + g) * 2 + 1];
            if (lw > 0.f) total_sum += lw * __expf(stats[(w * GROUPS + g) * 2] - total_max);
        }
        const int head = kvh * groups + g;
        if (a.partitions == 1) {
            T* out = static_cast<T*>(a.out) + (static_cast<int64_t>(b) * a.heads + head) * dim;
            const float inverse = total_sum > 0.f ? 1.f / total_sum : 0.f;
            for (int d = threadIdx.x; d < dim; d += kThreads) out[d] = Num<T>::round(merged[g * dim + d] * inverse);
        } else {
            float* ws = a.workspace + ((static_cast<int64_t>(b) * a.heads + head) * a.partitions + part) * (dim + 2);
            for (int d = threadIdx.x; d < dim; d += kThreads) ws[d] = merged[g * dim + d];
            if (threadIdx.x == 0) {
                ws[dim] = total_max;
                ws[dim + 1] = total_sum;
            }
        }
    }
}

// One CTA per (sequence, query head): warp 0 turns the partitions' (max, sum) into weights exp(m_p - M) in shared
// memory, then every thread sums its output elements over the partitions that saw keys (always a prefix: the kernel
// above fills partitions in order).
template <typename T>
__global__ void attention_merge_kernel(PagedAttention a)
{
    const int b = blockIdx.x, head = blockIdx.y;
    const int dim = a.dim, stride = dim + 2;
    const float* ws = a.workspace + (static_cast<int64_t>(b) * a.heads + head) * a.partitions * stride;
    extern __shared__ float weight[];  // [partitions], then the inverse of the total sum and the count used
    if (threadIdx.x < 32) {
        const int lane = threadIdx.x;
        float local_max = -FLT_MAX;
        for (int p = lane; p < a.partitions; p += 32)
            if (ws[p * stride + dim + 1] > 0.f) local_max = fmaxf(local_max, ws[p * stride + dim]);
        const float total_max = warp_max(local_max);
        float local_sum = 0.f;
        int used = 0;  // partitions that saw keys
        for (int p = lane; p < a.partitions; p += 32) {
            const float l = ws[p * stride + dim + 1];
            const float w = l > 0.f ? __expf(ws[p * stride + dim] - total_max) : 0.f;
            weight[p] = w;
            local_sum += l * w;
            used += l > 0.f ? 1 : 0;
        }
        const float total_sum = warp_sum(local_sum);
        for (int o = 16; o > 0; o >>= 1) used += __shfl_xor_sync(0xffffffffu, used, o);
        if (lane == 0) {
            weight[a.partitions] = total_sum > 0.f ? 1.f / total_sum : 0.f;
            weight[a.partitions + 1] = __int_as_float(used);
        }
    }
    __syncthreads();
    const float inverse = weight[a.partitions];
    const int used = __float_as_int(weight[a.partitions + 1]);
    T* out = static_cast<T*>(a.out) + (static_cast<int64_t>(b) * a.heads + head) * dim;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        float sum = 0.f;
#pragma unroll 8
        for (int p = 0; p < used; p++) sum += ws[p * stride + d] * weight[p];
        out[d] = Num<T>::round(sum * inverse);
    }
}

template <typename T, int GROUPS, int DPL>
cudaError_t launch(const PagedAttention& a, cudaStream_t stream)
{
    const size_t shared = (2 * GROUPS * a.dim + kWarps * GROUPS * 2) * sizeof(float);
    auto kernel = attention_partition_kernel<T, GROUPS, DPL>;
    if (shared > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
        if (e != cudaSuccess) return e;
    }
    kernel<<<dim3(a.batch, a.kv_heads, a.partitions), kThreads, shared, stream>>>(a);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess || a.partitions == 1) return e;
    attention_merge_kernel<T><<<dim3(a.batch, a.heads), a.dim < 128 ? 128 : a.dim, (a.partitions + 2) * sizeof(float), stream>>>(a);
    return cudaGetLastError();
}

template <typename T, int GROUPS>
cudaError_t launch_dim(const PagedAttention& a, cudaStream_t stream)
{
    if (a.dim <= 32) return launch<T, GROUPS, 1>(a, stream);
    if (a.dim <= 64) return launch<T, GROUPS, 2>(a, stream);
    if (a.dim <= 128) return launch<T, GROUPS, 4>(a, stream);
    return launch<T, GROUPS, 8>(a, stream);
}

template <typename T>
cudaError_t launch_groups(const PagedAttention& a, cudaStream_t stream)
{
    const int groups = a.heads / a.kv_heads;
    if (groups == 1) return launch_dim<T, 1>(a, stream);
    if (groups <= 2) return launch_dim<T, 2>(a, stream);
    if (groups <= 4) return launch_dim<T, 4>(a, stream);
    if (groups <= 8) return launch_dim<T, 8>(a, stream);
    return launch_dim<T, 16>(a, stream);
}

}  // namespace
}  // namespace disagg
