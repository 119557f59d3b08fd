// generate_window: a window of a generator made on its own, in parallel (generate.hpp).
// Apart from generate.cpp, whose specs the parser and the fuzzers use without the executor.

#include <algorithm>

#include "error.hpp"
#include "execute.hpp"
#include "generate.hpp"
#include "parallel.hpp"
#include "runtime.hpp"

namespace kiln {

namespace {

[[noreturn]] void bad(const std::string& what) { throw Error(Status::BadArgument, "generate_window: " + what); }

}  // namespace

Array generate_window(const GenSpec& spec, const Shape& start, const Shape& shape) {
  if (spec.shape_from != GenSpec::ShapeFrom::Given)
    bad("the generator has no shape of its own (give it size= or a shape)");
  const Shape& whole = spec.shape;
  const size_t nd = whole.size();
  if (start.size() != nd || shape.size() != nd)
    bad("a window of " + std::to_string(start.size()) + " and " + std::to_string(shape.size()) +
        " dimensions for a generator of shape " + shape_str(whole));
  if (!window_fits(whole, start, shape))
    bad("the window at " + shape_str(start) + " of shape " + shape_str(shape) + " does not fit in shape " +
        shape_str(whole));
  const simd::KernelTable& kernels = Runtime::instance().kernels();
  const DType dtype = spec.dtype;
  simd::GenFn fn = kernels.generate[int(spec.gen)][int(dtype)];
  KILN_ASSERT(fn);
  const simd::GenParams params = gen_params(spec, dtype, kernels);
  Array out = Array::empty(dtype, shape);
  const int64_t total = out.size();
  if (total == 0) return out;
  // Rows along the last axis are runs of consecutive generator indices; long rows are
  // cut into pieces so that a 1-d window is made in parallel too.
  const int64_t run = nd ? shape[nd - 1] : 1, rows = total / run, item = out.itemsize();
  const int64_t piece = std::min<int64_t>(run, 1 << 16), pieces = (run + piece - 1) / piece;
  Shape whole_stride(nd, 1);
  for (size_t d = nd; d-- > 1;) whole_stride[d - 1] = whole_stride[d] * whole[d];
  char* base = out.data();
  auto make = [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      const int64_t r = k / pieces, offset = k % pieces * piece, n = std::min(piece, run - offset);
      int64_t index = (nd ? start[nd - 1] : 0) + offset, rest = r;
      for (size_t d = nd > 0 ? nd - 1 : 0; d-- > 0;) {  // the axes before the last
        index += (start[d] + rest % shape[d]) * whole_stride[d];
        rest /= shape[d];
      }
      fn(params, index, 1, n, base + (r * run + offset) * item);
    }
  };
  const int64_t items = rows * pieces;
  const uint64_t work = static_cast<uint64_t>(total) * (item + (gen_info(spec.gen).random ? kRandomBytes : 0));
  for_items(items, (1 << 16) / piece, work, make);
  return out;
}

}  // namespace kiln
