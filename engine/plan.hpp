// Plan: the compiled form of a graph for given input dtypes, as a list of steps over
// "values" (arrays of the evaluation: the inputs first, then one per reduction and per
// hoisted value):
//   - a reduction step runs a fused loop that computes reductions' operands chunk by
//     chunk and folds them straight into the reductions (no temporary array), making
//     each reduced array a new value. Reductions over the same operands' shape and axes
//     share one step: one pass over memory for sum(x), max(x) and argmin(x);
//   - a value step is a small fused loop over reductions' results only (the sqrt of a
//     variance), computed once at their shape and then read like an input;
//   - a linalg step hands materialised values to BLAS/LAPACK (matmul, solve, ...), making
//     a value per result; an operand that is an element-wise expression is a value step
//     first;
//   - the loop step (at most one, last) computes every output that is not simply the
//     result of a reduction, all in one pass.
// A step's fused loop (Block) is a list of instructions over registers numbered
//   [0, reads)                       values it reads (in place or gathered per chunk)
//   [reads, reads + constants)       literals, splatted to a chunk once per task
//   [reads + constants, ...)         scratch, assigned by liveness
// and Instr::out(k), the loop's k-th output (written in place, or scattered).
// Plans hold no shapes: one plan serves every shape and layout of its input dtypes.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph.hpp"
#include "kernels.hpp"

namespace kiln {

constexpr int kMaxInstrSources = 5;

struct Instr {
  static constexpr int out(int k) { return -1 - k; }
  static constexpr int out_index(int reg) { return -1 - reg; }
  simd::KernelFn fn;
  int dst;
  int src[kMaxInstrSources];
  int nsrc;
  // For explain() only.
  bool is_cast;
  Op op;
  DType compute;  // op: the dtype it computes in; cast: the source dtype
  DType result;
  // A chain (simd::KernelTable::chain): `op` is the first op, this the second, and
  // chain_position where the first's result enters it; -1 for a single op. A comparison
  // chained into where() (simd::KernelTable::where_compare) has chain_position 0. When
  // the second op's operand after the first's is itself made in the instruction, by
  // `value_op` from two sources (a tree, simd::KernelTable::tree: value_branch 0, sources
  // 2 and 3; one of where's values, where_compare_op: 0 the true value, sources 2 and 3,
  // 1 the false one, sources 3 and 4), value_branch says which; else -1.
  Op second = Op::add;
  int chain_position = -1;
  Op value_op = Op::add;
  int value_branch = -1;
  bool sqrt_after = false;  // a chain or tree whose square root is the result (chain_sqrt, tree_sqrt)
};

struct Constant {
  DType dtype;
  alignas(8) unsigned char bytes[8];  // the value in its dtype's representation
};

struct Block {
  std::vector<int> reads;  // value ids held by registers [0, reads.size())
  std::vector<Constant> constants;
  int num_scratch = 0;
  std::vector<Instr> instrs;
  std::vector<int> results;  // reduction steps: the register holding each fold's operand
  int num_registers() const { return static_cast<int>(reads.size() + constants.size()) + num_scratch; }
};

// One reduction of a reduction step.
struct Fold {
  int node = -1;  // the graph node (for messages)
  ReduceSpec spec;
  DType accumulate = DType::Float64, result = DType::Float64;
  simd::ReduceFns fns{};  // the kernels, from the plan's instruction set
  // The operand as the body makes it, and the kernels that fold it into accumulators:
  // the accumulate dtype and fns, or, for a single sum or mean of bools (sum(a > 0)),
  // the bools, counted (KernelTable::count_bools) without a cast to the accumulate dtype.
  DType operand = DType::Float64;
  simd::ReduceFns operand_fns{};
  int value = -1;         // the value it makes
};

struct Step {
  enum class Kind : uint8_t { Reduce, Loop, Linalg } kind = Kind::Loop;
  Block body;
  std::vector<Fold> folds;  // Reduce: all over the same axes of the same shape
  // Value steps (a Loop with value >= 0): the value made and its dtype.
  int value = -1;
  DType result = DType::Float64;
  // The loop step: the plan output each of the body's outputs is.
  std::vector<int> outputs;
  // Steps of several folds or outputs: one body for each, for when their shapes differ at
  // execution (then they run one by one).
  std::vector<Block> separate;
  // Linalg: one call (linalg.def) over the operand values, making a value per result
  // (nodes[i] of the graph becomes values[i]). With `epilogue`, the loop step that follows
  // reads a matmul's result and may run tile by tile inside it (execute.cpp).
  struct Linalg {
    std::vector<int> nodes, values, operands;
    bool epilogue = false;
  } linalg;
};

// A generator node of the plan, ready to run: its value is a placeholder array (shape,
// no memory) whose elements the kernel makes per chunk where a read would load them.
struct Generator {
  int node = -1;
  int value = -1;
  DType dtype = DType::Float64;
  simd::GenFn fn = nullptr;
  simd::GenParams params{};
  bool random = false;  // counts kRandomBytes of work per element (work_bytes)
};

struct Plan {
  Graph graph;                      // as planned (after simplification)
  std::vector<DType> input_dtypes;  // by graph input index
  int num_values = 0;               // inputs, generators, then one per fold and per value step
  std::vector<Generator> generators;
  std::vector<int> node_value;      // graph node -> value id, or -1
  std::vector<Step> steps;
  struct Output {
    int value = -1;                 // >= 0: the output is this value (a reduction's result)
    DType result;                   // of the expression (NumPy rules)
    DType dtype;                    // what is written (result cast same_kind to `out`)
  };
  std::vector<Output> outputs;      // one per graph root
  int64_t chunk = 0;                // elements per chunk: fixed by the plan, never by threads
  const simd::KernelTable* kernels = nullptr;  // the instruction set its functions come from
  // Front ends that bind inputs by their own order (the C ABI's names array) record here,
  // for each graph input, the position of its array among the caller's arguments.
  std::vector<int> binding;

  DType out_dtype() const { return outputs[0].dtype; }
  const Generator* generator_of(int value) const {  // null when `value` is not a generator's
    for (const Generator& g : generators)
      if (g.value == value) return &g;
    return nullptr;
  }
  std::string explain() const;      // the steps, one line per instruction
};

// Simplifies and compiles g for the given input dtypes. `out_dtype`, when set, is the
// dtype of a caller-supplied output for a graph with one root; it must be reachable by
// same_kind casting. Throws TypeError (with the op and position) when the types do not
// work out.
std::shared_ptr<const Plan> build_plan(const Graph& g, const std::vector<DType>& input_dtypes,
                                       std::optional<DType> out_dtype, const simd::KernelTable& kernels);

// The graph rewrites that run before planning, given g's inferred types: literal-only
// subexpressions folded to literals (keeping their dtype and NumPy's weak-scalar typing),
// power(x, 2|3|4) by multiplication, mean of bool/ints as a float64 mean, and var/std
// expanded into two means and element-wise ops, as NumPy computes them. Inputs keep their
// numbering. No rewrite reassociates float arithmetic.
Graph simplify(const Graph& g, const std::vector<NodeType>& types);

}  // namespace kiln
