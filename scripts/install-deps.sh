#!/usr/bin/env bash
# Installs the Debian 12 packages kiln needs, only those missing (root, or sudo).
# Everything comes from Debian: nothing is vendored or downloaded from elsewhere.
set -euo pipefail
packages=(g++ meson ninja-build pkg-config libxsimd-dev libtbb-dev xtensor-dev libopenblas-dev liblapacke-dev zlib1g-dev librandom123-dev libdlpack-dev
          catch2 valgrind python3 python3-numpy python3-numexpr python3-pytest python3-dask python3-distributed)
if [ "${1:-}" = "--with-fuzzers" ]; then packages+=(clang libclang-rt-14-dev); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
