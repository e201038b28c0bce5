#!/usr/bin/env bash
# Training throughput of resnet20 (batch 128, 1x32x32, SGD momentum): nnslim against the same
# model, shapes and optimizer in PyTorch's Python API (Debian's python3-torch, same LibTorch),
# run alternately in the same session. Prints both and the ratio. Needs an otherwise idle machine.
#   bench/train_throughput.sh [ROUNDS] [SECONDS_PER_RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-10}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
PY=/usr/bin/python3
for i in $(seq "$ROUNDS"); do
  n=$(build/nnslim bench --model resnet20 --input 1x32x32 --batch-size 128 --train --seconds "$SECS" --runs 5 --json \
      | $PY -c 'import json,sys; print(json.load(sys.stdin)["images_per_second"])')
  p=$($PY bench/pytorch_resnet20.py --seconds "$SECS" | $PY -c 'import json,sys; print(json.load(sys.stdin)["images_per_second"])')
  $PY -c "print(f'round $i: nnslim {float($n):.1f} img/s, pytorch {float($p):.1f} img/s, ratio {float($n)/float($p):.3f}')"
done
