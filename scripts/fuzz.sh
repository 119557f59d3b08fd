#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for N seconds (default 30) from a
# small seed corpus. Any crash, leak or sanitizer report fails.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
out=build-fuzz
mkdir -p "$out"
common=(engine/dtype.cpp engine/array.cpp engine/ops.cpp engine/graph.cpp engine/generate.cpp engine/linalg.cpp)
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iengine -Ifrontend -Ibackends/io
       -Ibackends/simd -Ibackends/blas)
# The three targets compile side by side (each is one clang++ call over its sources).
clang++ "${flags[@]}" "${common[@]}" frontend/parser.cpp fuzz/fuzz_parser.cpp -o "$out/fuzz_parser" &
parser_build=$!
clang++ "${flags[@]}" "${common[@]}" backends/io/npy.cpp fuzz/fuzz_npy.cpp -o "$out/fuzz_npy" &
npy_build=$!
# CRC-32 checks are skipped in this build only: a fuzzer cannot forge them.
clang++ "${flags[@]}" -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION "${common[@]}" backends/io/npy.cpp \
  backends/io/atomic_file.cpp backends/io/npz.cpp fuzz/fuzz_npz.cpp -lz -o "$out/fuzz_npz" &
npz_build=$!
built=0
for job in $parser_build $npy_build $npz_build; do wait $job || built=1; done
[ $built = 0 ] || exit 1
mkdir -p "$out/corpus_parser" "$out/corpus_npy" "$out/corpus_npz"
i=0
for e in 'sqrt(a*a + b*b)' 'where(x > 0, x, 0.1*x)' '-x**2 // 3 % y' '(a < b) & ~(c >= 1e-3)' 'clip(float32(a), -1, .5)' \
         'sum(x, axis=(0, -1), keepdims=True) + argmax(y, 1)' 't = a*b; s = var(t, ddof=1); t - s' \
         'where(uniform(size=(3, 4), seed=1) < 0.5, arange(4), zeros_like(x))' \
         'linspace(0, 1, 5, endpoint=False) + eye(5, k=-1, dtype=int32) * normal(1, 2, seed=3)' \
         'relu(a @ b + c) - solve(inv(a), x) @ det(a)' "q, r = qr(a, mode='complete'); norm(q @ r, ord=inf, axis=(0, 1))" \
         "u, s, vh = svd(a, full_matrices=False); eigh(a, UPLO='U')[1] @ lstsq(a, b, rcond=1e-9)[0]"; do
  printf '%s' "$e" >"$out/corpus_parser/seed$i"; i=$((i + 1))
done
printf '\x93NUMPY\x01\x00\x76\x00{'"'"'descr'"'"': '"'"'<f8'"'"', '"'"'fortran_order'"'"': False, '"'"'shape'"'"': (2,), }' \
  >"$out/corpus_npy/seed0"
# .npz seeds: a stored and a deflated archive, written by the release build's kiln if there is one.
if [ -x build/kiln ]; then
  printf '\x93NUMPY\x01\x00\x76\x00{'"'"'descr'"'"': '"'"'<f8'"'"', '"'"'fortran_order'"'"': False, '"'"'shape'"'"': (2,), }' \
    >"$out/seed.npy"
  head -c 16 /dev/zero >>"$out/seed.npy"
  build/kiln convert "$out/seed.npy" "$out/corpus_npz/stored.npz" >/dev/null 2>&1 || true
  build/kiln convert "$out/seed.npy" "$out/corpus_npz/deflated.npz" --compress >/dev/null 2>&1 || true
fi
printf 'PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0' >"$out/corpus_npz/empty.npz"
"$out/fuzz_parser" -max_total_time="$seconds" -print_final_stats=0 "$out/corpus_parser" 2>"$out/parser.log" ||
  { tail -40 "$out/parser.log"; exit 1; }
"$out/fuzz_npy" -max_total_time="$seconds" -print_final_stats=0 "$out/corpus_npy" 2>"$out/npy.log" ||
  { tail -40 "$out/npy.log"; exit 1; }
"$out/fuzz_npz" -max_total_time="$seconds" -rss_limit_mb=1024 -print_final_stats=0 "$out/corpus_npz" 2>"$out/npz.log" ||
  { tail -40 "$out/npz.log"; exit 1; }
echo "fuzzing: no crash in ${seconds}s per target ($(ls "$out/corpus_parser" | wc -l) parser inputs in the corpus)"
