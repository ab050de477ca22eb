// The fused decoder-layer kernels over TorchSharp tensors: shape and type checks, then a launch on the current PyTorch
// stream of the tensors' device (so they order with TorchSharp's own ops, and are captured into CUDA graphs with them).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "abi.h"

using namespace disagg;

namespace {
cudaStream_t stream_of(const at::Tensor& t) { return c10::cuda::getCurrentCUDAStream(t.device().index()).stream(); }

// A [tokens, cols] matrix, or a [tokens, heads, dim] view whose heads are adjacent: its row stride and group size.
void rows_of(const at::Tensor& t, const char* name, int64_t& rows, int64_t& cols, int64_t& stride, int64_t& group)
{
    require(t.stride(-1) == 1, std::string(name) + ": the last dimension must be contiguous");
    if (t.dim() == 2) {
        rows = t.size(0), cols = t.size(1), stride = t.stride(0), group = 1;
    } else {
        require(t.dim() == 3 && t.stride(1) == t.size(2), std::string(name) + ": expected [tokens, cols] or [tokens, heads, dim]");
        group = t.size(1), rows = t.size(0) * group, cols = t.size(2), stride = t.stride(0);
    }
}

// One layer's cache: k and v contiguous [slots, kv_heads, dim] of one shape.
void check_kv_cache(const at::Tensor& k, const at::Tensor& v, int kv_heads)
{
    require(k.dim() == 3 && k.is_contiguous() && v.is_contiguous() && k.sizes() == v.sizes() && k.size(1) == kv_heads &&
                v.scalar_type() == k.scalar_type(),
            "k_cache/v_cache must be contiguous [slots, kv_heads, dim] of one dtype");
}

// The rotary operands of a step over fused qkv rows (`rows` of `width` elements of `dtype`: [heads q | kv_heads k |
// kv_heads v] heads of the cache's dim): positions and slots (int32, one per row), cos/sin (float32 [positions, dim]),
// and the layer's cache.
RopeKv rope_of(int64_t rows, int64_t width, at::ScalarType dtype, const at::Tensor* positions, const at::Tensor* slots,
               const at::Tensor* cos, const at::Tensor* sin, const at::Tensor* k_cache, const at::Tensor* v_cache, int heads, int kv_heads)
{
    const auto& k = cuda_tensor(k_cache, "k_cache");
    const auto& v = cuda_tensor(v_cache, "v_cache");
    const auto& c = cuda_tensor(cos, "cos");
    const auto& s = cuda_tensor(sin, "sin");
    const auto& p = cuda_tensor(positions, "positions");
    const auto& sl = cuda_tensor(slots, "slots");
    check_kv_cache(k, v, kv_heads);
    const int64_t dim = k.size(2);
    require(heads > 0 && width == (heads + 2 * kv_heads) * dim && dim % 2 == 0, "the qkv width does not match heads, kv_heads and the cache's head dim");
    require(c.scalar_type() == at::kFloat && s.scalar_type() == at::kFloat && c.is_contiguous() && s.is_contiguous() && c.size(-1) == dim &&
                s.sizes() == c.sizes(),
            "cos/sin must be contiguous float32 [positions, dim]");
    require(p.numel() == rows && sl.numel() == rows, "positions and slots need one entry per row");
    require(k.scalar_type() == dtype, "the cache and qkv must share a dtype");
    RopeKv rope{};
    rope.positions = int32_data(p, "positions");
    rope.slots = int32_data(sl, "slots");
    rope.cos = c.data_ptr<float>();
    rope.sin = s.data_ptr<float>();
    rope.k_cache = k.data_ptr();
    rope.v_cache = v.data_ptr();
    rope.heads = heads;
    rope.kv_heads = kv_heads;
    rope.dim = static_cast<int>(dim);
    return rope;
}
}  // namespace

// out = RMSNorm(x) * weight; with residual: residual += x first and the sum is normalised. x and out: [tokens, cols] or
// [tokens, heads, dim] (each head normalised; out may be x itself).
DISAGG_EXPORT int disagg_rms_norm(const at::Tensor* out, const at::Tensor* x, const at::Tensor* residual, const at::Tensor* weight, double eps)
{
    return guarded([&] {
        const auto& o = cuda_tensor(out, "out");
        const auto& in = cuda_tensor(x, "x");
        const auto& w = cuda_tensor(weight, "weight");
        int64_t rows, cols, stride, group, out_rows, out_cols, out_stride, out_group;
        rows_of(in, "x", rows, cols, stride, group);
        rows_of(o, "out", out_rows, out_cols, out_stride, out_group);
        require(out_rows == rows && out_cols == cols && out_group == group, "out must have x's shape");
        require(w.numel() == cols && w.is_contiguous(), "weight must hold one value per column");
        require(o.scalar_type() == in.scalar_type() && w.scalar_type() == in.scalar_type(), "x, out and weight must share a dtype");
        void* res = nullptr;
        if (residual != nullptr) {
            const auto& r = cuda_tensor(residual, "residual");
            require(group == 1 && r.is_contiguous() && r.numel() == rows * cols && r.scalar_type() == in.scalar_type(),
                    "residual must be a contiguous [tokens, cols] tensor of x's dtype");
            res = r.data_ptr();
        }
        c10::cuda::CUDAGuard guard(in.device());
        check_launch(rms_norm(dtype_of(in, "x"), o.data_ptr(), out_stride, in.data_ptr(), stride, res, w.data_ptr(),
                              static_cast<int>(rows), static_cast<int>(cols), static_cast<int>(group), static_cast<float>(eps),
                              stream_of(in)),
                     "rms_norm");
    });
}

// Rotary embedding of the q and k heads of qkv ([tokens, (heads + 2 * kv_heads) * dim] rows, in place) and the k/v
// rows written to the layer's cache (k_cache, v_cache: [slots, kv_heads, dim]) at `slots` (int32; negative = skip).
DISAGG_EXPORT int disagg_rope_store_kv(const at::Tensor* qkv, const at::Tensor* positions, const at::Tensor* slots,
                                       const at::Tensor* cos, const at::Tensor* sin, const at::Tensor* k_cache,
                                       const at::Tensor* v_cache, int heads, int kv_heads)
{
    return guarded([&] {
        const auto& x = cuda_tensor(qkv, "qkv");
        require(x.dim() == 2 && x.stride(1) == 1, "qkv must be [tokens, width] with contiguous rows");
        const RopeKv r = rope_of(x.size(0), x.size(1), x.scalar_type(), positions, slots, cos, sin, k_cache, v_cache, heads, kv_heads);
        c10::cuda::CUDAGuard guard(x.device());
        check_launch(rope_store_kv(dtype_of(x, "qkv"), x.data_ptr(), x.stride(0), r.positions, r.slots, r.cos, r.sin, r.k_cache, r.v_cache,
                                   static_cast<int>(x.size(0)), heads, kv_heads, r.dim, stream_of(x)),
                     "rope_store_kv");
    });
}

// out [tokens, width] = silu(gate) * up for gate_up [tokens, 2 * width] (both contiguous).
DISAGG_EXPORT int disagg_silu_mul(const at::Tensor* out, const at::Tensor* gate_up)
{
    return guarded([&] {
        const auto& o = cuda_tensor(out, "out");
        const auto& g = cuda_tensor(gate_up, "gate_up");
        require(o.dim() == 2 && g.dim() == 2 && o.is_contiguous() && g.is_contiguous() && g.size(0) == o.size(0) && g.size(1) == 2 * o.size(1),
                "expected contiguous out [tokens, width] and gate_up [tokens, 2 * width]");
        require(o.scalar_type() == g.scalar_type(), "out and gate_up must share a dtype");
        c10::cuda::CUDAGuard guard(o.device());
        check_launch(silu_mul(dtype_of(o, "out"), o.data_ptr(), g.data_ptr(), static_cast<int>(o.size(0)), static_cast<int>(o.size(1)), stream_of(o)),
                     "silu_mul");
    });
}

namespace {
// The checked arguments of a thin linear layer (see disagg_linear), for its launch.
Gemv linear_of(const at::Tensor* out, const at::Tensor* x, const at::Tensor* weight, const at::Tensor* bias, const at::Tensor* norm_weight,
               double eps, bool gated, bool accumulate)
{
    const auto& o = cuda_tensor(out, "out");
    const auto& in = cuda_tensor(x, "x");
    const auto& w = cuda_tensor(weight, "weight");
    require(in.dim() == 2 && in.stride(1) == 1 && in.size(0) >= 1 && in.size(0) <= kMaxGemvRows, "x must be [rows <= 4, k] rows");
    const int64_t rows = in.size(0), k = in.size(1), n_out = gated ? w.size(0) / 2 : w.size(0);
    require(w.dim() == 2 && w.is_contiguous() && w.size(1) == k && (!gated || w.size(0) % 2 == 0), "weight must be contiguous [n_out (x2 gated), k]");
    require(o.dim() == 2 && o.is_contiguous() && o.size(0) == rows && o.size(1) == n_out, "out must be contiguous [rows, n_out]");
    require(o.scalar_type() == in.scalar_type() && w.scalar_type() == in.scalar_type(), "x, weight and out must share a dtype");
    const int64_t element = in.element_size();
    require(k % 8 == 0 && reinterpret_cast<uintptr_t>(in.data_ptr()) % 16 == 0 && (in.stride(0) * element) % 16 == 0 &&
                reinterpret_cast<uintptr_t>(w.data_ptr()) % 16 == 0,
            "k must be a multiple of 8 and x's rows and the weight 16-byte aligned");
    const void* b = nullptr;
    if (bias != nullptr) {
        const auto& bt = cuda_tensor(bias, "bias");
        require(bt.is_contiguous() && bt.numel() == w.size(0) && bt.scalar_type() == in.scalar_type(), "bias must hold one value per weight row");
        b = bt.data_ptr();
    }
    const void* norm = nullptr;
    if (norm_weight != nullptr) {
        const auto& nw = cuda_tensor(norm_weight, "norm_weight");
        require(nw.is_contiguous() && nw.numel() == k && nw.scalar_type() == in.scalar_type() &&
                    reinterpret_cast<uintptr_t>(nw.data_ptr()) % 16 == 0,
                "norm_weight must be a contiguous, aligned [k] tensor of x's dtype");
        norm = nw.data_ptr();
    }
    Gemv g{};
    g.dtype = dtype_of(o, "out");
    g.out = o.data_ptr();
    g.x = in.data_ptr();
    g.x_stride = in.stride(0);
    g.w = w.data_ptr();
    g.bias = b;
    g.norm = norm;
    g.eps = static_cast<float>(eps);
    g.rows = static_cast<int>(rows);
    g.n_out = static_cast<int>(n_out);
    g.k = static_cast<int>(k);
    g.gated = gated;
    g.accumulate = accumulate;
    return g;
}
}  // namespace

// A linear layer of a decode step: out [rows, n_out] = x [rows, k] w^T (+ bias) for rows <= 4 (a weight read once, in
// one kernel). norm_weight (optional, [k]): x is normalised first (RMSNorm, eps). flags: 1 = gated (w is [gate; up],
// [2 * n_out, k], and out = silu(gate) * up), 2 = accumulate (out += the product; not with gated). x: rows of contiguous
// elements, w and out contiguous, one dtype; k a multiple of 8.
DISAGG_EXPORT int disagg_linear(const at::Tensor* out, const at::Tensor* x, const at::Tensor* weight, const at::Tensor* bias,
                                const at::Tensor* norm_weight, double eps, int flags)
{
    return guarded([&] {
        require((flags & ~3) == 0 && flags != 3, "flags: 1 = gated, 2 = accumulate, not both");
        const Gemv g = linear_of(out, x, weight, bias, norm_weight, eps, (flags & 1) != 0, (flags & 2) != 0);
        c10::cuda::CUDAGuard guard(out->device());
        check_launch(gemv(g, stream_of(*out)), "linear");
    });
}

// The fused qkv projection of a decode step with the rotary embedding and the KV-cache write in its epilogue: what
// disagg_linear (plain, optionally normed) then disagg_rope_store_kv on its output do, in one kernel. out: [rows,
// (heads + 2 * kv_heads) * dim]; positions and slots: int32 [rows]; cos/sin: float32 [positions, dim]; k_cache/v_cache:
// one layer, [slots, kv_heads, dim].
DISAGG_EXPORT int disagg_linear_rope_kv(const at::Tensor* out, const at::Tensor* x, const at::Tensor* weight, const at::Tensor* bias,
                                        const at::Tensor* norm_weight, double eps, const at::Tensor* positions, const at::Tensor* slots,
                                        const at::Tensor* cos, const at::Tensor* sin, const at::Tensor* k_cache, const at::Tensor* v_cache,
                                        int heads, int kv_heads)
{
    return guarded([&] {
        Gemv g = linear_of(out, x, weight, bias, norm_weight, eps, false, false);
        const RopeKv rope = rope_of(g.rows, g.n_out, out->scalar_type(), positions, slots, cos, sin, k_cache, v_cache, heads, kv_heads);
        g.rope = &rope;
        c10::cuda::CUDAGuard guard(out->device());
        check_launch(gemv(g, stream_of(*out)), "linear_rope_kv");
    });
}

// Programmatic dependent launch of the kernels below (see kernels/launch.cuh): on or off for the whole process, for
// launches and graph captures from now on. Returns whether it is on (never on a device older than Hopper).
DISAGG_EXPORT int disagg_set_programmatic_launch(int enabled) { return set_programmatic_launch(enabled != 0) ? 1 : 0; }

// Decode attention: out [batch, heads * dim] for one query per sequence (q: [batch, >= heads * dim] rows, the query
// heads first), over the layer's paged cache through block_tables [batch, max_blocks] and context_lens [batch] (int32).
// Each context is split among `partitions` CTAs per kv head (1 to 512; more for small batches, so that a short context
// still spreads over the GPU); workspace: float32 with batch * heads * partitions * (dim + 2) elements; counters: int32
// with batch * kv_heads elements, zeroed when allocated (each launch leaves them at zero). Both may be null when
// partitions is 1.
DISAGG_EXPORT int disagg_paged_attention(const at::Tensor* out, const at::Tensor* q, const at::Tensor* k_cache, const at::Tensor* v_cache,
                                         const at::Tensor* block_tables, const at::Tensor* context_lens, const at::Tensor* workspace,
                                         const at::Tensor* counters, int heads, int kv_heads, int block_size, int window, int partitions, double scale)
{
    return guarded([&] {
        const auto& o = cuda_tensor(out, "out");
        const auto& query = cuda_tensor(q, "q");
        const auto& k = cuda_tensor(k_cache, "k_cache");
        const auto& v = cuda_tensor(v_cache, "v_cache");
        const auto& tables = cuda_tensor(block_tables, "block_tables");
        const auto& lens = cuda_tensor(context_lens, "context_lens");
        check_kv_cache(k, v, kv_heads);
        const int64_t dim = k.size(2), batch = o.size(0);
        require(o.dim() == 2 && o.is_contiguous() && o.size(1) == heads * dim, "out must be contiguous [batch, heads * dim]");
        require(query.dim() == 2 && query.stride(1) == 1 && query.size(0) == batch && query.size(1) >= heads * dim, "q must be [batch, >= heads * dim] rows");
        require(tables.dim() == 2 && tables.size(0) == batch && lens.numel() == batch, "block_tables must be [batch, max_blocks], context_lens [batch]");
        require(o.scalar_type() == query.scalar_type() && k.scalar_type() == query.scalar_type(), "q, out and the cache must share a dtype");
        require(partitions >= 1 && partitions <= kMaxAttentionPartitions && block_size > 0, "partitions must be 1 to 512 and block_size positive");
        PagedAttention a{};
        a.dtype = dtype_of(o, "out");
        a.out = o.data_ptr();
        a.q = query.data_ptr();
        a.q_stride = query.stride(0);
        a.k_cache = k.data_ptr();
        a.v_cache = v.data_ptr();
        a.block_tables = int32_data(tables, "block_tables");
        a.context_lens = int32_data(lens, "context_lens");
        a.batch = static_cast<int>(batch);
        a.heads = heads;
        a.kv_heads = kv_heads;
        a.dim = static_cast<int>(dim);
        a.block_size = block_size;
        a.max_blocks = static_cast<int>(tables.size(1));
        a.window = window;
        a.partitions = partitions;
        a.scale = static_cast<float>(scale);
        if (a.partitions > 1) {
            const auto& ws = cuda_tensor(workspace, "workspace");
            const auto& done = cuda_tensor(counters, "counters");
            require(ws.scalar_type() == at::kFloat && ws.is_contiguous() && ws.numel() >= batch * heads * a.partitions * (dim + 2),
                    "workspace must be contiguous float32 of batch * heads * partitions * (dim + 2) elements");
            require(reinterpret_cast<uintptr_t>(ws.data_ptr()) % 16 == 0, "workspace must be 16-byte aligned");
            require(done.numel() >= batch * kv_heads, "counters must hold batch * kv_heads int32 elements");
            a.workspace = ws.data_ptr<float>();
            a.counters = reinterpret_cast<unsigned*>(const_cast<int32_t*>(int32_data(done, "counters")));
        }
        c10::cuda::CUDAGuard guard(o.device());
        check_launch(paged_attention(a, stream_of(o)), "paged_attention (needs dim % 8 == 0, dim <= 256, heads / kv_heads <= 16)");
    });
}
