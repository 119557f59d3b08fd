// Kernels for AVX-512 (F, CD, DQ, BW, VL): this file alone is compiled with those flags.
#define KILN_SIMD_NS isa_avx512
#define KILN_SIMD_ARCH xsimd::avx512bw
#include "kernel_impl.hpp"

namespace kiln::simd {
const KernelTable& kernels_avx512() {
  static const KernelTable table = isa_avx512::make_table("avx512");
  return table;
}
}  // namespace kiln::simd
