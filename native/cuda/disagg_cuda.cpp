// libdisagg_cuda: CUDA pieces TorchSharp lacks, over TorchSharp tensor handles (at::Tensor*), behind a C ABI.
// Managed side: src/Disagg.Cuda/Native/NativeCuda.cs. Build on a CUDA machine with build.sh.
//
// CUDA IPC: a decode process exports the device memory of its KV cache; a prefill process on the same host opens it and
// writes KV blocks straight into it, GPU to GPU, with no trip through host memory.
#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>

#include <cstring>
#include <string>

namespace {
int fail(char* error, int capacity, const std::string& message)
{
    if (error != nullptr && capacity > 0) {
        std::strncpy(error, message.c_str(), capacity - 1);
        error[capacity - 1] = '\0';
    }
    return -1;
}
}  // namespace

extern "C" {

// Version of this ABI; the managed wrapper refuses a library whose version it does not know.
__attribute__((visibility("default"))) int disagg_cuda_abi_version() { return 1; }

// Exports the allocation holding `tensor` (a CUDA tensor) for another process: writes its 64-byte IPC handle to
// `handle_out` and the tensor's byte offset inside that allocation to `offset_out`. Returns 0, or -1 with a message.
__attribute__((visibility("default"))) int disagg_ipc_export(const at::Tensor* tensor, unsigned char* handle_out,
                                                             int64_t* offset_out, char* error, int error_capacity)
{
    try {
        if (tensor == nullptr || !tensor->is_cuda()) return fail(error, error_capacity, "not a CUDA tensor");
        c10::cuda::CUDAGuard guard(tensor->device());
        size_t size = 0;
        // The caching allocator hands out pieces of larger allocations; IPC shares whole allocations.
        void* base = c10::cuda::CUDACachingAllocator::getBaseAllocation(tensor->data_ptr(), &size);
        cudaIpcMemHandle_t handle;
        cudaError_t status = cudaIpcGetMemHandle(&handle, base);
        if (status != cudaSuccess) return fail(error, error_capacity, std::string("cudaIpcGetMemHandle: ") + cudaGetErrorString(status));
        std::memcpy(handle_out, &handle, sizeof(handle));
        *offset_out = static_cast<const char*>(tensor->data_ptr()) - static_cast<const char*>(base);
        return 0;
    } catch (const std::exception& e) {
        return fail(error, error_capacity, e.what());
    }
}

// Opens an allocation exported by another process and returns a new tensor (at::Tensor*, owned by the caller and
// released through TorchSharp's dispose) of `sizes` and `scalar_type` at `offset` bytes into it, on cuda:`device`.
// The mapping closes when the tensor is freed. Returns null with a message on failure.
__attribute__((visibility("default"))) at::Tensor* disagg_ipc_import(const unsigned char* handle_bytes, int64_t offset,
                                                                      const int64_t* sizes, int ndim, int scalar_type,
                                                                      int device, char* error, int error_capacity)
{
    try {
        c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
        cudaIpcMemHandle_t handle;
        std::memcpy(&handle, handle_bytes, sizeof(handle));
        void* base = nullptr;
        cudaError_t status = cudaIpcOpenMemHandle(&base, handle, cudaIpcMemLazyEnablePeerAccess);
        if (status != cudaSuccess) {
            fail(error, error_capacity, std::string("cudaIpcOpenMemHandle: ") + cudaGetErrorString(status));
            return nullptr;
        }
        auto options = at::TensorOptions().dtype(static_cast<at::ScalarType>(scalar_type)).device(at::kCUDA, device);
        at::Tensor view = at::from_blob(static_cast<char*>(base) + offset, at::IntArrayRef(sizes, ndim),
                                        [base](void*) { cudaIpcCloseMemHandle(base); }, options);
        return new at::Tensor(std::move(view));
    } catch (const std::exception& e) {
        fail(error, error_capacity, e.what());
        return nullptr;
    }
}
}
