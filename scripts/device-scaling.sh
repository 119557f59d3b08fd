#!/usr/bin/env bash
# Thread scaling, which a 2-core build machine cannot show (issue 5): one run on a
# many-core machine, about five minutes on 16 cores. Writes to $OUT (or ./scaling-out) the
# machine's description, `kiln bench` over 1, 2, 4, 8, ... all threads, the suite with its
# scaling chart, the BLAS and creation benchmarks at 1 and all threads, and the unit tests'
# verdict on that many threads.
#
# KILN_BIN (and KILN_TESTS) run binaries built elsewhere, for a machine with neither
# Debian's packages nor a network to fetch them; their libraries go on LD_LIBRARY_PATH.
# Without KILN_BIN the script installs what is missing and builds.
# Each step has its own time limit and a failed step does not stop the others. STEPS names
# the steps to run (default: all of "bench suite linalg create tests"): a lent machine
# once stopped answering mid-run and brought nothing back, so run "bench" (a minute) in
# one call and the rest in the next. scripts/device-pack.sh packs the binaries.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-scaling-out}
mkdir -p "$out"
kiln=${KILN_BIN:-}
tests=${KILN_TESTS:-}
if [ -z "$kiln" ]; then
  # A machine without network access may still have every package: go on with what is there.
  bash scripts/install-deps.sh >"$out/install.log" 2>&1 || echo "install-deps.sh failed (see $out/install.log); using what is installed"
  [ -d build/meson-info ] || meson setup build --buildtype=release >/dev/null
  ninja -C build kiln tests/kiln_tests >/dev/null || exit 1
  kiln=./build/kiln tests=./build/tests/kiln_tests
fi
{ lscpu; echo "nproc: $(nproc)"; free -g; "$kiln" info; } >"$out/machine.txt" 2>&1
cat "$out/machine.txt"
all=$(nproc)
threads=1
for t in 2 4 8 16 32 64; do [ "$t" -lt "$all" ] && threads+=",$t"; done
threads+=",$all"
steps=" ${STEPS:-bench suite linalg create tests} "
step() {  # step NAME SECONDS COMMAND...: output to $out/NAME.txt and the log
  local name=$1 limit=$2
  shift 2
  [[ $steps == *" $name "* ]] || return 0
  echo "== $name: $*"
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
  echo "== $name: exit ${PIPESTATUS[0]}"
}
step bench 120 "$kiln" bench --reps 5 --threads "$threads"
step suite 240 "$kiln" bench --suite --sizes 1e5,1e6,1e7,1e8 --reps 5 --plot "$out/suite.svg"
step linalg 120 "$kiln" bench --linalg --reps 5
step create 90 "$kiln" bench --create --reps 5
if [ -n "$tests" ]; then step tests 150 "$tests"; fi
