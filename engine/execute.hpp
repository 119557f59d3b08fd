// Execution of a plan: binds input arrays, works out shapes by NumPy broadcasting, runs
// the plan's steps (reductions, then the fused loop) over fixed-size chunks, in parallel
// on the runtime's arena when there is enough work, and makes aliasing between inputs
// and `out` safe.
#pragma once
#include <vector>

#include "array.hpp"
#include "plan.hpp"

namespace kiln {

// Inputs are given by graph input index. With `out` valid (plans of one root only) the
// result is written into it (shape: the result must broadcast to it; dtype: the plan's
// out_dtype) and `out` is returned; otherwise a new C-contiguous array is returned.
// Everything is validated before the first byte of `out` is written.
Array execute(const Plan& plan, const std::vector<Array>& inputs, const Array* out);
// Every root's result, in order.
std::vector<Array> execute_all(const Plan& plan, const std::vector<Array>& inputs);

// Up to this much work evaluation runs on the calling thread: task start-up would cost
// more than it saves (measured by `kiln bench --crossover`; KILN_SERIAL_THRESHOLD
// overrides it, for that measurement). Work is counted in bytes: those the operands
// move, plus kTranscendentalItems items per element for each transcendental op (exp,
// sin, ...) and kRandomBytes for each random number made.
uint64_t serial_threshold();
inline constexpr uint64_t kTranscendentalItems = 8;
inline constexpr uint64_t kRandomBytes = 64;

// Chunk scratch memory held by all threads, in bytes: registers of a few chunks per
// thread, kept between evaluations (the only memory evaluation needs besides results
// and the small arrays reductions produce).
uint64_t scratch_bytes_held();

}  // namespace kiln
