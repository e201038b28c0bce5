#!/usr/bin/env bash
# Training throughput of resnet20 (batch 128, 1x32x32, SGD momentum): nnslim against the same
# model, shapes and optimizer in PyTorch's Python API (Debian's python3-torch, same LibTorch),
# run alternately in the same session so that both see the same machine. Prints each round and
# the median of the per-round ratios (the machine's speed drifts by +-20% between rounds on a
# shared VM, so one round proves nothing). Needs an otherwise idle machine.
#   bench/train_throughput.sh [ROUNDS] [SECONDS_PER_RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-9}
SECS=${2:-10}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
PY=/usr/bin/python3
ratios=()
for i in $(seq "$ROUNDS"); do
  n=$(build/nnslim bench --model resnet20 --input 1x32x32 --batch-size 128 --train --seconds "$SECS" --runs 5 --json \
      | $PY -c 'import json,sys; print(json.load(sys.stdin)["images_per_second"])')
  p=$($PY bench/pytorch_resnet20.py --seconds "$SECS" | $PY -c 'import json,sys; print(json.load(sys.stdin)["images_per_second"])')
  r=$($PY -c "print(float($n)/float($p))")
  ratios+=("$r")
  $PY -c "print(f'round $i: nnslim {float($n):.1f} img/s, pytorch {float($p):.1f} img/s, ratio {float($r):.3f}')"
done
$PY -c "import statistics; r=[float(x) for x in '${ratios[*]}'.split()]; print(f'median ratio over {len(r)} rounds: {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f})')"
