#!/usr/bin/env bash
# Builds libdisagg_cuda.so with CMake (nvcc for the kernels, the PyTorch install python3 finds for the ABI layer).
#   native/cuda/build.sh [OUTPUT_DIR]        (default: native/build); prints the library's path
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../build}"
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
export CUDACXX="${CUDACXX:-${CUDA_HOME:-/usr/local/cuda}/bin/nvcc}"
cmake -S "$here" -B "$out" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$out" --parallel >&2
echo "$out/libdisagg_cuda.so"
