#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy: bugprone, performance, naming) on the library's and the CLI's
# sources, or on the files given, with the compile commands of a build in ./build-tidy.
# Slow: each file parses LibTorch's headers (~20-40 s a file on 2 cores).
#   scripts/tidy.sh [FILE.cpp ...]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-tidy >/dev/null || { echo "clang-tidy is not installed (apt-get install clang-tidy)"; exit 1; }
cmake -S . -B build-tidy -G Ninja -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCMAKE_DISABLE_PRECOMPILE_HEADERS=ON -DNNSLIM_BUILD_TESTS=OFF >/dev/null
if [ $# -eq 0 ]; then mapfile -t files < <(git ls-files 'src/*.cpp' 'apps/*.cpp'); else files=("$@"); fi
status=0
for f in "${files[@]}"; do
  clang-tidy -p build-tidy --quiet "$f" 2>/dev/null || status=1
done
exit $status
