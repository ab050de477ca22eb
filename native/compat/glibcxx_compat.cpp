// Provides std::ios_base_library_init() for C++ runtimes older than GCC 13 (GLIBCXX < 3.4.32).
//
// GCC 13 moved the construction of the standard streams out of every translation unit that includes <iostream> and
// into this one libstdc++ function, which such translation units now call. TorchSharp 0.107's libLibTorchSharp.so
// was built that way, so it asks for this symbol at GLIBCXX_3.4.32 and fails to load on GCC 12 runtimes (Debian 12,
// Ubuntu 22.04). Disagg's loader relaxes that one version requirement in a private copy of the library and loads this
// shim first, so the call lands here and does what older runtimes do: keep one std::ios_base::Init alive.
#include <ios>

namespace std {
__attribute__((visibility("default"))) void ios_base_library_init()
{
    static ios_base::Init init;
}
}
