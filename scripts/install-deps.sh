#!/usr/bin/env bash
# Installs what nnslim needs on Debian 12 (idempotent; skips apt when everything is present).
set -euo pipefail
packages=(build-essential cmake ninja-build libtorch-dev libopenblas0-pthread zlib1g-dev
          libgtest-dev dataset-fashion-mnist libonnx-dev libopencv-dnn-dev chromium
          python3-torch python3-torchvision libgloo-dev libturbojpeg0-dev libpng-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "nnslim: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
