// Linear layers of decode steps with 1 to 4 rows: out[m, n] = x[m, :] . w[n, :] (+ bias[n]) for a PyTorch linear
// weight w [n_out, k]. cuBLAS tiles such thin products (and splits a long k over CTAs with a second reduction kernel);
// here a warp streams one weight row with 16-byte loads that skip L1 (the rows of x stay there) and multiplies it with
// every row of x, so each weight is read once, in one kernel. Gated: w holds [gate; up] (2 * n_out rows) and
// out = silu(gate) * up, rounded as the silu_mul kernel rounds, so that the MLP's activation needs no kernel of its own.
#include "numeric.cuh"

namespace disagg {
namespace {

constexpr int kGemvWarps = 8;

__device__ __forceinline__ uint4 load_streaming(const void* p)
{
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

template <typename T, int M, bool GATED>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_kernel(T* out, const T* x, int64_t x_stride, const T* w, const T* bias, int n_out, int k)
{
    constexpr int kVector = 16 / sizeof(T);
    constexpr int R = GATED ? 2 : 1;  // weight rows per warp: gate and up
    const int lane = threadIdx.x & 31;
    const int n = blockIdx.x * kGemvWarps + (threadIdx.x >> 5);
    if (n >= n_out) return;
    const T* rows[R];
    rows[0] = w + static_cast<int64_t>(n) * k;
    if (GATED) rows[R - 1] = w + static_cast<int64_t>(n + n_out) * k;

    float acc[R][M];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = 0.f;

    const int vectors = k / kVector;
#pragma unroll 4
    for (int v = lane; v < vectors; v += 32) {
        uint4 wv[R];
#pragma unroll
        for (int r = 0; r < R; r++) wv[r] = load_streaming(rows[r] + static_cast<int64_t>(v) * kVector);
#pragma unroll
        for (int m = 0; m < M; m++) {
            const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + m * x_stride + static_cast<int64_t>(v) * kVector));
            const T* xe = reinterpret_cast<const T*>(&xv);
#pragma unroll
            for (int r = 0; r < R; r++) {
                const T* we = reinterpret_cast<const T*>(&wv[r]);
#pragma unroll
                for (int e = 0; e < kVector; e++) acc[r][m] += Num<T>::load(we[e]) * Num<T>::load(xe[e]);
            }
        }
    }

#pragma unroll
    for (int m = 0; m < M; m++) {
        float value = warp_sum(acc[0][m]) + (bias != nullptr ? Num<T>::load(bias[n]) : 0.f);
        if (GATED) {
            const float up = rounded<T>(warp_sum(acc[R - 1][m]) + (bias != nullptr ? Num<T>::load(bias[n + n_out]) : 0.f));
            const float gate = rounded<T>(value);
            value = __fmul_rn(rounded<T>(gate / (1.f + expf(-gate))), up);
        }
        if (lane == 0) out[static_cast<int64_t>(m) * n_out + n] = Num<T>::round(value);
    }
}

template <typename T, bool GATED>
cudaError_t launch_gemv(void* out, const void* x, int64_t x_stride, const void* w, const void* bias, int rows, int n_out, int k, cudaStream_t stream)
{
    const dim3 grid((n_out + kGemvWarps - 1) / kGemvWarps), block(kGemvWarps * 32);
    auto args = [&](auto kernel) {
        kernel<<<grid, block, 0, stream>>>(static_cast<T*>(out), static_cast<const T*>(x), x_stride, static_cast<const T*>(w),
                                           static_cast<const T*>(bias), n_out, k);
    };
    switch (rows) {
        case 1: args(gemv_kernel<T, 1, GATED>); break;
        case 2: args(gemv_kernel<T, 2, GATED>); break;
        case 3: args(gemv_kernel<T, 3, GATED>); break;
        case 4: args(gemv_kernel<T, 4, GATED>); break;
        default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

}  // namespace

cudaError_t gemv(DType dtype, void* out, const void* x, int64_t x_stride, const void* w, const void* bias, int rows, int n_out, int k,
                 bool gated, cudaStream_t stream)
{
    if (rows < 1 || rows > kMaxGemvRows || k % 8 != 0) return cudaErrorInvalidValue;
    if (n_out == 0) return cudaSuccess;
    return dispatch(dtype, [&](auto* type) {
        using T = std::remove_pointer_t<decltype(type)>;
        return gated ? launch_gemv<T, true>(out, x, x_stride, w, bias, rows, n_out, k, stream)
                     : launch_gemv<T, false>(out, x, x_stride, w, bias, rows, n_out, k, stream);
    });
}

}  // namespace disagg
