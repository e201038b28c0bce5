#!/usr/bin/env bash
# Configures and builds nnslim in ./build (Release). Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
# Each TU that includes LibTorch needs ~1 GB of RAM to compile; 2 jobs fit any 2-core machine.
cmake --build build -j "$(nproc)"
