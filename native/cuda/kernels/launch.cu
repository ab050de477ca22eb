// The process-wide switch for programmatic dependent launch (see launch.cuh).
#include <atomic>

#include "launch.cuh"

namespace disagg {
namespace {
std::atomic<bool> programmatic{false};
}

bool set_programmatic_launch(bool enabled)
{
    if (enabled) {
        int device = 0, major = 0;
        if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess)
            enabled = false;
        else
            enabled = major >= 9;
    }
    programmatic.store(enabled);
    return enabled;
}

bool programmatic_launch() { return programmatic.load(std::memory_order_relaxed); }

}  // namespace disagg
