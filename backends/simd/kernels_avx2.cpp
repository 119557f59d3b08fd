// Kernels for AVX2 + FMA: this file alone is compiled with -mavx2 -mfma.
#define KILN_SIMD_NAME avx2
#define KILN_SIMD_NS isa_avx2
#define KILN_SIMD_ARCH xsimd::fma3<xsimd::avx2>
#include "kernel_impl.hpp"
