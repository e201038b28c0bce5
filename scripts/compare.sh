#!/usr/bin/env bash
# The comparison at the end of the README's main job: trains a baseline on Fashion-MNIST, then
# compresses it with every method at a comparable budget (half the MACs for the structured
# methods, half the blocks/weights for the others), and prints one table and writes an HTML
# report. The defaults are a small recipe meant to finish within 20 minutes on 2 cores
# (resnet20 on the first 5000 training images; docs/RESULTS.md has a measured run); the full run is
#   LIMIT_TRAIN=0 EPOCHS=15 METHOD_EPOCHS=5 FINETUNE_EPOCHS=5 scripts/compare.sh
# (several hours on 2 cores; minutes on a GPU with DEVICE=cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/compare}
MODEL=${MODEL:-resnet20}
LIMIT_TRAIN=${LIMIT_TRAIN:-5000}
EPOCHS=${EPOCHS:-6}
METHOD_EPOCHS=${METHOD_EPOCHS:-2}
FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-2}
DEVICE=${DEVICE:-auto}
N=./build/nnslim
data=(--dataset fashion-mnist --limit-train "$LIMIT_TRAIN" --device "$DEVICE")
mkdir -p "$OUT"
start=$(date +%s)
stage() { echo; echo "== $1 ($(( $(date +%s) - start ))s elapsed)"; }

# A finished step is kept, so an interrupted comparison continues where it stopped.
if [ ! -f "$OUT/baseline/summary.json" ]; then
  stage "baseline: $MODEL, $EPOCHS epochs"
  $N train --model "$MODEL" "${data[@]}" --epochs "$EPOCHS" --out "$OUT/baseline" --force
fi
BASE="$OUT/baseline/model.nnslim"
failed=()
run() {  # run NAME compress-options...   (a failing method is reported, the others still run)
  local name=$1; shift
  [ -f "$OUT/$name/summary.json" ] && { echo "== $name: already done"; return; }
  stage "$name"
  $N compress --model "$BASE" "${data[@]}" --out "$OUT/$name" --force "$@" || failed+=("$name")
}
run magnitude --method magnitude --target-macs 0.5 --finetune-epochs "$FINETUNE_EPOCHS"
run trp       --method trp --target-macs 0.5 --epochs "$METHOD_EPOCHS" --finetune-epochs "$FINETUNE_EPOCHS"
run hspg      --method hspg --lambda 5e-3 --target-group-sparsity 0.5 --epochs "$METHOD_EPOCHS" --finetune-epochs "$FINETUNE_EPOCHS"
run adapruner --method adapruner --target-macs 0.5 --epochs "$METHOD_EPOCHS" --finetune-epochs "$FINETUNE_EPOCHS" \
              --heldout 1000 --candidate-steps 20 --recal-batches 10
run unify     --method unify --prune 0.5 --unify 0.25 --epochs "$METHOD_EPOCHS" --finetune-epochs "$FINETUNE_EPOCHS"
run grda      --method grda --epochs $((METHOD_EPOCHS + FINETUNE_EPOCHS)) --lr 0.05 --c 0.1

stage "report"
dirs=()
for d in baseline magnitude trp hspg adapruner unify grda; do
  [ -f "$OUT/$d/summary.json" ] && dirs+=("$OUT/$d")
done
$N report "${dirs[@]}" --out "$OUT/report.html" \
  --title "nnslim: $MODEL on Fashion-MNIST ($LIMIT_TRAIN train images; 0 = all)"
echo "total $(( $(date +%s) - start ))s; open $OUT/report.html"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]} (their errors are above)" >&2
  exit 1
fi
