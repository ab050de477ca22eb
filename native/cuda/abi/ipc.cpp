// CUDA IPC: a decode process exports the device memory of its KV cache; a prefill process on the same host opens it and
// writes KV blocks straight into it, GPU to GPU, with no trip through host memory.
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>

#include <cstring>

#include "abi.h"

using disagg::fail;

// Exports the allocation holding `tensor` (a CUDA tensor) for another process: writes its 64-byte IPC handle to
// `handle_out` and the tensor's byte offset inside that allocation to `offset_out`.
DISAGG_EXPORT int disagg_ipc_export(const at::Tensor* tensor, unsigned char* handle_out, int64_t* offset_out)
{
    return disagg::guarded([&] {
        const at::Tensor& t = disagg::cuda_tensor(tensor, "tensor");
        c10::cuda::CUDAGuard guard(t.device());
        size_t size = 0;
        // The caching allocator hands out pieces of larger allocations; IPC shares whole allocations.
        void* base = c10::cuda::CUDACachingAllocator::getBaseAllocation(t.data_ptr(), &size);
        cudaIpcMemHandle_t handle;
        disagg::check_launch(cudaIpcGetMemHandle(&handle, base), "cudaIpcGetMemHandle");
        std::memcpy(handle_out, &handle, sizeof(handle));
        *offset_out = static_cast<const char*>(t.data_ptr()) - static_cast<const char*>(base);
    });
}

// Opens an allocation exported by another process and returns a new tensor (at::Tensor*, owned by the caller and
// released through TorchSharp's dispose) of `sizes` and `scalar_type` at `offset` bytes into it, on cuda:`device`.
// The mapping closes when the tensor is freed. Returns null on failure (see disagg_last_error).
DISAGG_EXPORT at::Tensor* disagg_ipc_import(const unsigned char* handle_bytes, int64_t offset, const int64_t* sizes, int ndim,
                                            int scalar_type, int device)
{
    at::Tensor* result = nullptr;
    disagg::guarded([&] {
        c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
        cudaIpcMemHandle_t handle;
        std::memcpy(&handle, handle_bytes, sizeof(handle));
        void* base = nullptr;
        disagg::check_launch(cudaIpcOpenMemHandle(&base, handle, cudaIpcMemLazyEnablePeerAccess), "cudaIpcOpenMemHandle");
        auto options = at::TensorOptions().dtype(static_cast<at::ScalarType>(scalar_type)).device(at::kCUDA, device);
        at::Tensor view = at::from_blob(static_cast<char*>(base) + offset, at::IntArrayRef(sizes, ndim),
                                        [base](void*) { cudaIpcCloseMemHandle(base); }, options);
        result = new at::Tensor(std::move(view));
    });
    return result;
}
