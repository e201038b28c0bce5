#!/usr/bin/env bash
# Builds and tests this checkout against LibTorch 2.x without touching the host: a Debian trixie
# chroot (libtorch-dev 2.6, g++ 14, ONNX 1.17, OpenCV 4.10) under /srv/trixie (CHROOT=...).
# Needs root and Debian's mirror; first run ~15 min plus the build (about as long as on the host).
#   scripts/check-libtorch2.sh            # build + ctest of the committed HEAD
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${CHROOT:-/srv/trixie}
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -q debootstrap
  debootstrap --variant=minbase trixie "$ROOT" http://deb.debian.org/debian
fi
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
chroot "$ROOT" bash -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q --no-install-recommends \
  libtorch-dev libopenblas0-pthread cmake ninja-build g++ libgtest-dev zlib1g-dev git ca-certificates \
  libonnx-dev libopencv-dnn-dev dataset-fashion-mnist >/dev/null'
rm -rf "$ROOT/root/nnslim"
git clone -q "$PWD" "$ROOT/root/nnslim"
echo "checking $(git rev-parse --short HEAD) against $(chroot "$ROOT" dpkg-query -W -f='libtorch-dev ${Version}' libtorch-dev)"
chroot "$ROOT" bash -c 'cd /root/nnslim && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null &&
  ninja -C build && cd build && OMP_NUM_THREADS=1 ctest -j "$(nproc)" --output-on-failure --timeout 600'
