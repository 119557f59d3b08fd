#!/usr/bin/env bash
# kiln's main job on a fresh Debian 12 machine: install what is missing, build a release
# build, then evaluate example expressions over generated .npy files and print a
# fused-vs-unfused timing table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d build/meson-info ] || meson setup build --buildtype=release >/dev/null
ninja -C build kiln >/dev/null
./build/kiln info
./build/kiln demo
