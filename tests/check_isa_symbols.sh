#!/usr/bin/env bash
# Each SIMD kernel library must define no shared (weak) function outside its own
# namespace: the linker keeps one copy for all instruction sets, so code compiled for
# AVX-512 could then run on a CPU without it. (Shared read-only data tables, "u"
# symbols, are identical bytes in every copy and harmless.)
set -euo pipefail
status=0
for lib in "$@"; do
  isa=$(basename "$lib" .a)
  isa=${isa#libkiln_simd_}
  bad=$(nm -C --defined-only "$lib" | grep -E ' [WV] ' | grep -v "isa_$isa" | grep -v 'DW.ref.__gxx_personality_v0' || true)
  if [ -n "$bad" ]; then
    echo "$lib: weak symbols shared across instruction sets:"
    echo "$bad"
    status=1
  else
    echo "$lib: ok ($(nm --defined-only "$lib" | grep -c ' [WT] ') functions, all private to $isa)"
  fi
done
exit $status
