#!/usr/bin/env bash
# Builds examples/subproject as a newcomer's project would, both ways it can find kiln:
#  1. kiln's source as subprojects/kiln, pulled in by dependency()'s fallback; the build
#     is then installed (`meson install`) into a temporary prefix, kiln included;
#  2. the same project with no subproject, finding that installed kiln through pkg-config.
# Each build's own tests run the consumer programs. Usage: check_consumers.sh KILN_SOURCE
set -euo pipefail
src=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A clean environment: nothing from the calling build's meson leaks into these.
unset MESON_BUILD_ROOT MESON_SOURCE_ROOT MESON_SUBDIR MESONINTROSPECT KILN_SIMD

cp -r "$src/examples/subproject" "$tmp/consumer"
mkdir "$tmp/consumer/subprojects"
# kiln's source, as a git submodule or a copy would give it (no build folders).
mkdir "$tmp/consumer/subprojects/kiln"
tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$tmp/consumer/subprojects/kiln" -xf -

echo "== 1. kiln as a subproject"
# Kernels for SSE2 only (-Dkiln:simd): this checks how kiln is found, built and installed,
# and the release build has compiled every set already; all three took most of this
# test's time (227 s on 2 cores). Step 3 checks that the option reached kiln.
meson setup "$tmp/build-sub" "$tmp/consumer" --force-fallback-for=kiln -Dkiln:simd=sse2 --prefix="$tmp/prefix" >"$tmp/setup1.log" ||
  { cat "$tmp/setup1.log"; exit 1; }
grep -q "kiln found as: internal" "$tmp/setup1.log" || { cat "$tmp/setup1.log"; echo "kiln was not the subproject"; exit 1; }
ninja -C "$tmp/build-sub" >"$tmp/ninja1.log" || { tail -40 "$tmp/ninja1.log"; exit 1; }
meson test -C "$tmp/build-sub" --print-errorlogs consumer-c consumer-cpp
meson install -C "$tmp/build-sub" --quiet

echo "== 2. installed kiln through pkg-config"
rm -rf "$tmp/consumer/subprojects"
pc_file=$(find "$tmp/prefix" -name kiln.pc | head -1)
[ -n "$pc_file" ] || { echo "meson install put no kiln.pc under $tmp/prefix"; exit 1; }
pc_dir=$(dirname "$pc_file")  # LIBDIR/pkgconfig
PKG_CONFIG_PATH="$pc_dir" meson setup "$tmp/build-pc" "$tmp/consumer" --wrap-mode=nofallback >"$tmp/setup2.log" ||
  { cat "$tmp/setup2.log"; exit 1; }
grep -q "kiln found as: pkgconfig" "$tmp/setup2.log" || { cat "$tmp/setup2.log"; echo "kiln was not found by pkg-config"; exit 1; }
ninja -C "$tmp/build-pc" >"$tmp/ninja2.log" || { tail -40 "$tmp/ninja2.log"; exit 1; }
LD_LIBRARY_PATH="$(dirname "$pc_dir")" \
  meson test -C "$tmp/build-pc" --print-errorlogs consumer-c consumer-cpp
# The programs must have compiled against the installed headers and library only.
grep -q -- "-I$tmp/prefix/include" "$tmp/build-pc/build.ninja" || { echo "the pkg-config build does not use the installed headers"; exit 1; }
! grep -q -e "subprojects/kiln" -e "$src" "$tmp/build-pc/build.ninja" || { echo "the pkg-config build saw kiln's source"; exit 1; }

echo "== 3. the installed Python package loads the library it was installed with"
config=$(find "$tmp/prefix" -path '*/kiln/_config.py' | head -1)
[ -n "$config" ] || { echo "meson install put no kiln/_config.py under $tmp/prefix"; exit 1; }
env -u KILN_LIBRARY PYTHONPATH="$(dirname "$(dirname "$config")")" /usr/bin/python3 - "$tmp/prefix" <<'PY'
import sys
import numpy as np
import kiln
prefix = sys.argv[1]
assert kiln.__file__.startswith(prefix), f"imported {kiln.__file__}, not the installed package"
assert kiln.LIBRARY.startswith(prefix), f"loaded {kiln.LIBRARY}, not the installed library"
a = np.arange(5.0)
assert np.array_equal(kiln.evaluate("2*a + 1"), 2 * a + 1)
# Sets the library has, whatever this CPU runs: the error for a set it lacks lists them.
from kiln._lib import lib
assert lib.kiln_set_simd_isa(b"none") != 0
built = lib.kiln_last_error().decode()
assert built.endswith("(available: sse2)"), f"built with -Dkiln:simd=sse2: {built}"
assert lib.kiln_set_simd_isa(b"avx2") != 0
assert "was not built" in lib.kiln_last_error().decode(), lib.kiln_last_error().decode()
print("import kiln:", kiln.LIBRARY)
PY
echo "both consumers built and passed; the Python package imports"
