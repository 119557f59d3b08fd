// Plan: the compiled form of a graph for given input dtypes. One fused loop: a list of
// instructions over registers, each a kernel call on one chunk. Registers are numbered
//   [0, inputs)                      the inputs (read in place or gathered per chunk)
//   [inputs, inputs + constants)     literals, splatted to a chunk once per task
//   [inputs + constants, ...)        scratch, assigned by liveness
// and kOut is the output (written in place, or scattered when the output is strided).
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

struct Instr {
  static constexpr int kOut = -1;
  simd::KernelFn fn;
  int dst;
  int src[3];
  int nsrc;
  // For explain() only.
  bool is_cast;
  Op op;
  DType compute;  // op: the dtype it computes in; cast: the source dtype
  DType result;
};

struct Constant {
  DType dtype;
  alignas(8) unsigned char bytes[8];  // the value in its dtype's representation
};

struct Plan {
  Graph graph;                      // for shapes and error messages at execution
  std::vector<DType> input_dtypes;  // by graph input index
  std::vector<Constant> constants;
  int num_scratch = 0;
  std::vector<Instr> instrs;
  DType result_dtype;               // of the expression (NumPy rules)
  DType out_dtype;                  // what is written (result cast same_kind to `out`)
  int64_t chunk = 0;                // elements per chunk: fixed by the plan, never by threads
  std::string isa;
  // Front ends that bind inputs by their own order (the C ABI's names array) record here,
  // for each graph input, the position of its array among the caller's arguments.
  std::vector<int> binding;

  int num_registers() const { return static_cast<int>(input_dtypes.size() + constants.size()) + num_scratch; }
  std::string explain() const;      // one line per instruction
};

// Compiles g (its first root) for the given input dtypes. `out_dtype`, when set, is the
// dtype of a caller-supplied output; it must be reachable by same_kind casting.
// Throws TypeError (with the op and position) when the types do not work out.
std::shared_ptr<const Plan> build_plan(const Graph& g, const std::vector<DType>& input_dtypes,
                                       std::optional<DType> out_dtype, const simd::KernelTable& kernels);

}  // namespace kiln
