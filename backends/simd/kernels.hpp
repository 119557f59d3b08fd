// The kernel tables: for every op of the table and every dtype it computes in, one
// function that runs the op over `n` contiguous elements. One table per instruction set
// (kernels_<isa>.cpp, each compiled with that set's flags); the best one the CPU has is
// chosen at run time, and KILN_SIMD=<isa> forces another so tests can run them all.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ops.hpp"

namespace kiln::simd {

// src[i] points at operand i (n elements of its dtype), dst at n elements of the result.
// dst never aliases a source of a different item size; it may equal a source of the same.
using KernelFn = void (*)(const void* const* src, void* dst, int64_t n);

// A reduction's running value: the accumulator in its dtype's representation and, for
// argmin/argmax, the index of the element it came from.
struct ReduceAcc {
  alignas(8) unsigned char value[8];
  int64_t index;
};

// The kernels of one reduction in one accumulate dtype (unset for mean, std and var:
// the simplifier rewrites them into sums).
struct ReduceFns {
  // *acc = the reduction of n >= 1 contiguous values, pairwise for sums (argmin/argmax:
  // acc->index = base + the position of the first minimum/maximum or NaN).
  void (*run)(const void* src, int64_t n, int64_t base, ReduceAcc* acc);
  // *acc = *acc combined with *later, a reduction of elements that come after acc's.
  void (*combine)(ReduceAcc* acc, const ReduceAcc* later);
  // Element-wise: acc[i] = acc[i] combined with src[i], for n values of the accumulate
  // dtype; argmin/argmax also keep acc_index[i] = src_index ? src_index[i] : row when
  // src[i] wins. src comes after acc.
  void (*accumulate)(void* acc, int64_t* acc_index, const void* src, const int64_t* src_index, int64_t row,
                     int64_t n);
  // Float sums only: *acc = the pairwise sum of x[i] * y[i] (each product rounded, as
  // multiply then sum would); null elsewhere.
  void (*run_products)(const void* x, const void* y, int64_t n, ReduceAcc* acc) = nullptr;
};

// Two float arithmetic ops run as one instruction, the first's result kept in registers:
// dst = second(first(s0, s1), s2), or second(s2, first(s0, s1)) for the operand position 1.
// The same roundings as two instructions (no fused multiply-add), so the same bits.
inline constexpr Op kChainOps[] = {Op::add, Op::subtract, Op::multiply, Op::divide};

// Where op is in a list of ops (the kernel tables' index), or -1.
template <size_t N> constexpr int index_in(const Op (&ops)[N], Op op) {
  for (size_t i = 0; i < N; ++i)
    if (ops[i] == op) return static_cast<int>(i);
  return -1;
}
constexpr int chain_index(Op op) { return index_in(kChainOps, op); }

// where(compare(s0, s1), s2, s3) in one pass for float operands: the condition stays a
// lane mask instead of a bool array. Indexed by compare_index and [float32, float64].
inline constexpr Op kCompareOps[] = {Op::less, Op::less_equal, Op::greater, Op::greater_equal, Op::equal,
                                     Op::not_equal};
constexpr int compare_index(Op op) { return index_in(kCompareOps, op); }

struct KernelTable {
  const char* isa;
  KernelFn where_compare[6][2];
  KernelFn chain[4][4][2][2];  // [first][second][position][float32, float64], by chain_index
  ReduceFns reduce[kNumReductions][kNumDTypes];  // by reduction and accumulate dtype
  KernelFn op[kNumOps][kNumDTypes];        // by op and compute dtype; null where the op
                                           // does not compute in that dtype
  KernelFn cast[kNumDTypes][kNumDTypes];   // [from][to], NumPy astype semantics
};

// Instruction sets compiled in and supported by this CPU, worst first ("sse2", "avx2", "avx512").
std::vector<std::string> available_isas();
// The table for a named set; null when unknown or not supported by this CPU.
const KernelTable* table_for(const std::string& isa);
// KILN_SIMD if set (an unknown or unsupported value is an error at first use), else the best.
const KernelTable& default_table();

}  // namespace kiln::simd
