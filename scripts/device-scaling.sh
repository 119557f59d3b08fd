#!/usr/bin/env bash
# Thread scaling, which a 2-core build machine cannot show (issue 5): one run on a
# many-core machine, a few minutes on 16 cores. Builds if needed, then writes the
# machine's description, `kiln bench` over 1, 2, 4, 8, ... all threads and the suite
# (with its scaling chart) to $OUT, or ./scaling-out.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-scaling-out}
mkdir -p "$out"
# A machine without network access may still have every package: go on with what is there.
bash scripts/install-deps.sh >"$out/install.log" 2>&1 || echo "install-deps.sh failed (see $out/install.log); using what is installed"
[ -d build/meson-info ] || meson setup build --buildtype=release >/dev/null
ninja -C build kiln >/dev/null
{ lscpu; echo "nproc: $(nproc)"; } >"$out/machine.txt"
./build/kiln info | tee "$out/info.txt"
all=$(nproc)
threads=1
for t in 2 4 8 16 32 64; do [ "$t" -lt "$all" ] && threads+=",$t"; done
threads+=",$all"
./build/kiln bench --reps 5 --threads "$threads" | tee "$out/bench.txt"
./build/kiln bench --suite --sizes 1e6,1e7 --reps 5 --plot "$out/suite.svg" | tee "$out/suite.txt"
