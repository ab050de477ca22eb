// The thin linear kernel (see gemv.cu), instantiated once per element type in gemv_<type>.cu so that the three compile
// in parallel.
#pragma once
#include <type_traits>

#include "launch.cuh"
#include "numeric.cuh"

namespace disagg {
namespace {

constexpr int kGemvWarps = 8;
constexpr int kHeadVectors = 4;  // weight vectors per lane requested first
// Weight vectors per lane requested together past the first ones (a build-time knob for tuning runs,
// -DDISAGG_GEMV_BATCH=n; 1: a plain loop).
#ifndef DISAGG_GEMV_BATCH
#define DISAGG_GEMV_BATCH 1
#endif
// Warps a layer should keep streaming weights: one with fewer output rows than this splits each row over 2 or 4 warps
// of a CTA (a build-time knob for tuning runs, -DDISAGG_GEMV_TARGET_WARPS=n; 0: a warp per row always).
#ifndef DISAGG_GEMV_TARGET_WARPS
#define DISAGG_GEMV_TARGET_WARPS 2048
#endif
constexpr int kMaxGemvSplit = 4;
// Fewest CTAs of the kernel an SM should fit (0: the compiler's choice of registers), for tuning runs.
#ifndef DISAGG_GEMV_MIN_BLOCKS
#define DISAGG_GEMV_MIN_BLOCKS 0
#endif

__device__ __forceinline__ uint4 load_streaming(const void* p)
{
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// What the rope mode's epilogue needs of row m of x besides the product, for the pair = h * dim/2 + j of rows (j,
// j + dim/2) of head h: the cos/sin of its position (rounded to T) and its cache slot. Positions and slots are the step's
// inputs, uploaded before its first kernel, and cos/sin constants: they are read before the programmatic-launch wait.
struct Rotary {
    float c1, c2, s1, s2;
    int slot;
};

template <typename T>
__device__ Rotary rotary_of(const RopeKv& r, int m, int pair)
{
    const int half = r.dim / 2, j = pair % half;
    const int64_t at = static_cast<int64_t>(r.positions[m]) * r.dim + j;
    return {rounded<T>(r.cos[at]), rounded<T>(r.cos[at + half]), rounded<T>(r.sin[at]), rounded<T>(r.sin[at + half]), r.slots[m]};
}

// The epilogue of the rope mode for row m of x: (x1, x2) are outputs (j, j + dim/2) of head h (rounded to T), where
// pair = h * dim/2 + j. Lane 0 calls it.
template <typename T>
__device__ void store_rotated(const RopeKv& r, T* out, int m, int n_out, int pair, float x1, float x2, const Rotary& rot)
{
    const int half = r.dim / 2, h = pair / half, j = pair - h * half;
    T y1 = Num<T>::round(x1), y2 = Num<T>::round(x2);
    if (h < r.heads + r.kv_heads) rotate_pair(x1, x2, rot.c1, rot.c2, rot.s1, rot.s2, y1, y2);  // q and k rotate; v is stored as is
    T* row = out + static_cast<int64_t>(m) * n_out + h * r.dim;
    row[j] = y1;
    row[j + half] = y2;
    const int slot = rot.slot;
    if (h >= r.heads && slot >= 0) {
        const bool key = h < r.heads + r.kv_heads;
        const int kv_head = h - r.heads - (key ? 0 : r.kv_heads);
        T* cached = static_cast<T*>(key ? r.k_cache : r.v_cache) + (static_cast<int64_t>(slot) * r.kv_heads + kv_head) * r.dim;
        cached[j] = y1;
        cached[j + half] = y2;
    }
}

// SPLIT warps share each output row (1, 2 or 4): part p of a row takes its vectors p * 32 + lane + 32 * SPLIT * i, and
// the parts' sums are added in order through shared memory, so the result does not depend on timing.
template <typename T, int M, bool GATED, bool NORM, bool ADD, bool ROPE, int SPLIT>
__global__ void __launch_bounds__(kGemvWarps * 32, DISAGG_GEMV_MIN_BLOCKS)
    gemv_kernel(T* out, const T* x, int64_t x_stride, const T* w, const T* bias, const T* norm, float eps, int n_out, int k, RopeKv rope)
{
    constexpr int split = SPLIT;
    constexpr int kVector = 16 / sizeof(T);
    constexpr int R = GATED || ROPE ? 2 : 1;  // weight rows per warp: gate and up, or a rotary pair
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int part = warp % split;                               // which share of the row's vectors the warp takes
    const int n = blockIdx.x * (kGemvWarps / split) + warp / split;  // the warp's output row (rope: its pair of rows)
    const int vectors = k / kVector;
    const int start = part * 32 + lane, stride = 32 * split;  // the lane's first vector, and the step to its next
    int first = n, second = n + n_out;  // weight rows: the output's, and the up row of a gated pair
    if (ROPE) {
        const int half = rope.dim / 2;
        first = n / half * rope.dim + n % half;
        second = first + half;
    }

    // The warp's first weight vectors are requested before anything else, so that their latency overlaps the wait for
    // the kernel before this one (see launch.cuh) and the normalisation statistics (for a small model's rows that is the
    // whole row: the kernel is one round trip).
    const bool active = n < (ROPE ? n_out / 2 : n_out);  // a warp past the last row still helps with the statistics
    const T* rows[R];
    rows[0] = w + static_cast<int64_t>(active ? first : 0) * k;
    if (R == 2) rows[1] = w + static_cast<int64_t>(active ? second : 0) * k;
    uint4 head[kHeadVectors][R];
#pragma unroll
    for (int i = 0; i < kHeadVectors; i++) {
        const int v = start + stride * i;
#pragma unroll
        for (int r = 0; r < R; r++) head[i][r] = active && v < vectors ? load_streaming(rows[r] + static_cast<int64_t>(v) * kVector) : make_uint4(0, 0, 0, 0);
    }

    Rotary rotary[ROPE ? M : 1];
    if (ROPE && active) {
#pragma unroll
        for (int m = 0; m < M; m++) rotary[m] = rotary_of<T>(rope, m, n);
    }

    // Only weights and the step's inputs are read before this: x is what the kernel before this one writes.
    wait_for_prior_kernel();
    allow_next_kernel();

    __shared__ float inverse[M];  // 1 / RMS of each row of x
    if (NORM) {
        __shared__ float partial[kGemvWarps][M];
        float sums[M];
#pragma unroll
        for (int m = 0; m < M; m++) sums[m] = 0.f;
        for (int v = threadIdx.x; v < vectors; v += kGemvWarps * 32) {
#pragma unroll
            for (int m = 0; m < M; m++) {
                const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + m * x_stride + static_cast<int64_t>(v) * kVector));
                const T* xe = reinterpret_cast<const T*>(&xv);
#pragma unroll
                for (int e = 0; e < kVector; e++) sums[m] += Num<T>::load(xe[e]) * Num<T>::load(xe[e]);
            }
        }
#pragma unroll
        for (int m = 0; m < M; m++) {
            const float s = warp_sum(sums[m]);
            if (lane == 0) partial[warp][m] = s;
        }
        __syncthreads();
        if (threadIdx.x < M) {
            float total = 0.f;
            for (int i = 0; i < kGemvWarps; i++) total += partial[i][threadIdx.x];
            inverse[threadIdx.x] = rsqrtf(total / k + eps);
        }
        __syncthreads();
    }

    float acc[R][M];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = 0.f;
    auto accumulate = [&](const uint4 (&wv)[R], int v) {
        uint4 nv;
        if (NORM) nv = __ldg(reinterpret_cast<const uint4*>(norm + static_cast<int64_t>(v) * kVector));
        const T* ne = reinterpret_cast<const T*>(&nv);
#pragma unroll
        for (int m = 0; m < M; m++) {
            const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + m * x_stride + static_cast<int64_t>(v) * kVector));
            const T* xe = reinterpret_cast<const T*>(&xv);
            float xf[kVector];
#pragma unroll
            for (int e = 0; e < kVector; e++)
                xf[e] = NORM ? rounded<T>(__fmul_rn(Num<T>::load(ne[e]), rounded<T>(__fmul_rn(Num<T>::load(xe[e]), inverse[m]))))
                             : Num<T>::load(xe[e]);
#pragma unroll
            for (int r = 0; r < R; r++) {
                const T* we = reinterpret_cast<const T*>(&wv[r]);
#pragma unroll
                for (int e = 0; e < kVector; e++) acc[r][m] += Num<T>::load(we[e]) * xf[e];
            }
        }
    };
    if (active) {  // a warp past the last row only helps with the statistics and meets the barrier below
#pragma unroll
        for (int i = 0; i < kHeadVectors; i++)
            if (start + stride * i < vectors) accumulate(head[i], start + stride * i);
        // The rest of a long row (a down projection's). kBatch > 1 requests a batch of vectors per lane before using any;
        // 1 is a plain loop unrolled by 4 (the compiler interleaves it), which measured as fast or faster on an H100.
        constexpr int kBatch = DISAGG_GEMV_BATCH / R > 1 ? DISAGG_GEMV_BATCH / R : 1;
        if constexpr (kBatch == 1) {
#pragma unroll 4
            for (int v = start + stride * kHeadVectors; v < vectors; v += stride) {
                uint4 wv[R];
#pragma unroll
                for (int r = 0; r < R; r++) wv[r] = load_streaming(rows[r] + static_cast<int64_t>(v) * kVector);
                accumulate(wv, v);
            }
        } else {
#pragma unroll 1
            for (int first = start + stride * kHeadVectors; first < vectors; first += stride * kBatch) {
                uint4 wv[kBatch][R];
#pragma unroll
                for (int i = 0; i < kBatch; i++) {
                    const int v = first + stride * i;
#pragma unroll
                    for (int r = 0; r < R; r++) wv[i][r] = v < vectors ? load_streaming(rows[r] + static_cast<int64_t>(v) * kVector) : make_uint4(0, 0, 0, 0);
                }
#pragma unroll
                for (int i = 0; i < kBatch; i++)
                    if (first + stride * i < vectors) accumulate(wv[i], first + stride * i);
            }
        }
    }

    // The row's sums: the warp's own, or with a split row the parts' added in order by part 0.
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = warp_sum(acc[r][m]);
    if constexpr (split > 1) {
        __shared__ float parts[kGemvWarps][R][M];
        if (lane == 0) {
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int m = 0; m < M; m++) parts[warp][r][m] = acc[r][m];
        }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int m = 0; m < M; m++) {
                float sum = 0.f;
                for (int p = 0; p < split; p++) sum += parts[warp - part + p][r][m];
                acc[r][m] = sum;
            }
    }
    if (!active || part != 0) return;

#pragma unroll
    for (int m = 0; m < M; m++) {
        float value = acc[0][m] + (bias != nullptr ? Num<T>::load(bias[first]) : 0.f);
        if (ROPE) {
            const float other = rounded<T>(acc[1][m] + (bias != nullptr ? Num<T>::load(bias[second]) : 0.f));
            if (lane == 0) store_rotated(rope, out, m, n_out, n, rounded<T>(value), other, rotary[m]);
            continue;
        }
        if (GATED) {
            const float up = rounded<T>(acc[R - 1][m] + (bias != nullptr ? Num<T>::load(bias[second]) : 0.f));
            const float gate = rounded<T>(value);
            value = __fmul_rn(rounded<T>(gate / (1.f + expf(-gate))), up);
        }
        if (lane == 0) {
            T* to = out + static_cast<int64_t>(m) * n_out + n;
            *to = ADD ? Num<T>::round(__fadd_rn(Num<T>::load(*to), rounded<T>(value))) : Num<T>::round(value);
        }
    }
}

template <typename T, bool GATED, bool NORM, bool ADD, bool ROPE>
cudaError_t launch_gemv(const Gemv& g, cudaStream_t stream)
{
    const int rows = ROPE ? g.n_out / 2 : g.n_out, vectors = g.k / (16 / static_cast<int>(sizeof(T)));
    // A layer of few, long rows (a small model's down projection: 896 rows of 4864) would leave most SMs a few warps,
    // each with a long chain of loads; its rows are split over more warps while every lane still gets a vector.
    int split = 1;
    while (split < kMaxGemvSplit && static_cast<int64_t>(rows) * split < DISAGG_GEMV_TARGET_WARPS && vectors >= 64 * split) split *= 2;
    const int per_cta = kGemvWarps / split;
    const dim3 grid((rows + per_cta - 1) / per_cta), block(kGemvWarps * 32);
    const RopeKv rope = ROPE ? *g.rope : RopeKv{};
    auto run = [&](auto kernel) {
        return launch_kernel(kernel, grid, block, 0, stream, static_cast<T*>(g.out), static_cast<const T*>(g.x), g.x_stride,
                             static_cast<const T*>(g.w), static_cast<const T*>(g.bias), static_cast<const T*>(g.norm), g.eps, g.n_out, g.k, rope);
    };
    auto rows_of = [&](auto split) {  // the kernel for the step's rows, with SPLIT a constant
        constexpr int S = decltype(split)::value;
        switch (g.rows) {
            case 1: return run(gemv_kernel<T, 1, GATED, NORM, ADD, ROPE, S>);
            case 2: return run(gemv_kernel<T, 2, GATED, NORM, ADD, ROPE, S>);
            case 3: return run(gemv_kernel<T, 3, GATED, NORM, ADD, ROPE, S>);
            case 4: return run(gemv_kernel<T, 4, GATED, NORM, ADD, ROPE, S>);
            default: return cudaErrorInvalidValue;
        }
    };
    if (split == 4) return rows_of(std::integral_constant<int, 4>{});
    if (split == 2) return rows_of(std::integral_constant<int, 2>{});
    return rows_of(std::integral_constant<int, 1>{});
}

// Launches the kernel for the modes g asks for, with elements of type T.
template <typename T>
cudaError_t launch_typed(const Gemv& g, cudaStream_t stream)
{
    const bool norm = g.norm != nullptr;
    if (g.rope != nullptr) return norm ? launch_gemv<T, false, true, false, true>(g, stream) : launch_gemv<T, false, false, false, true>(g, stream);
    if (g.gated) return norm ? launch_gemv<T, true, true, false, false>(g, stream) : launch_gemv<T, true, false, false, false>(g, stream);
    if (g.accumulate) return norm ? launch_gemv<T, false, true, true, false>(g, stream) : launch_gemv<T, false, false, true, false>(g, stream);
    return norm ? launch_gemv<T, false, true, false, false>(g, stream) : launch_gemv<T, false, false, false, false>(g, stream);
}

}  // namespace
}  // namespace disagg
