// Attention for prompt chunks on FlashAttention-2 as PyTorch builds it (at::_flash_attention_forward, varlen form).
// TorchSharp's scaled_dot_product_attention cannot ask for what a chunk after a cached prefix needs: a causal mask aligned
// to the last key (query i of q_len sees keys j <= k_len - q_len + i), grouped KV heads without copying them, a sliding
// window. With an explicit mask SDPA falls back to its memory-efficient kernel, about three times slower than flash here.
#include <ATen/ops/_flash_attention_forward.h>
#include <c10/cuda/CUDAGuard.h>

#include "abi.h"

using namespace disagg;

// Sequences packed along the rows: q [total_q, heads, dim] (the last dim contiguous; rows may be strided, as in a fused
// qkv row), k and v [total_k, kv_heads, dim], cu_seqlens_q / cu_seqlens_k int32 [seqs + 1] on the device, max_q / max_k
// the longest of each. Causal, aligned to the last key; window > 0 also limits a query to the last `window` keys up to it.
// out: contiguous [total_q, heads, dim] of q's dtype (bfloat16 or float16).
//
// One sequence (total_q == max_q, total_k == max_k) runs in the fixed-length form, [1, n, heads, dim], unless flags has
// kPromptAttentionPacked. Only that form splits the keys among CTAs when the queries alone leave the GPU idle (FA2's
// split-KV): a 512-query chunk of 14 heads after 7,680 cached keys is 56 CTAs of 128 queries on 132 SMs in the packed
// form. The packed form is kept for several sequences.
constexpr int kPromptAttentionPacked = 1;

DISAGG_EXPORT int disagg_prompt_attention(const at::Tensor* out, const at::Tensor* q, const at::Tensor* k, const at::Tensor* v,
                                          const at::Tensor* cu_seqlens_q, const at::Tensor* cu_seqlens_k, int max_q, int max_k,
                                          int window, double scale, int flags)
{
    return guarded([&] {
        const auto& o = cuda_tensor(out, "out");
        const auto& query = cuda_tensor(q, "q");
        const auto& key = cuda_tensor(k, "k");
        const auto& value = cuda_tensor(v, "v");
        const auto& cu_q = cuda_tensor(cu_seqlens_q, "cu_seqlens_q");
        const auto& cu_k = cuda_tensor(cu_seqlens_k, "cu_seqlens_k");
        require(query.dim() == 3 && key.dim() == 3 && value.dim() == 3 && key.sizes() == value.sizes(),
                "q must be [total_q, heads, dim], k and v one [total_k, kv_heads, dim] shape");
        require(query.size(2) == key.size(2) && query.size(1) % key.size(1) == 0, "q's heads must be a multiple of k's, with one head dim");
        require(query.stride(2) == 1 && key.stride(2) == 1 && value.stride(2) == 1, "the head dim must be contiguous");
        require(query.scalar_type() == at::kBFloat16 || query.scalar_type() == at::kHalf, "flash attention needs bfloat16 or float16");
        require(key.scalar_type() == query.scalar_type() && value.scalar_type() == query.scalar_type() && o.scalar_type() == query.scalar_type(),
                "q, k, v and out must share a dtype");
        require(o.sizes() == query.sizes() && o.is_contiguous(), "out must be contiguous and shaped like q");
        require(cu_q.scalar_type() == at::kInt && cu_k.scalar_type() == at::kInt && cu_q.numel() == cu_k.numel() && cu_q.numel() >= 2,
                "cu_seqlens_q and cu_seqlens_k must be int32 of one length, seqs + 1");
        require(max_q > 0 && max_k >= max_q && window >= 0, "max_q must be positive, max_k at least max_q, window not negative");
        require((flags & ~kPromptAttentionPacked) == 0, "unknown prompt attention flags");
        c10::cuda::CUDAGuard guard(o.device());
        std::optional<int64_t> left, right;
        if (window > 0) left = window - 1, right = 0;
        // The fixed-length form takes [1, n, heads, dim] views and no cu_seqlens; the packed form the rows as they are.
        const bool fixed_length = (flags & kPromptAttentionPacked) == 0 && cu_q.numel() == 2 && query.size(0) == max_q && key.size(0) == max_k;
        const auto as_batch = [&](const at::Tensor& t) { return fixed_length ? t.unsqueeze(0) : t; };
        std::optional<at::Tensor> cu_q_or_none, cu_k_or_none;
        if (!fixed_length) cu_q_or_none = cu_q, cu_k_or_none = cu_k;
        auto result = at::_flash_attention_forward(as_batch(query), as_batch(key), as_batch(value), cu_q_or_none, cu_k_or_none, max_q, max_k,
                                                   /*dropout_p=*/0.0, /*is_causal=*/true, /*return_debug_mask=*/false, scale, left, right);
        o.view_as(std::get<0>(result)).copy_(std::get<0>(result));
    });
}
