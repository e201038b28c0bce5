#!/usr/bin/env bash
# The device check, for a machine with a GPU and a python3 with CUDA PyTorch 2.x (never run by CI):
# builds against that PyTorch's LibTorch, runs the test suite, a short GPU training run, and the
# data-parallel test pair on 2 processes with NCCL (one GPU serves both ranks when there is one).
# Output: build-cuda/, and $OUT (default runs/check-cuda) with the logs.
#   scripts/check-cuda.sh [--quick]    --quick: skip the full test suite
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/check-cuda}
mkdir -p "$OUT"
quick=0
[ "${1:-}" = "--quick" ] && quick=1
step() { echo "== $*" | tee -a "$OUT/summary.txt"; }
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)') || {
  echo "no python3 with torch"; exit 1; }
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())' | tee -a "$OUT/summary.txt"

step "configure + build (LibTorch from $prefix)"
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build build-cuda -j "$(nproc)" > "$OUT/build.log" 2>&1 || { grep -m20 -B2 -A6 "error" "$OUT/build.log"; exit 1; }
step "built; c10d backends in the LibTorch: $(grep -o 'USE_C10D_[A-Z]*' build-cuda/CMakeFiles/nnslim_lib.dir/flags.make 2>/dev/null | sort -u | tr '\n' ' ')"

if [ $quick -eq 0 ]; then
  step "test suite"
  (cd build-cuda && ctest -j "$(nproc)" --timeout 600 > "../$OUT/ctest.log" 2>&1)
  grep -E "tests passed|tests failed" "$OUT/ctest.log" | tee -a "$OUT/summary.txt"
  grep -E "\(Failed\)|\(Timeout\)" "$OUT/ctest.log" | head -20 | tee -a "$OUT/summary.txt"
fi

step "GPU training run (resnet20, synthetic, 2 epochs)"
build-cuda/nnslim train --model resnet20 --dataset synthetic --epochs 2 --device cuda \
  --no-latency --out "$OUT/r20_cuda" --force 2>&1 | tail -4 | tee -a "$OUT/summary.txt"

step "compress on the GPU (magnitude 0.5, 1 + 1 epochs)"
build-cuda/nnslim compress --model "$OUT/r20_cuda/model.nnslim" --method magnitude \
  --target-macs 0.5 --dataset synthetic --epochs 1 --finetune-epochs 1 --device cuda \
  --no-latency --out "$OUT/r20_half" --force 2>&1 | tail -3 | tee -a "$OUT/summary.txt"

step "NCCL, 2 processes under torchrun (lenet5, 2 epochs) vs 1 process"
args="train --model lenet5 --dataset synthetic --epochs 2 --batch-size 64 --device cuda --no-latency --quiet"
build-cuda/nnslim $args --out "$OUT/one" --force > "$OUT/one.log" 2>&1
torchrun --no_python --nproc_per_node 2 --master_port 29731 build-cuda/nnslim $args \
  --dist-backend nccl --out "$OUT/two" --force > "$OUT/nccl.log" 2>&1
echo "rc $?" | tee -a "$OUT/summary.txt"
tail -5 "$OUT/nccl.log" | tee -a "$OUT/summary.txt"
python3 - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
d = sys.argv[1]
for run in ("one", "two"):
    try:
        s = json.load(open(f"{d}/{run}/summary.json"))
        print(run, "top1", s["top1"], "world_size", s.get("world_size"), s.get("dist_backend", ""))
    except Exception as e:
        print(run, "no summary:", e)
PY
step "done: $OUT/summary.txt"
