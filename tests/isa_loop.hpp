// Runs a test body once for each instruction set this machine has, with kiln's kernels set
// to it, and puts back the set that was in force afterwards, also when the body throws (a
// failed REQUIRE): later test cases then still run on the set they expect.
#pragma once
#include <catch2/catch.hpp>

#include <string>

#include "kiln/kiln.hpp"

namespace kiln::test {

template <class Body> void for_each_isa(Body body) {
  struct Restore {
    std::string isa;
    ~Restore() { kiln::set_simd_isa(isa); }
  } restore{kiln::simd_isa()};
  for (const std::string& isa : kiln::available_simd_isas()) {
    kiln::set_simd_isa(isa);
    INFO("isa " << isa);
    body(isa);
  }
}

}  // namespace kiln::test
