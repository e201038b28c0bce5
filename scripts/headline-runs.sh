#!/usr/bin/env bash
# The long runs that docs/RESULTS.md still needs (issues 4-7: vgg16, resnet56 and mobilenetv2 on
# Fashion-MNIST), as one resumable script. Each experiment writes runs/headline/NAME; a finished
# one (summary.json present) is skipped, an interrupted one is resumed from its checkpoints
# (written after every epoch and every 10 minutes within one), so the script can be stopped at
# any time, losing at most 10 minutes of training, and started again -- in a later session too,
# after copying runs/headline back.
#
#   scripts/headline-runs.sh                 # everything, in dependency order
#   ONLY="r56_base r56_hspg" scripts/headline-runs.sh
#   DEVICE=cuda EPOCHS=30 scripts/headline-runs.sh   # on a GPU: minutes per experiment
#   LIST=1 scripts/headline-runs.sh          # print the experiments and their state
#   OUT=/tmp/hl LIMIT_TRAIN=256 LIMIT_TEST=256 EPOCHS=1 NO_LATENCY=1 ONLY="r56_init r56_base" ...
#                                            # a quick trial of the commands
#
# On the 2-core CPU machine, at 1 thread with another run on the other core, an epoch takes
# ~17 min (resnet56), ~30-40 min (vgg16), ~25-34 min (mobilenetv2), ~6 min (resnet20): run two
# experiments at a time with THREADS=1 (ONLY=... in two shells).
#
# Every comparison starts from the same initialisation (seed 0) and trains the same number of
# epochs with the same cosine schedule; the magnitude baselines prune the trained dense model to
# the compressed model's MACs and fine-tune it.
set -euo pipefail
# Everything below is one block that bash reads whole before running it, so editing this file
# while a run is going does not make the running copy execute shifted lines.
{
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/headline}
EPOCHS=${EPOCHS:-8}                  # baseline and from-scratch method epochs (HSPG, gRDA)
METHOD_EPOCHS=${METHOD_EPOCHS:-3}    # AdaPruner sparsity epochs
FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-2}
DEVICE=${DEVICE:-auto}
THREADS=${THREADS:-0}
LAMBDA=${LAMBDA:-5e-3}               # HSPG group-lasso weight for short runs (docs/methods/hspg.md)
LIMIT_TRAIN=${LIMIT_TRAIN:-0}        # 0 = all 60000 training images (smaller: a quick trial)
LIMIT_TEST=${LIMIT_TEST:-0}
N=./build/nnslim
common=(--dataset fashion-mnist --device "$DEVICE" --threads "$THREADS" --limit-train "$LIMIT_TRAIN"
        --limit-test "$LIMIT_TEST")
[ -n "${NO_LATENCY:-}" ] && latency=(--no-latency) || latency=()
mkdir -p "$OUT"

done_() { [ -f "$OUT/$1/summary.json" ]; }
selected() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
started() { [ -d "$OUT/$1" ] && [ -n "$(ls -A "$OUT/$1" 2>/dev/null)" ]; }
state() {
  if done_ "$1"; then echo done; elif started "$1"; then echo interrupted; else echo "not started"; fi
}
need() {  # need NAME: a prerequisite experiment must be finished
  done_ "$1" || { echo "headline: $1 must finish first (run it: ONLY=$1 $0)" >&2; exit 1; }
}
# The MAC fraction a compressed run kept (for the magnitude baseline at the same MACs).
kept_macs() { awk -F': ' '/"macs_ratio"/ { gsub(/[ ,]/, "", $2); printf "%.4f", 1 / $2; exit }' "$OUT/$1/summary.json"; }

train() {  # train NAME MODEL EPOCHS
  local name=$1 model=$2 epochs=$3
  selected "$name" || return 0
  if [ -n "${LIST:-}" ]; then echo "$name: $(state "$name")"; return 0; fi
  done_ "$name" && { echo "== $name: done"; return 0; }
  echo "== $name ($(date))"
  if started "$name"; then
    $N train --resume "$OUT/$name" --threads "$THREADS"
  else
    $N train --model "$model" "${common[@]}" --epochs "$epochs" --seed 0 --out "$OUT/$name"
  fi
}
compress() {  # compress NAME INPUT-EXPERIMENT compress-options...
  local name=$1 input=$2; shift 2
  selected "$name" || return 0
  if [ -n "${LIST:-}" ]; then echo "$name: $(state "$name")"; return 0; fi
  done_ "$name" && { echo "== $name: done"; return 0; }
  need "$input"
  echo "== $name ($(date))"
  local resume=()
  started "$name" && resume=(--resume)
  $N compress --model "$OUT/$input/model.nnslim" "${common[@]}" "${latency[@]}" --out "$OUT/$name" \
    "${resume[@]}" "$@"
}

for model in resnet56 vgg16 mobilenetv2; do
  short=${model/resnet/r}; short=${short/mobilenetv2/mbv2}
  train "${short}_init" "$model" 0
  train "${short}_base" "$model" "$EPOCHS"
done

# Issue 4: HSPG from the initialisation vs the dense baseline, and magnitude pruning at HSPG's MACs.
magnitude_at_macs_of() {  # magnitude_at_macs_of NAME BASE: magnitude pruning of BASE to NAME's MACs
  local name=$1 base=$2
  if ! done_ "$name"; then
    selected "${name}_mag" || return 0
    if [ -n "${LIST:-}" ]; then echo "${name}_mag: waits for $name"; return 0; fi
    need "$name"
  fi
  compress "${name}_mag" "$base" --method magnitude --criterion l1 \
    --target-macs "$(kept_macs "$name")" --recalibrate-bn 50 --finetune-epochs "$FINETUNE_EPOCHS"
}
# vgg16 takes a lambda between resnet56's two runs (5e-3: 87% of the groups zero, 18x fewer MACs,
# -2.9 points; 1e-3: 10%, 1.14x, -0.5): the goal is >= 3x at <= 0.5 points, and a vgg16 run is
# ~4 h on one core, so it starts where the resnet56 runs point rather than at either end.
VGG_LAMBDA=${VGG_LAMBDA:-2e-3}
for m in r56 vgg16; do
  lambda=$LAMBDA
  [ "$m" = vgg16 ] && lambda=$VGG_LAMBDA
  compress "${m}_hspg" "${m}_init" --method hspg --epochs "$EPOCHS" --lr 0.1 --schedule cosine \
    --lambda "$lambda" --prox-epochs $((EPOCHS / 4))
  magnitude_at_macs_of "${m}_hspg" "${m}_base"
done
# The from-scratch control: HSPG's architecture trained from fresh weights with the baseline's
# schedule -- does the compressed network's accuracy come from HSPG or only from its shape?
scratch_of() {  # scratch_of NAME
  local name=${1}_scratch
  selected "$name" || return 0
  if [ -n "${LIST:-}" ]; then echo "$name: $(state "$name")"; return 0; fi
  done_ "$name" && { echo "== $name: done"; return 0; }
  need "$1"
  echo "== $name ($(date))"
  if started "$name"; then
    $N train --resume "$OUT/$name" --threads "$THREADS"
  else
    $N train --init "$OUT/$1/model.nnslim" --reinit --seed 0 "${common[@]}" --epochs "$EPOCHS" \
      --lr 0.1 --schedule cosine --out "$OUT/$name"
  fi
}
scratch_of vgg16_hspg
scratch_of r56_hspg
# The same with the paper's ResNet lambda (1e-3): lambda 5e-3 zeroed 87% of resnet56's groups in
# 8 epochs and cost 2.9 points (docs/RESULTS.md); this is the gentler end of the trade-off.
compress r56_hspg_paper r56_init --method hspg --epochs "$EPOCHS" --lr 0.1 --schedule cosine \
  --lambda 1e-3 --prox-epochs $((EPOCHS / 4))
# Between the two, at a stated budget: lambda 5e-3 stopped at half of the MACs (--target-macs,
# our addition), the budget of the AdaPruner and magnitude runs below.
compress r56_hspg_m50 r56_init --method hspg --epochs "$EPOCHS" --lr 0.1 --schedule cosine \
  --lambda "$LAMBDA" --prox-epochs $((EPOCHS / 4)) --target-macs 0.5
magnitude_at_macs_of r56_hspg_m50 r56_base
# vgg16 at the issue's goal (>= 3x fewer MACs): lambda 2e-3 zeroes groups fast; the budget stops
# it at 0.3 of the MACs (3.3x) instead of wherever lambda would take it.
compress vgg16_hspg_m30 vgg16_init --method hspg --epochs "$EPOCHS" --lr 0.1 --schedule cosine \
  --lambda "$VGG_LAMBDA" --prox-epochs $((EPOCHS / 4)) --target-macs 0.3
magnitude_at_macs_of vgg16_hspg_m30 vgg16_base

# Issue 5: AdaPruner and magnitude pruning at 0.7 and 0.5 of the MACs.
# AdaPruner's sparse training does not depend on the budget: a run whose sibling has finished it
# starts from the sibling's training checkpoint (resumed: straight to the width search).
share_sparse_training() {  # share_sparse_training FROM TO
  local from=$1 to=$2 ck=$OUT/$1/train
  [ "$from" != "$to" ] && [ -z "${LIST:-}" ] && selected "$to" && ! started "$to" || return 0
  [ -f "$ck/checkpoint.nnslim-ckpt" ] && [ "$(wc -l < "$ck/metrics.jsonl")" -ge "$METHOD_EPOCHS" ] || return 0
  mkdir -p "$OUT/$to/train"
  cp "$ck/checkpoint.nnslim-ckpt" "$ck/metrics.jsonl" "$OUT/$to/train/"
  echo "== $to: sparse training taken from $from"
}
for m in r56 mbv2; do
  for f in 0.7 0.5; do
    pct=${f#0.}0
    share_sparse_training "${m}_ada70" "${m}_ada${pct}"
    compress "${m}_ada${pct}" "${m}_base" --method adapruner --target-macs "$f" --divisor 8 \
      --epochs "$METHOD_EPOCHS" --finetune-epochs "$FINETUNE_EPOCHS"
    compress "${m}_mag${pct}" "${m}_base" --method magnitude --criterion l1 --target-macs "$f" \
      --round-to 8 --recalibrate-bn 50 --finetune-epochs "$FINETUNE_EPOCHS"
  done
done

# Issue 6: unification on vgg16 (the resnet20 recipe of docs/RESULTS.md, shortened to 2 ADMM
# epochs -- 29 rounds, enough for rho to reach its cap -- and 1 retraining epoch, so that the
# dense baseline and this run fit one session: a vgg16 epoch is ~10 min on the 2 idle cores).
VGG_UNIFY_EPOCHS=${VGG_UNIFY_EPOCHS:-2}
VGG_UNIFY_FINETUNE=${VGG_UNIFY_FINETUNE:-1}
compress vgg16_unify vgg16_base --method unify --prune 0.5 --unify 0.25 --block 1x4xK \
  --epochs "$VGG_UNIFY_EPOCHS" --lr 0.01 --round-batches 32 --rho 0.05 --rho-growth 1.2 --rho-max 5 \
  --finetune-epochs "$VGG_UNIFY_FINETUNE" --finetune-lr 0.01 --recalibrate-bn 50

# Issue 7: gRDA on vgg16 from the baseline's initialisation, same epochs and schedule. c scales
# the threshold to vgg16's smaller 512-channel weights (measured: 97.3% zeros, +1.9 points).
VGG_GRDA_C=${VGG_GRDA_C:-0.006}
compress vgg16_grda vgg16_init --method grda --epochs "$EPOCHS" --lr 0.1 --schedule cosine \
  --c "$VGG_GRDA_C" --mu 0.65

# Issue 7, resnet20 on a longer schedule: at 15 epochs no c gave both >= 90% zeros and <= 1 point
# (c = 0.01: 89.1% at -0.98; 0.011-0.012: 90.8-91.9% at -1.3); at 30 epochs c = 0.0075 gave
# 89.70% at -0.90 and c = 0.008 90.45% at -0.83 (docs/RESULTS.md), the default. Another
# R20_EPOCHS needs its own R20_C: keep the final threshold G = c * sum lr_n^(mu+1/2)
# (n^mu - (n-1)^mu) near what gave ~90.5% zeros: ~0.17 over 30 epochs, ~0.15 over 15 (more
# steps need a larger G for the same sparsity). A finished r20_grdaN is skipped,
# so move it before a rerun with another c. The SGD comparator trains the same epochs from the
# same seed. At 1 thread with the two runs side by side an epoch takes ~4 min: 30 epochs ~2 h.
R20_EPOCHS=${R20_EPOCHS:-30}
R20_C=${R20_C:-0.008}
train r20_init resnet20 0
train "r20_sgd$R20_EPOCHS" resnet20 "$R20_EPOCHS"
compress "r20_grda$R20_EPOCHS" r20_init --method grda --epochs "$R20_EPOCHS" --lr 0.1 \
  --schedule cosine --c "$R20_C" --mu 0.65
exit
}
