// Chooses a kernel table at run time from what the CPU supports (xsimd's cpuid).
#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <string_view>

#include <xsimd/xsimd.hpp>

#include "error.hpp"
#include "kernels.hpp"

namespace kiln::simd {

const KernelTable& kernels_sse2();
const KernelTable& kernels_avx2();
const KernelTable& kernels_avx512();

using Cpu = decltype(xsimd::available_architectures());

// The sets this build compiled (meson's -Dsimd defines KILN_SIMD_<SET> for each; SSE2
// always), narrowest first, and whether a CPU runs each.
struct BuiltSet {
  std::string_view name;
  const KernelTable& (*table)();
  bool (*runs)(const Cpu&);
};
constexpr BuiltSet kBuilt[] = {
    {"sse2", kernels_sse2, [](const Cpu& cpu) { return bool(cpu.sse2); }},
#ifdef KILN_SIMD_AVX2
    {"avx2", kernels_avx2, [](const Cpu& cpu) { return bool(cpu.fma3_avx2); }},
#endif
#ifdef KILN_SIMD_AVX512
    {"avx512", kernels_avx512,
     [](const Cpu& cpu) { return bool(cpu.avx512bw && cpu.avx512dq && cpu.avx512cd && cpu.avx512f); }},
#endif
};

std::vector<std::string> available_isas() {
  const Cpu cpu = xsimd::available_architectures();
  std::vector<std::string> isas;
  for (const BuiltSet& set : kBuilt)
    if (set.runs(cpu)) isas.emplace_back(set.name);
  return isas;
}

const KernelTable* table_for(const std::string& isa) {
  const Cpu cpu = xsimd::available_architectures();
  for (const BuiltSet& set : kBuilt)
    if (set.name == isa && set.runs(cpu)) return &set.table();
  return nullptr;
}

std::string unavailable_reason(const std::string& isa) {
  const bool built = std::any_of(std::begin(kBuilt), std::end(kBuilt), [&](const BuiltSet& set) { return set.name == isa; });
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
