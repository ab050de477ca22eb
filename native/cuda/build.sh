#!/usr/bin/env bash
# Builds libdisagg_cuda.so against the PyTorch install that python3 finds (its headers and libtorch), on a CUDA machine.
#   native/cuda/build.sh [OUTPUT_DIR]        (default: native/build)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../build}"
mkdir -p "$out"
torch_dir="$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
cuda_home="${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc)")")}"
g++ -shared -fPIC -O2 -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=1 \
    -I"$torch_dir/include" -I"$torch_dir/include/torch/csrc/api/include" -I"$cuda_home/include" \
    -o "$out/libdisagg_cuda.so" "$here/disagg_cuda.cpp" \
    -L"$torch_dir/lib" -ltorch -ltorch_cpu -ltorch_cuda -lc10 -lc10_cuda -L"$cuda_home/lib64" -lcudart \
    -Wl,-rpath,"$torch_dir/lib"
echo "$out/libdisagg_cuda.so"
