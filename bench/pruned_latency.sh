#!/usr/bin/env bash
# Issue 3: does pruning to 50% of the MACs make inference really faster? For each model, prunes
# an initialised network with magnitude (L1) channel pruning to --target-macs 0.5 (with and
# without rounding widths to multiples of 8), then times dense and pruned alternately at batch 1
# and 64 and prints the MAC ratio next to the measured latency ratio (dense / pruned).
# Latency does not depend on trained weights, so no training is needed. Needs an idle machine.
# Threads spin between ops (OMP_WAIT_POLICY=ACTIVE unless set), as a dedicated inference runtime
# does: sleeping threads cost a wake-up per op, which the pruned model pays as much as the dense
# one (docs/RESULTS.md, "thread wake-ups"). Set OMP_WAIT_POLICY=PASSIVE to measure nnslim's default.
#   bench/pruned_latency.sh [MODELS...]        (default: resnet56 vgg16)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-ACTIVE}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet56 vgg16)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
NN=build/nnslim
PY=/usr/bin/python3
median() { $NN bench "$1" --batch-size "$2" --seconds "$3" --runs 10 --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["median_ms"])'; }
macs() { $NN info "$1" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["macs"])'; }
for m in "${models[@]}"; do
  $NN train --model "$m" --epochs 0 --limit-train 256 --limit-test 256 --no-latency --quiet --out "$W/$m" >/dev/null
  for round in 1 8; do
    $NN compress --method magnitude --model "$W/$m/model.nnslim" --target-macs 0.5 --round-to "$round" \
      --no-latency --limit-test 256 --quiet --out "$W/$m-r$round" >/dev/null
    mac_ratio=$($PY -c "print($(macs "$W/$m/model.nnslim") / $(macs "$W/$m-r$round/model.nnslim"))")
    for b in 1 64; do
      secs=$([ "$b" = 1 ] && echo 2 || echo 4)
      d=(); p=()
      for i in 1 2 3; do d+=("$(median "$W/$m/model.nnslim" $b $secs)"); p+=("$(median "$W/$m-r$round/model.nnslim" $b $secs)"); done
      $PY - "$m" "$round" "$b" "$mac_ratio" "${d[*]}" "${p[*]}" <<'PYEOF'
import statistics, sys
m, rnd, b, mac = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
d = statistics.median(map(float, sys.argv[5].split())); p = statistics.median(map(float, sys.argv[6].split()))
print(f"{m:10s} round-to {rnd}  batch {b:>2}: MAC ratio {mac:.2f}x  dense {d:8.2f} ms  pruned {p:8.2f} ms  "
      f"latency ratio {d/p:.2f}x  ({d/p/mac:.2f} of the MAC ratio)")
PYEOF
    done
  done
done
