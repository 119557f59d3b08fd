// libFuzzer target for the .npz reader: any byte string must either parse into members
// whose every element can be read, or throw kiln::Error; never crash, hang, read out of
// bounds or allocate more than the input can justify (-rss_limit_mb catches the last).
// CRC-32 mismatches are ignored in this build (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION), since a
// fuzzer cannot forge them and would otherwise rarely get past one.
// Build: clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
//        -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
//        -Iengine -Ibackends/io engine/dtype.cpp engine/array.cpp backends/io/npy.cpp
//        backends/io/atomic_file.cpp backends/io/npz.cpp fuzz/fuzz_npz.cpp -lz -o fuzz_npz
#include <cstddef>
#include <cstdint>

#include "npz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    std::vector<kiln::NpzMember> members = kiln::parse_npz(data, size, "fuzz.npz");
    // Touch every byte each array claims to own, so a wrong size or stride shows up
    // under ASan rather than going unnoticed.
    volatile char sink = 0;
    for (const kiln::NpzMember& m : members) {
      const char* lo;
      const char* hi;
      m.array.byte_extent(lo, hi);
      for (const char* p = lo; p < hi; ++p) sink = sink ^ *p;
      for (char c : m.name) sink = sink ^ c;
    }
    (void)sink;
  } catch (const kiln::Error&) {
  }
  return 0;
}
