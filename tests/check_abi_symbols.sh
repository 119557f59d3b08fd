#!/usr/bin/env bash
# The C ABI's exported functions (kiln_*) must be exactly tests/abi/c_symbols.txt: an added,
# renamed or removed function fails here until the list is updated on purpose (and, for a
# removal or a changed signature, the SONAME's major version with it).
#   check_abi_symbols.sh LIBKILN.so LIST
set -euo pipefail
lib=$1
list=$2
actual=$(nm -D --defined-only "$lib" | awk '$2 == "T" && $3 ~ /^kiln_/ {print $3}' | sort)
if ! diff <(sort "$list") <(echo "$actual") >/dev/null; then
  echo "the C ABI of $lib differs from $list (< listed only, > exported only):"
  diff <(sort "$list") <(echo "$actual") || true
  echo "if the change is intended, regenerate the list:"
  echo "  nm -D --defined-only $lib | awk '\$2 == \"T\" && \$3 ~ /^kiln_/ {print \$3}' | sort > $list"
  exit 1
fi
echo "C ABI: $(echo "$actual" | wc -l) functions, as listed"
