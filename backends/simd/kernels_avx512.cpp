// Kernels for AVX-512 (F, CD, DQ, BW, VL): this file alone is compiled with those flags.
#define KILN_SIMD_NAME avx512
#define KILN_SIMD_NS isa_avx512
#define KILN_SIMD_ARCH xsimd::avx512bw
#include "kernel_impl.hpp"
