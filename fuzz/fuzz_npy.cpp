// libFuzzer target for the .npy reader: any byte string must either parse into an array
// whose every element can be read, or throw kiln::Error; never crash or read out of bounds.
// Build: clang++ -std=c++20 -fsanitize=fuzzer,address,undefined -Iengine -Ibackends/io
//        engine/dtype.cpp engine/array.cpp backends/io/npy.cpp fuzz/fuzz_npy.cpp
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    kiln::Array a = kiln::parse_npy(data, size, "fuzz.npy");
    // Touch every byte the array claims to own, so a wrong size or stride shows up
    // under ASan rather than going unnoticed.
    const char* lo;
    const char* hi;
    a.byte_extent(lo, hi);
    volatile char sink = 0;
    for (const char* p = lo; p < hi; ++p) sink = sink ^ *p;
    (void)sink;
  } catch (const kiln::Error&) {
  }
  return 0;
}
