// The one rule for splitting work over the runtime's arena: evaluation's loops and
// reductions, generator windows and random orders all run their items through it.
#pragma once
#include <algorithm>
#include <cstdint>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "execute.hpp"
#include "runtime.hpp"
#include "threads.hpp"

namespace kiln {

// Runs body(first, last) over [0, items), in parallel when the work (bytes, as
// serial_threshold counts them) is worth it. Which thread runs an item never changes
// what it computes.
template <class Body>
void for_items(int64_t items, int64_t grain, uint64_t work, const Body& body) {
  // Inside a BLAS tile (a matmul's epilogue) the tile is this thread's work already.
  if (items <= 1 || work <= serial_threshold() || blas::in_parallel_region()) return body(int64_t{0}, items);
  auto arena = Runtime::instance().arena();
  if (arena->max_concurrency() == 1) return body(int64_t{0}, items);
  arena->execute([&] {
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, items, std::max<int64_t>(1, grain)),
                      [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); });
  });
}

}  // namespace kiln
