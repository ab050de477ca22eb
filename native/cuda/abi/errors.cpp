// ABI version and error reporting: every exported call returns 0 (or a non-null handle) on success; on failure the
// message stays readable on the calling thread through disagg_last_error until its next failure.
#include "abi.h"

namespace disagg {
namespace {
thread_local std::string last_error;
}

int fail(const std::string& message)
{
    last_error = message;
    return -1;
}

}  // namespace disagg

// Version of this ABI; the managed wrapper refuses a library whose version it does not know.
DISAGG_EXPORT int disagg_cuda_abi_version() { return 8; }

DISAGG_EXPORT const char* disagg_last_error() { return disagg::last_error.c_str(); }
