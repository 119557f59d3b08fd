// The kernel tables: for every op of the table and every dtype it computes in, one
// function that runs the op over `n` contiguous elements. One table per instruction set
// (kernels_<isa>.cpp, each compiled with that set's flags); the best one the CPU has is
// chosen at run time, and KILN_SIMD=<isa> forces another so tests can run them all.
#pragma once
#include <cstdint>
#include <iterator>
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
// the simplifier rewrites them into sums). Values are the accumulate dtype's, but in
// KernelTable::count_bools, whose run, run_segments and accumulate read bools.
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
  // Float sums and products: `accumulate` over `rows` rows of n values one after another,
  // row k at src + k * stride items, acc read and written once (first: acc starts as row 0).
  // Folds along an outer axis of an array in memory with several rows' streams at a time.
  void (*accumulate_rows)(void* acc, const void* src, int64_t stride, int64_t rows, int64_t n, bool first) = nullptr;
  // Float sums only: *acc = the pairwise sum of x[i] * y[i] (each product rounded, as
  // multiply then sum would); null elsewhere.
  void (*run_products)(const void* x, const void* y, int64_t n, ReduceAcc* acc) = nullptr;
  // Float sums only: accumulate_rows of the products x[i] * y[i], each rounded, row k's
  // items at x and y + k * stride items: sums of products along an outer axis (sum(x*y,
  // axis=0), sum(x**2, axis=0)) without storing them.
  void (*accumulate_products)(void* acc, const void* x, const void* y, int64_t stride, int64_t rows, int64_t n,
                              bool first) = nullptr;
  // Float64 sums only: dst[i] = acc[i] / d for n contiguous items (dst may be acc): a
  // mean's last step, many at a time.
  void (*divide)(const void* acc, double d, int64_t n, void* dst) = nullptr;
  // Float sums only: accumulate_rows of (x[i] - c[i])**2, each step rounded as subtract
  // then square would, row k's items at x + k * stride items and c the same for every row:
  // var's second pass along an outer axis (var(x, axis=0)), read straight from memory.
  void (*accumulate_deviations)(void* acc, const void* x, const void* c, int64_t stride, int64_t rows, int64_t n,
                                bool first) = nullptr;
  // Float sums only: *acc = the pairwise sum of (x[i] - *c)**2, each step rounded as
  // subtract then square would: var's second pass, read straight from memory.
  void (*run_deviations)(const void* x, const void* c, int64_t n, ReduceAcc* acc) = nullptr;
  // run over each of `count` segments of n values, one after another (base 0): segment
  // s's value is item s of `values` (the accumulate dtype's items, one after another) and,
  // for argmin/argmax, its index index[s]. Many short segments without a call and its
  // set-up apiece.
  void (*run_segments)(const void* src, int64_t n, int64_t count, void* values, int64_t* index) = nullptr;
  // run_products over `count` segments of n, as run_segments.
  void (*run_products_segments)(const void* x, const void* y, int64_t n, int64_t count, void* values) = nullptr;
  // run_segments takes segments of up to 128 bytes a block of them at a time, transposed
  // in registers; without it, the engine folds many short segments as rows instead.
  bool blocks_short_segments = false;
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

// Scalar operands: a kernel variant that reads operand k as one value (element 0 of its
// register, broadcast) for each bit k of its mask, so a literal costs no load per element
// (where(a > 0, a, 0.1*a) loads a alone). A constant register holds its value at every
// element, so the plain kernel computes the same bits. Variants exist for these masks
// only; the planner takes the one covering most of an instruction's constants.
inline constexpr unsigned kBinaryMasks[] = {0b01, 0b10};  // x op 2, 2 op x
// second(first(s0, s1), s2): 2*a + b, a*2 + b, a*b + 1.5, 2*a + 1.5, a*2 + 1.5 (and with
// the first op's result on the right).
inline constexpr unsigned kChainMasks[] = {0b001, 0b010, 0b100, 0b101, 0b110};
// where(compare(s0, s1), s2, s3): x > 0, and x > 0 with a literal value.
inline constexpr unsigned kWhereMasks[] = {0b0010, 0b0110, 0b1010};
// where_compare_op: x > 0, and x > 0 with a literal in any other place (0.1*x).
inline constexpr unsigned kWhereOpMasks[] = {0b00010, 0b00110, 0b01010, 0b10010};
constexpr int kNumBinaryMasks = std::size(kBinaryMasks), kNumChainMasks = std::size(kChainMasks),
              kNumWhereMasks = std::size(kWhereMasks), kNumWhereOpMasks = std::size(kWhereOpMasks);

// A generator's parameters, prepared by the planner (engine/generate.cpp) for the
// kernel of one dtype. Element i (the flat C-order index in the generator's own shape) is:
//   full      `value` (8 bytes: the element in the dtype's representation)
//   arange    ints: i[0] + idx * i[1], wrapping; floats: f[0] + idx * f[1] in the
//             dtype's arithmetic (NumPy's fill: first element, then first + idx * delta)
//   linspace  in float64, NumPy 1.24's way: f[0] start, f[1] step, f[2] stop, f[3] div,
//             f[4] delta, i[0] num, i[1] endpoint, i[2] step == 0:
//             v = i[2] ? idx / div * delta + start : idx * step + start, and stop at
//             idx == num - 1 when endpoint and num > 1; then floats round to the dtype,
//             ints take floor (NumPy >= 1.20)
//   eye       i[0] columns, i[1] k: 1 where (idx % cols) - (idx / cols) == k, else 0
//   random    Philox4x32-10 (Salmon et al., SC'11), key = {seed low 32 bits, seed high
//             32 bits}; block b = philox(counter {b low, b high, 0, 0}) gives the words
//             4b..4b+3 of the stream. A 64-bit draw d(j) = word 2j | word 2j+1 << 32,
//             u53(j) = (d(j) >> 11) * 2^-53 in [0, 1).
//   uniform   f[0] lo, f[1] hi - lo, f[2] the largest dtype value strictly below hi.
//             float64: v = lo + (hi - lo) * u53(idx); float32: u24 = (word idx >> 8) * 2^-24,
//             v = float32(lo + (hi - lo) * u24) computed in float64 (one rounding to
//             float32 at the end); either way then v = min(v, f[2]), so hi never appears
//   normal    f[0] mean, f[1] std. Box-Muller on block j: u1 = 1 - u53(2j) in (0, 1],
//             u2 = u53(2j + 1), r = sqrt(-2 log u1), t = 2 pi u2; element 2j is
//             mean + std * r * cos t, element 2j + 1 mean + std * r * sin t (float32:
//             the float64 value rounded)
//   integers  i[0] lo, i[1] range = hi - lo >= 1 (as uint64). Lemire's method: m = d * range
//             (128 bits, d = d(idx)); while low64(m) < (2^64 - range) % range, d is
//             redrawn from counter {b low, b high, attempt, 0} (attempt 1, 2, ..., same
//             half of the block) so no value is favoured; v = lo + high64(m)
//   bernoulli f[0] p: v = u53(idx) < p
struct GenParams {
  double f[6];
  int64_t i[4];
  uint64_t seed;
  alignas(8) unsigned char value[8];
};

using GatherFn = void (*)(void* dst, const void* src, size_t item, int64_t n, int64_t stride);

// Moves n items of `item` bytes (1, 4 or 8) of each of `count` rows between memory (item e
// of row k at at + k * across + e * along) and a dense tile (row k at tile + k * pitch):
// into the tile, or out of it into memory.
using BandFn = void (*)(bool into_tile, char* tile, size_t pitch, char* at, size_t item, int64_t across,
                        int64_t along, int64_t count, int64_t n);

// Writes n elements into dst: element k is element first + k * step of the generator.
using GenFn = void (*)(const GenParams& p, int64_t first, int64_t step, int64_t n, void* dst);

struct KernelTable {
  const char* isa;
  KernelFn where_compare[6][2];
  // where_compare with one of where's values made in the same pass by a float arithmetic
  // op (as in where(x > 0, x, 0.1*x)): branch 0 is where(compare(s0, s1), op(s2, s3), s4),
  // branch 1 where(compare(s0, s1), s2, op(s3, s4)); by compare_index and chain_index.
  KernelFn where_compare_op[6][4][2][2];  // [compare][op][branch][float32, float64]
  KernelFn chain[4][4][2][2];  // [first][second][position][float32, float64], by chain_index
  // sqrt of a chain in the same pass (sqrt(a*a + b*b)): the square root unit works while
  // the arithmetic runs, as in a hand-fused loop, instead of in a pass of its own.
  KernelFn chain_sqrt[4][4][2][2];
  // Two float arithmetic ops feeding a third, in one pass: dst = second(a(s0, s1), b(s2, s3))
  // (a*a + b*b, a*b - c*d), and its square root (tree_sqrt). [a][second][b][float32, float64].
  KernelFn tree[4][4][4][2];
  KernelFn tree_sqrt[4][4][4][2];
  // Scalar-operand variants (kBinaryMasks, ...), indexed as their plain kernels, then by
  // the mask's place in its list; null where the plain kernel is null, and in the SSE2
  // table.
  KernelFn op_scalar[kNumOps][kNumDTypes][kNumBinaryMasks];  // binary ops
  KernelFn chain_scalar[4][4][2][2][kNumChainMasks];
  KernelFn where_compare_scalar[6][2][kNumWhereMasks];
  KernelFn where_compare_op_scalar[6][4][2][2][kNumWhereOpMasks];
  ReduceFns reduce[kNumReductions][kNumDTypes];  // by reduction and accumulate dtype
  // sum's kernels over bools cast to the accumulate dtype (int64 and float64; run null for
  // the rest): run, run_segments and accumulate read the bools as bytes, any nonzero one
  // counting 1, without the cast; combine and blocks_short_segments are sum's.
  ReduceFns count_bools[kNumDTypes];
  KernelFn op[kNumOps][kNumDTypes];        // by op and compute dtype; null where the op
                                           // does not compute in that dtype
  KernelFn cast[kNumDTypes][kNumDTypes];   // [from][to], NumPy astype semantics
  GenFn generate[kNumGens][kNumDTypes];    // by generator and dtype (gen_makes), else null
  // Copies `bytes` with non-temporal stores (no read-for-ownership of dst's lines: a
  // write-only stream moves half the bytes); stream_fence() orders them before the data
  // is handed to another thread.
  void (*stream_store)(void* dst, const void* src, int64_t bytes);
  void (*stream_fence)();
  // A strided read's chunk: n items of `item` bytes (1, 4 or 8), `stride` bytes apart from
  // src (0: one item repeated), copied densely into dst. Per set so that every other item
  // (a[::2]) deinterleaves with wider shuffles than SSE2's: float32 a[::2]*2 + b at 10^5
  // spent as long in SSE2's gather as in its kernel.
  GatherFn gather;
  // A band of a transposed view (`a.T`: rows an item apart) of 4- or 8-byte items moved
  // through registers a square block at a time, transposed there; any other band an item
  // at a time.
  BandFn move_band;
};

// Instruction sets compiled in and supported by this CPU, worst first ("sse2", "avx2", "avx512").
std::vector<std::string> available_isas();
// The table for a named set; null when unknown or not supported by this CPU.
const KernelTable* table_for(const std::string& isa);
// Why table_for(isa) is null (a name kiln does not know, a set this build did not compile,
// one this CPU does not run), ending "(available: <sets>)".
std::string unavailable_reason(const std::string& isa);
// KILN_SIMD if set (an unknown or unsupported value is an error at first use), else the best.
const KernelTable& default_table();

}  // namespace kiln::simd
