// Shared by the C ABI's translation units: exported-symbol marker, the thread-local last error, and tensor checks.
#pragma once
#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

#include "../kernels/kernels.h"

#define DISAGG_EXPORT extern "C" __attribute__((visibility("default")))

namespace disagg {

// Sets the calling thread's last error (read by disagg_last_error) and returns -1.
int fail(const std::string& message);

// Runs `body`, turning any exception into a failed status with its message.
template <typename F> int guarded(F&& body)
{
    try {
        body();
        return 0;
    } catch (const std::exception& e) {
        return fail(e.what());
    }
}

inline void require(bool condition, const std::string& message)
{
    if (!condition) throw std::invalid_argument(message);
}

inline void check_launch(cudaError_t status, const char* what)
{
    if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

inline const at::Tensor& cuda_tensor(const at::Tensor* t, const char* name)
{
    require(t != nullptr && t->defined(), std::string(name) + " is null");
    require(t->is_cuda(), std::string(name) + " is not a CUDA tensor");
    return *t;
}

inline DType dtype_of(const at::Tensor& t, const char* name)
{
    switch (t.scalar_type()) {
        case at::kFloat: return DType::Float32;
        case at::kHalf: return DType::Float16;
        case at::kBFloat16: return DType::BFloat16;
        default: throw std::invalid_argument(std::string(name) + " must be float32, float16 or bfloat16");
    }
}

inline const int32_t* int32_data(const at::Tensor& t, const char* name)
{
    require(t.scalar_type() == at::kInt && t.is_contiguous(), std::string(name) + " must be a contiguous int32 tensor");
    return t.data_ptr<int32_t>();
}

}  // namespace disagg
