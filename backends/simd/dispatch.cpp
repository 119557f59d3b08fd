// Chooses a kernel table at run time from what the CPU supports (xsimd's cpuid).
#include <cstdlib>

#include <xsimd/xsimd.hpp>

#include "error.hpp"
#include "kernels.hpp"

namespace kiln::simd {

// The sets this build compiled (meson's -Dsimd; KILN_SIMD_<SET> for each); SSE2 always.
const KernelTable& kernels_sse2();
#ifdef KILN_SIMD_AVX2
const KernelTable& kernels_avx2();
#endif
#ifdef KILN_SIMD_AVX512
const KernelTable& kernels_avx512();
#endif

// The sets both this CPU runs and this build has, narrowest first.
std::vector<std::string> available_isas() {
  [[maybe_unused]] auto cpu = xsimd::available_architectures();
  std::vector<std::string> isas;
  if (cpu.sse2) isas.push_back("sse2");
#ifdef KILN_SIMD_AVX2
  if (cpu.fma3_avx2) isas.push_back("avx2");
#endif
#ifdef KILN_SIMD_AVX512
  if (cpu.avx512bw && cpu.avx512dq && cpu.avx512cd && cpu.avx512f) isas.push_back("avx512");
#endif
  return isas;
}

const KernelTable* table_for(const std::string& isa) {
  for (const std::string& have : available_isas()) {
    if (have != isa) continue;
    if (isa == "sse2") return &kernels_sse2();
#ifdef KILN_SIMD_AVX2
    if (isa == "avx2") return &kernels_avx2();
#endif
#ifdef KILN_SIMD_AVX512
    if (isa == "avx512") return &kernels_avx512();
#endif
  }
  return nullptr;
}

std::string unavailable_reason(const std::string& isa) {
  bool built = isa == "sse2";
#ifdef KILN_SIMD_AVX2
  built = built || isa == "avx2";
#endif
#ifdef KILN_SIMD_AVX512
  built = built || isa == "avx512";
#endif
  std::string why = isa != "sse2" && isa != "avx2" && isa != "avx512" ? "is not an instruction set kiln has"
                    : !built ? "was not built (meson's -Dsimd)"
                             : "is not one this CPU runs";
  std::string have;
  for (const std::string& s : available_isas()) have += " " + s;
  return why + " (available:" + have + ")";
}

const KernelTable& default_table() {
  static const KernelTable* chosen = [] {
    const char* forced = std::getenv("KILN_SIMD");
    if (forced && *forced) {
      const KernelTable* t = table_for(forced);
      if (!t) throw Error(Status::BadArgument, std::string("KILN_SIMD=") + forced + " " + unavailable_reason(forced));
      return t;
    }
    return table_for(available_isas().back());
  }();
  return *chosen;
}

}  // namespace kiln::simd
