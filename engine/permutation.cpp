#include "permutation.hpp"

#include <cstring>
#include <limits>

#include <tbb/parallel_for.h>
#include <tbb/parallel_sort.h>

#include "error.hpp"
#include "execute.hpp"
#include "generate.hpp"
#include "plan.hpp"
#include "runtime.hpp"

namespace kiln {

namespace {

Array make(const GenSpec& spec) {
  Graph g;
  g.roots = {g.generate(spec)};
  return execute(*build_plan(g, {}, std::nullopt, Runtime::instance().kernels()), {}, nullptr);
}

}  // namespace

Array permutation(uint64_t seed, int64_t n) {
  if (n < 0) throw Error(Status::BadArgument, "permutation: n must be non-negative, got " + std::to_string(n));
  // 64-bit keys from the random stream (all but one of the 2^64 values), ties broken by
  // index: a uniformly random order up to the chance of a tie, and a total order, so
  // the parallel sort's result does not depend on how it ran.
  Array keys = make(integers_spec(seed, Shape{n}, INT64_MIN, INT64_MAX, DType::Int64));
  const int64_t* key = keys.data_as<int64_t>();
  Array order = Array::empty(DType::Int64, {n});
  int64_t* idx = order.data_as<int64_t>();
  Runtime::instance().arena()->execute([&] {
    tbb::parallel_for(int64_t{0}, n, [&](int64_t i) { idx[i] = i; });
    tbb::parallel_sort(idx, idx + n, [&](int64_t a, int64_t b) { return key[a] != key[b] ? key[a] < key[b] : a < b; });
  });
  return order;
}

Array permuted(const Array& a, uint64_t seed) {
  if (!a.valid()) throw Error(Status::BadArgument, "permuted: the array is not valid");
  if (a.ndim() == 0) throw Error(Status::BadArgument, "permuted: a 0-d array has no axis to permute");
  Array src = a.is_c_contiguous() ? a : a.copy();
  Array order = permutation(seed, src.shape()[0]);
  Array out = Array::empty(src.dtype(), src.shape());
  const int64_t rows = src.shape()[0];
  const size_t row_bytes = rows ? static_cast<size_t>(src.size() / rows) * src.itemsize() : 0;
  const int64_t* idx = order.data_as<int64_t>();
  Runtime::instance().arena()->execute([&] {
    tbb::parallel_for(int64_t{0}, rows, [&](int64_t r) {
      std::memcpy(out.data() + r * row_bytes, src.data() + idx[r] * row_bytes, row_bytes);
    });
  });
  return out;
}

void shuffle(const Array& a, uint64_t seed) {
  a.require_writable("shuffle");
  Array shuffled = permuted(a, seed);
  // Back through a's own strides (a view is shuffled where it lies).
  const int64_t n = a.size();
  const size_t item = a.itemsize();
  if (a.is_c_contiguous()) {
    std::memcpy(a.data(), shuffled.data(), static_cast<size_t>(n) * item);
    return;
  }
  std::vector<int64_t> idx(a.ndim(), 0);
  for (int64_t k = 0; k < n; ++k) {
    int64_t off = 0;
    for (int d = 0; d < a.ndim(); ++d) off += idx[d] * a.strides()[d];
    std::memcpy(a.data() + off, shuffled.data() + k * item, item);
    for (int d = a.ndim() - 1; d >= 0 && ++idx[d] == a.shape()[d]; --d) idx[d] = 0;
  }
}

}  // namespace kiln
