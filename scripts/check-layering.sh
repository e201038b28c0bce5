#!/usr/bin/env bash
# The layering rule of docs/architecture.md, checked on the sources: each folder of the library
# includes only the folders below it. Run by ctest (test "Layering"); exits 1 naming every
# include that points upward.
#   scripts/check-layering.sh [ROOT]     check ROOT (default: this checkout)
#   scripts/check-layering.sh --self-test   prove the check fails on an upward include
set -euo pipefail

# Folder -> the nnslim/ folders it may include (itself always). apps/ may include everything.
declare -A allowed=(
  [core]=""
  [graph]="core"
  [data]="core graph"
  [models]="core graph"
  [io]="core graph"
  [eval]="core graph data"
  [optim]="core"
  [dist]="core"
  [report]="core graph"
  [methods]="core graph data models eval optim report"
  [train]="core graph data models eval optim report methods io dist"
)

check() {
  local root=$1 bad=0
  for layer in "${!allowed[@]}"; do
    for dir in "$root/include/nnslim/$layer" "$root/src/$layer"; do
      [ -d "$dir" ] || continue
      while IFS= read -r hit; do
        file=${hit%%:*}
        rest=${hit#*:}; line=${rest%%:*}
        target=$(sed -E 's/.*#include *"nnslim\/([a-z_]+)\/.*/\1/' <<<"$rest")
        [ "$target" = "$layer" ] && continue
        case " ${allowed[$layer]} " in *" $target "*) continue ;; esac
        echo "layering: ${file#$root/}:$line: $layer/ includes nnslim/$target/ (allowed: ${allowed[$layer]:-nothing})"
        bad=1
      done < <(grep -rnE '^\s*#\s*include *"nnslim/[a-z_]+/' "$dir" || true)
      # The library never includes the CLI's private headers.
      while IFS= read -r hit; do
        echo "layering: ${hit#$root/}: library code includes a header of apps/"
        bad=1
      done < <(grep -rnE '^\s*#\s*include *"(args|common|recipe)\.h"' "$dir" || true)
    done
  done
  for dir in "$root/include/nnslim"/*/; do
    name=$(basename "$dir")
    [ -n "${allowed[$name]+x}" ] || { echo "layering: include/nnslim/$name/ is not in the layer table of scripts/check-layering.sh"; bad=1; }
  done
  return $bad
}

if [ "${1:-}" = "--self-test" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/include/nnslim/graph" "$tmp/src/methods"
  echo '#include "nnslim/graph/graph.h"' > "$tmp/include/nnslim/graph/ok.h"
  check "$tmp" >/dev/null || { echo "self-test: a clean tree was refused"; exit 1; }
  echo '#include "nnslim/train/trainer.h"' > "$tmp/src/methods/up.cpp"
  if out=$(check "$tmp"); then echo "self-test: methods/ including train/ was not caught"; exit 1; fi
  grep -q 'src/methods/up.cpp:1: methods/ includes nnslim/train/' <<<"$out" || { echo "self-test: wrong message: $out"; exit 1; }
  echo "layering self-test: an upward include is caught"
  exit 0
fi

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
if check "$root"; then echo "layering: ok (no upward includes)"; else exit 1; fi
