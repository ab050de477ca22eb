// KV block copies between pools, possibly on two devices (peer access) or into another process's pool (CUDA IPC).
// A copy either runs on the source device's current stream, or on a per-device copy stream that first waits for the
// work already queued on the current stream: then it overlaps whatever the engine computes next (the next layers or
// chunk of a prefill), and disagg_copy_wait is the point where the caller needs it done.
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "abi.h"

namespace {
std::mutex gate;
std::unordered_map<int, c10::cuda::CUDAStream> copy_streams;
std::unordered_map<long, bool> peer_access;

c10::cuda::CUDAStream copy_stream(int device)
{
    std::lock_guard<std::mutex> lock(gate);
    auto it = copy_streams.find(device);
    if (it == copy_streams.end())
        it = copy_streams.emplace(device, c10::cuda::getStreamFromPool(false, static_cast<c10::DeviceIndex>(device))).first;
    return it->second;
}

// Lets kernels on `from` write memory of `to`. PyTorch may already have enabled it (not an error).
bool enable_peer(int from, int to)
{
    if (from == to) return true;
    std::lock_guard<std::mutex> lock(gate);
    long key = static_cast<long>(from) * 1024 + to;
    auto it = peer_access.find(key);
    if (it != peer_access.end()) return it->second;
    int can = 0;
    bool ok = cudaDeviceCanAccessPeer(&can, from, to) == cudaSuccess && can;
    if (ok) {
        c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(from));
        cudaError_t e = cudaDeviceEnablePeerAccess(to, 0);
        if (e == cudaErrorPeerAccessAlreadyEnabled) cudaGetLastError();
        ok = e == cudaSuccess || e == cudaErrorPeerAccessAlreadyEnabled;
    }
    peer_access[key] = ok;
    return ok;
}
}  // namespace

// Copies blocks src_ids[i] -> dst_ids[i] (host int32 arrays of `count`) of layers [layer_begin, layer_end), K and V,
// from one pool to another. Pools are storage tensors [layers, 2, blocks * block_size, kv_heads, dim] of one layout.
// on_copy_stream: 0 = the source device's current stream; 1 = its copy stream, after the current stream's queued work.
DISAGG_EXPORT int disagg_copy_blocks(const at::Tensor* src_storage, const at::Tensor* dst_storage, const int32_t* src_ids,
                                     const int32_t* dst_ids, int count, int layer_begin, int layer_end, int block_size,
                                     int on_copy_stream)
{
    return disagg::guarded([&] {
        const auto& src = disagg::cuda_tensor(src_storage, "src_storage");
        const auto& dst = disagg::cuda_tensor(dst_storage, "dst_storage");
        disagg::require(src.dim() == 5 && dst.dim() == 5 && src.is_contiguous() && dst.is_contiguous(), "pools must be contiguous [layers, 2, slots, kv_heads, dim]");
        disagg::require(src.size(0) == dst.size(0) && src.size(3) == dst.size(3) && src.size(4) == dst.size(4) && src.scalar_type() == dst.scalar_type(),
                        "the pools' layouts differ");
        disagg::require(0 <= layer_begin && layer_begin <= layer_end && layer_end <= src.size(0), "layer range out of bounds");
        disagg::require(src.size(2) % block_size == 0 && dst.size(2) % block_size == 0, "slots are not whole blocks");
        const int64_t src_blocks = src.size(2) / block_size, dst_blocks = dst.size(2) / block_size;
        for (int i = 0; i < count; i++)
            disagg::require(0 <= src_ids[i] && src_ids[i] < src_blocks && 0 <= dst_ids[i] && dst_ids[i] < dst_blocks, "block id out of range");
        if (count == 0) return;
        const int device = src.device().index();
        disagg::require(enable_peer(device, dst.device().index()), "no peer access between the pools' devices");
        c10::cuda::CUDAGuard guard(src.device());

        auto current = c10::cuda::getCurrentCUDAStream(device);
        std::optional<c10::cuda::CUDAStream> side;
        if (on_copy_stream) {
            side = copy_stream(device);
            at::cuda::CUDAEvent ready;
            ready.record(current);
            ready.block(*side);
        }
        auto stream = side ? *side : current;
        at::Tensor ids = at::empty({2 * static_cast<int64_t>(count)}, at::TensorOptions().dtype(at::kInt).pinned_memory(true));
        std::memcpy(ids.data_ptr<int32_t>(), src_ids, sizeof(int32_t) * count);
        std::memcpy(ids.data_ptr<int32_t>() + count, dst_ids, sizeof(int32_t) * count);
        at::Tensor device_ids = at::empty({2 * static_cast<int64_t>(count)}, at::TensorOptions().dtype(at::kInt).device(src.device()));
        {
            c10::cuda::CUDAStreamGuard on(stream);
            device_ids.copy_(ids, /*non_blocking=*/true);
        }
        // The device ids were allocated on the current stream but are read on the copy stream. (The pinned host ids are
        // kept from reuse by the non-blocking copy itself, which records an event for them.)
        if (side) device_ids.record_stream(*side);
        const int64_t block_bytes = static_cast<int64_t>(block_size) * src.size(3) * src.size(4) * src.element_size();
        disagg::check_launch(disagg::copy_blocks(src.data_ptr(), src_blocks, dst.data_ptr(), dst_blocks, device_ids.data_ptr<int32_t>(),
                                                 count, layer_begin, layer_end, block_bytes, stream.stream()),
                             "copy_blocks");
    });
}

// Blocks the calling thread until every copy issued on cuda:`device`'s copy stream has finished.
DISAGG_EXPORT int disagg_copy_wait(int device)
{
    return disagg::guarded([&] { copy_stream(device).synchronize(); });
}

// Copies the first `elements` elements of src into dst (contiguous, one dtype; either may be pinned host memory) on the
// current stream of the CUDA one, asynchronously: a plain cudaMemcpyAsync, so that a CUDA graph can capture it (the
// decode step's inputs in and its sampled tokens out). PyTorch's own non-blocking copy also records an event for the
// pinned buffer, which a capture does not allow.
DISAGG_EXPORT int disagg_copy_async(const at::Tensor* dst, const at::Tensor* src, int64_t elements)
{
    return disagg::guarded([&] {
        disagg::require(dst != nullptr && src != nullptr && dst->defined() && src->defined(), "dst and src must be tensors");
        const auto& d = *dst;
        const auto& s = *src;
        disagg::require(d.is_cuda() || s.is_cuda(), "one of dst and src must be a CUDA tensor");
        disagg::require(d.is_contiguous() && s.is_contiguous() && d.scalar_type() == s.scalar_type(), "dst and src must be contiguous, of one dtype");
        disagg::require(elements >= 0 && elements <= d.numel() && elements <= s.numel(), "elements must fit both tensors");
        disagg::require((d.is_cuda() || d.is_pinned()) && (s.is_cuda() || s.is_pinned()), "host memory must be pinned");
        const auto device = d.is_cuda() ? d.device() : s.device();
        c10::cuda::CUDAGuard guard(device);
        const auto stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();
        disagg::check_launch(cudaMemcpyAsync(d.data_ptr(), s.data_ptr(), elements * d.element_size(), cudaMemcpyDefault, stream), "copy_async");
    });
}
