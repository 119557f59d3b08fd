#!/usr/bin/env bash
# Packs build/kiln and build/tests/kiln_tests with the libraries they load (all but
# glibc's) into .dev/devpack.tar.xz, under the device machine's 64 MiB carry limit (about
# 11 MiB), for scripts/device-scaling.sh on a machine without Debian's packages:
#   run(carry [".dev"], command: the line printed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.dev/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info && echo /.dev/ >>.git/info/exclude; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp build/kiln build/tests/kiln_tests "$stage"/
for lib in $(ldd build/kiln build/tests/kiln_tests | awk '/=>/ {print $3}' | sort -u); do
  case $(basename "$lib") in libc.so* | libm.so* | libmvec.so*) ;; *) cp -L "$lib" "$stage"/ ;; esac
done
strip "$stage"/*
mkdir -p .dev
tar -C "$stage" -cJf .dev/devpack.tar.xz .
ls -la .dev/devpack.tar.xz
# Debian 12's libstdc++ stays out of the way where the machine has one as new or newer.
cat <<'CMD'
mkdir -p /tmp/k && tar -C /tmp/k -xJf .dev/devpack.tar.xz && s=$(ldconfig -p | awk '/libstdc\+\+\.so\.6 .*x86-64/{print $NF; exit}'); if [ -n "$s" ] && grep -qa GLIBCXX_3.4.30 "$s"; then rm -f /tmp/k/libstdc++.so.6 /tmp/k/libgcc_s.so.1; fi; LD_LIBRARY_PATH=/tmp/k KILN_BIN=/tmp/k/kiln KILN_TESTS=/tmp/k/kiln_tests STEPS="bench" bash scripts/device-scaling.sh
CMD
