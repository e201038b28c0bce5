#!/usr/bin/env bash
# The README's main job: install dependencies, build, then train a baseline on Fashion-MNIST and
# compare every compression method on it (scripts/compare.sh: table + runs/compare/report.html).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec scripts/compare.sh
