#!/usr/bin/env bash
# Builds and runs every test on a fresh Debian 12 machine: installs what is missing,
# then (1) a release build and its tests, (2) an address+undefined sanitizer build and
# its tests, (3) short fuzz runs of the parser, the .npy reader and the .npz reader
# (clang's libFuzzer).
# Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --with-fuzzers || exit 1
jobs=$(nproc)
passed=0
failed=0
count() {  # adds meson's "Ok:" and "Fail:" counts from its summary
  local log=$1 ok fail
  ok=$(grep -E '^Ok:' "$log" | awk '{print $2}' | tail -1)
  fail=$(grep -E '^(Fail|Timeout):' "$log" | awk '{s += $2} END {print s + 0}')
  passed=$((passed + ${ok:-0}))
  failed=$((failed + ${fail:-0}))
  if [ -z "$ok" ]; then failed=$((failed + 1)); fi
}

echo "== release build"
[ -d build/meson-info ] || meson setup build --buildtype=release >/dev/null || exit 1
if ninja -C build -j "$jobs" >build/ninja.log 2>&1; then
  meson test -C build --print-errorlogs --num-processes "$jobs" 2>&1 | tee build/test.log
  count build/test.log
else
  tail -50 build/ninja.log; failed=$((failed + 1))
fi

echo "== sanitizer build (address, undefined)"
# -g1 (line tables, enough for the sanitizers' stack traces): full -g's variable tracking
# doubled the compile time of the big template files.
# Kernels only for the sets this CPU runs (the release build compiles every set): the
# sanitizers check what runs, and AVX-512's kernels are the longest to compile.
has() { grep -qw "$1" /proc/cpuinfo; }
simd=sse2
if has avx2 && has fma; then simd+=,avx2; fi
if has avx512f && has avx512cd && has avx512dq && has avx512bw; then simd+=,avx512; fi  # as dispatch.cpp asks
if [ -d build-asan/meson-info ]; then
  meson configure build-asan -Dsimd=$simd >/dev/null || exit 1
else
  meson setup build-asan --buildtype=plain -Doptimization=2 -Db_ndebug=false -Dcpp_args=-g1 \
    -Db_sanitize=address,undefined -Db_lundef=false -Dsimd=$simd >/dev/null || exit 1
fi
echo "kernels for $simd"

if ninja -C build-asan -j "$jobs" >build-asan/ninja.log 2>&1; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --print-errorlogs --num-processes "$jobs" --timeout-multiplier 4 2>&1 | tee build-asan/test.log
  count build-asan/test.log
else
  tail -50 build-asan/ninja.log; failed=$((failed + 1))
fi

echo "== fuzzing (parser, .npy reader, .npz reader)"
if bash scripts/fuzz.sh 30; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
