#!/usr/bin/env bash
# Inference latency of saved models, measured alternately (ROUNDS rounds, median per model) so
# that they all see the same machine; prints each model's median at batch 1 and 64 and its ratio
# to the first model. Needs an otherwise idle machine.
#   bench/model_latency.sh MODEL.nnslim...      (ROUNDS=3 THREADS=0 by default)
#   BENCH_ARGS="--direct-convs" bench/model_latency.sh ...   passes extra options to nnslim bench
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-0}
read -r -a EXTRA <<< "${BENCH_ARGS:-}"
PY=/usr/bin/python3
[ $# -gt 0 ] || { echo "usage: $0 MODEL.nnslim..." >&2; exit 2; }
declare -A t
for b in 1 64; do
  secs=$([ "$b" = 1 ] && echo 1 || echo 3)
  for r in $(seq "$ROUNDS"); do
    for m in "$@"; do
      v=$(build/nnslim bench "$m" --batch-size $b --threads "$THREADS" --seconds $secs --runs 5 "${EXTRA[@]}" --json |
          $PY -c 'import json,sys; j=json.load(sys.stdin); print(j["median_ms"], j["memory_format"])')
      t["$m,$b"]="${t["$m,$b"]:-} ${v%% *}"
      t["$m,$b,fmt"]="${v##* }"
    done
  done
done
for m in "$@"; do
  $PY - "$m" "${t["$1,1"]}" "${t["$m,1"]}" "${t["$1,64"]}" "${t["$m,64"]}" "${t["$m,1,fmt"]}" "${t["$m,64,fmt"]}" <<'PYEOF'
import statistics, sys
m, r1, m1, r64, m64, f1, f64 = sys.argv[1:]
med = lambda s: statistics.median(float(x) for x in s.split())
print(f"{m:45s} batch 1: {med(m1):8.3f} ms ({f1}, {med(r1)/med(m1):.2f}x)   batch 64: {med(m64):8.2f} ms ({f64}, {med(r64)/med(m64):.2f}x)")
PYEOF
done
