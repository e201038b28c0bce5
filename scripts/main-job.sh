#!/usr/bin/env bash
# The README's main job: install dependencies, build, then train and evaluate on Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
OUT=${OUT:-runs/main}
EPOCHS=${EPOCHS:-3}
MODEL=${MODEL:-resnet20}
./build/nnslim train --model "$MODEL" --dataset fashion-mnist --epochs "$EPOCHS" --out "$OUT" --force
./build/nnslim info "$OUT/model.nnslim" | tail -n 2
