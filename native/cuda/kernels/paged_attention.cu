// Decode attention over the paged KV cache (one query token per sequence), grouped-query aware and split over the
// context ("flash decoding"): a CTA per (sequence, kv head, partition of the context) loads each key and value once for
// all the query heads that share it; the last of a (sequence, kv head)'s CTAs to finish merges the partitions' softmax
// statistics (a counter per pair tells it that it is the last).
//
// The number of partitions is fixed per launch (so a captured graph replays with any context) and each sequence's live
// context is divided among them: a short context spreads over many CTAs instead of leaving all but one per head idle.
//
// Inside a CTA every thread works on each chunk of keys: scoring (8 lanes per key), the online softmax (a warp per
// query head), then the weighted sum of the value rows (a 16-byte slice of a row per thread); paged_attention.cuh
// says how. This file checks the arguments and picks the element type's instantiation.
#include "kernels.h"

namespace disagg {

cudaError_t paged_attention_bf16(const PagedAttention& a, cudaStream_t stream);
cudaError_t paged_attention_f16(const PagedAttention& a, cudaStream_t stream);
cudaError_t paged_attention_f32(const PagedAttention& a, cudaStream_t stream);

cudaError_t paged_attention(const PagedAttention& a, cudaStream_t stream)
{
    const int groups = a.kv_heads > 0 ? a.heads / a.kv_heads : 0;
    if (groups < 1 || groups > 16 || a.heads % a.kv_heads != 0 || a.dim > 256 || a.dim % 8 != 0 || a.partitions < 1 ||
        a.partitions > kMaxAttentionPartitions)
        return cudaErrorInvalidValue;
    if (a.batch == 0) return cudaSuccess;
    if (a.partitions > 1 && (a.workspace == nullptr || a.counters == nullptr)) return cudaErrorInvalidValue;
    switch (a.dtype) {
        case DType::BFloat16: return paged_attention_bf16(a, stream);
        case DType::Float16: return paged_attention_f16(a, stream);
        case DType::Float32: return paged_attention_f32(a, stream);
    }
    return cudaErrorInvalidValue;
}

}  // namespace disagg
