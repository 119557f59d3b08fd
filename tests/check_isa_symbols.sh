#!/usr/bin/env bash
# Each SIMD kernel library must define no shared (weak) function that another library
# could define too: the linker keeps one copy for all instruction sets, so code compiled
# for AVX-512 could then run on a CPU without it. Allowed: kiln's per-set namespace, and
# xsimd templates instantiated for this set's own architecture type (which no other set
# instantiates). Shared read-only data tables ("u" symbols) are identical bytes, harmless.
set -euo pipefail
status=0
for lib in "$@"; do
  isa=$(basename "$lib" .a)
  isa=${isa#libkiln_simd_}
  case $isa in
    sse2) arch='xsimd::sse2' ;;
    avx2) arch='xsimd::fma3<xsimd::avx2>' ;;
    avx512) arch='xsimd::avx512bw' ;;
    *) echo "$lib: unknown instruction set '$isa'"; exit 1 ;;
  esac
  bad=$(nm -C --defined-only "$lib" | grep -E ' [WV] ' | grep -v -F -e "isa_$isa" -e "$arch" -e 'DW.ref.__gxx_personality_v0' || true)
  if [ -n "$bad" ]; then
    echo "$lib: weak symbols shared across instruction sets:"
    echo "$bad"
    status=1
  else
    echo "$lib: ok (every weak symbol is private to $isa)"
  fi
done
exit $status
