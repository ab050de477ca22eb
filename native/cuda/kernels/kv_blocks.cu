// Block copies between KV pools for transfers: one kernel moves every (layer, K/V, block) slab straight from the source
// pool to the destination pool, instead of a gather into a temporary, a device-to-device copy and a scatter.
#include "kernels.h"

namespace disagg {
namespace {

__global__ void copy_blocks_kernel(const uint4* src, int64_t src_blocks, uint4* dst, int64_t dst_blocks, const int32_t* ids,
                                   int count, int layer_begin, int64_t vectors_per_block)
{
    // blockIdx.x: block pair; blockIdx.y: (layer - layer_begin) * 2 + K/V.
    const int pair = blockIdx.x;
    const int64_t slab = static_cast<int64_t>(layer_begin) * 2 + blockIdx.y;
    const uint4* from = src + (slab * src_blocks + ids[pair]) * vectors_per_block;
    uint4* to = dst + (slab * dst_blocks + ids[count + pair]) * vectors_per_block;
    for (int64_t i = threadIdx.x; i < vectors_per_block; i += blockDim.x) to[i] = from[i];
}

}  // namespace

cudaError_t copy_blocks(const void* src, int64_t src_blocks, void* dst, int64_t dst_blocks, const int32_t* ids, int count,
                        int layer_begin, int layer_end, int64_t block_bytes, cudaStream_t stream)
{
    if (block_bytes % 16 != 0 || layer_end < layer_begin) return cudaErrorInvalidValue;
    if (count == 0 || layer_end == layer_begin) return cudaSuccess;
    dim3 grid(count, (layer_end - layer_begin) * 2);
    copy_blocks_kernel<<<grid, 256, 0, stream>>>(static_cast<const uint4*>(src), src_blocks, static_cast<uint4*>(dst), dst_blocks,
                                                 ids, count, layer_begin, block_bytes / 16);
    return cudaGetLastError();
}

}  // namespace disagg
