// Kernels for the x86-64 baseline (SSE2): compiled with no extra flags.
#define KILN_SIMD_NAME sse2
#define KILN_SIMD_NS isa_sse2
#define KILN_SIMD_ARCH xsimd::sse2
#include "kernel_impl.hpp"
