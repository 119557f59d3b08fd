// Chooses a kernel table at run time from what the CPU supports (xsimd's cpuid).
#include <cstdlib>

#include <xsimd/xsimd.hpp>

#include "error.hpp"
#include "kernels.hpp"

namespace kiln::simd {

const KernelTable& kernels_sse2();
const KernelTable& kernels_avx2();
const KernelTable& kernels_avx512();

std::vector<std::string> available_isas() {
  auto cpu = xsimd::available_architectures();
  std::vector<std::string> isas;
  if (cpu.sse2) isas.push_back("sse2");
  if (cpu.fma3_avx2) isas.push_back("avx2");
  if (cpu.avx512bw && cpu.avx512dq && cpu.avx512cd && cpu.avx512f) isas.push_back("avx512");
  return isas;
}

const KernelTable* table_for(const std::string& isa) {
  for (const std::string& have : available_isas()) {
    if (have != isa) continue;
    if (isa == "sse2") return &kernels_sse2();
    if (isa == "avx2") return &kernels_avx2();
    if (isa == "avx512") return &kernels_avx512();
  }
  return nullptr;
}

const KernelTable& default_table() {
  static const KernelTable* chosen = [] {
    const char* forced = std::getenv("KILN_SIMD");
    if (forced && *forced) {
      const KernelTable* t = table_for(forced);
      if (!t) {
        std::string have;
        for (const std::string& s : available_isas()) have += " " + s;
        throw Error(Status::BadArgument, std::string("KILN_SIMD=") + forced +
                                             " is not an instruction set this CPU supports (available:" + have + ")");
      }
      return t;
    }
    return table_for(available_isas().back());
  }();
  return *chosen;
}

}  // namespace kiln::simd
