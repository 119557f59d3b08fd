#include "permutation.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "error.hpp"
#include "execute.hpp"
#include "generate.hpp"
#include "parallel.hpp"
#include "plan.hpp"
#include "runtime.hpp"

namespace kiln {

namespace {

Array make(const GenSpec& spec) {
  Graph g;
  g.roots = {g.generate(spec)};
  return execute(*build_plan(g, {}, std::nullopt, Runtime::instance().kernels()), {}, nullptr);
}

struct Keyed {
  uint64_t key;  // the int64 key with its sign bit flipped: unsigned order is signed order
  int64_t index;
  bool operator<(const Keyed& o) const { return key != o.key ? key < o.key : index < o.index; }
};

// Sorts one bucket, whose keys agree in their top `used` bits and are in index order
// where they tie, into order[0..m): a counting sort by the next bits into about as many
// sub-buckets as records, then each sub-bucket's few records by insertion. Records and
// counts fit in L1/L2, and the sub-buckets of random keys hold 0, 1 or 2 records, so
// almost nothing is compared (std::sort compares a bucket's records ~log2(m) times
// each, mispredicting half its branches).
void sort_bucket(const Keyed* records, int64_t m, int used, int64_t* order, std::vector<Keyed>& sorted,
                 std::vector<int64_t>& counts) {
  if (m == 0) return;
  // At most 2^16 sub-buckets: a bucket of many equal keys (not random ones) must not ask
  // for counts of twice its size.
  const int bits = std::min({static_cast<int>(std::bit_width(static_cast<uint64_t>(m))), 64 - used, 16});
  const auto digit = [used, bits](uint64_t k) {
    return bits ? static_cast<int64_t>((k << used) >> (64 - bits)) : int64_t{0};
  };
  counts.assign((size_t{1} << bits) + 1, 0);
  for (int64_t j = 0; j < m; ++j) ++counts[digit(records[j].key) + 1];
  for (size_t d = 1; d < counts.size(); ++d) counts[d] += counts[d - 1];
  sorted.resize(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) sorted[counts[digit(records[j].key)]++] = records[j];  // stable
  // counts[d] is now where sub-bucket d ends.
  int64_t begin = 0;
  for (const int64_t end : counts) {
    if (end - begin > 16) {
      std::sort(sorted.begin() + begin, sorted.begin() + end);  // many equal keys: not random ones
    } else {
      for (int64_t j = begin + 1; j < end; ++j) {
        const Keyed r = sorted[j];
        int64_t k = j;
        for (; k > begin && r < sorted[k - 1]; --k) sorted[k] = sorted[k - 1];
        sorted[k] = r;
      }
    }
    begin = std::max(begin, end);
  }
  for (int64_t j = 0; j < m; ++j) order[j] = sorted[j].index;
}

}  // namespace

void order_by_key(const int64_t* key, int64_t n, int64_t* order, const std::function<void()>& keys_read) {
  if (n <= 0) return;
  // A radix sort in two passes. The first spreads records (key, index) by the keys' top
  // bits into buckets of ~1024, chunk by chunk in index order, so each chunk writes a
  // block of its own in every bucket and ties stay in index order; few enough buckets
  // that every write stream stays in cache. The second sorts each bucket (sort_bucket).
  int bits = 0;
  while (bits < 16 && (n >> (bits + 10)) > 1) ++bits;
  const int64_t buckets = int64_t{1} << bits;
  const auto bucket_of = [bits](uint64_t k) { return bits ? static_cast<int64_t>(k >> (64 - bits)) : int64_t{0}; };
  const auto flipped = [key](int64_t i) { return static_cast<uint64_t>(key[i]) ^ (uint64_t{1} << 63); };

  // Work per element, in serial_threshold's bytes: 5 passes over 8-16 bytes each, and
  // three parallel starts instead of a loop's one (measured on 2 cores: two threads pay
  // from ~3000 elements, 1.1x at 4096, 1.4x at 16384, 2.0x at 2^20).
  // A chunk of keys per thread the arena may run (run one after another when the work is small).
  const uint64_t work = static_cast<uint64_t>(n) * 256;
  const int64_t chunks = std::min<int64_t>(Runtime::instance().arena()->max_concurrency(), n);
  const auto chunk_begin = [n, chunks](int64_t c) { return n / chunks * c + std::min(c, n % chunks); };
  const auto for_each = [work](int64_t items, const auto& body) { for_items(items, 1, work, body); };

  // offsets[c * buckets + b]: where chunk c's first key of bucket b goes.
  std::vector<int64_t> offsets(static_cast<size_t>(chunks * buckets), 0);
  for_each(chunks, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      int64_t* count = offsets.data() + c * buckets;
      for (int64_t i = chunk_begin(c), end = chunk_begin(c + 1); i < end; ++i) ++count[bucket_of(flipped(i))];
    }
  });
  std::vector<int64_t> bucket_begin(static_cast<size_t>(buckets) + 1);
  int64_t running = 0;
  for (int64_t b = 0; b < buckets; ++b) {
    bucket_begin[b] = running;
    for (int64_t c = 0; c < chunks; ++c) running += std::exchange(offsets[c * buckets + b], running);
  }
  bucket_begin[buckets] = n;

  std::unique_ptr<Keyed[]> records(new Keyed[static_cast<size_t>(n)]);
  for_each(chunks, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      int64_t* next = offsets.data() + c * buckets;
      for (int64_t i = chunk_begin(c), end = chunk_begin(c + 1); i < end; ++i) {
        const uint64_t k = flipped(i);
        records[next[bucket_of(k)]++] = {k, i};
      }
    }
  });
  if (keys_read) keys_read();
  for_each(buckets, [&](int64_t first, int64_t last) {
    std::vector<Keyed> sorted;
    std::vector<int64_t> counts;
    for (int64_t b = first; b < last; ++b)
      sort_bucket(records.get() + bucket_begin[b], bucket_begin[b + 1] - bucket_begin[b], bits,
                  order + bucket_begin[b], sorted, counts);
  });
}

Array permutation(uint64_t seed, int64_t n) {
  if (n < 0) throw Error(Status::BadArgument, "permutation: n must be non-negative, got " + std::to_string(n));
  // 64-bit keys from the random stream (all but one of the 2^64 values), ties broken by
  // index: a uniformly random order up to the chance of a tie, and a total order, so
  // the result does not depend on how the sort ran.
  Array keys = make(integers_spec(seed, Shape{n}, INT64_MIN, INT64_MAX, DType::Int64));
  Array order = Array::empty(DType::Int64, {n});
  // The keys go once the records hold them: 24 bytes an element at the peak, not 32.
  order_by_key(keys.data_as<int64_t>(), n, order.data_as<int64_t>(), [&] { keys = Array(); });
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
  for_items(rows, 1, 2 * static_cast<uint64_t>(rows) * row_bytes, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r)
      std::memcpy(out.data() + r * row_bytes, src.data() + idx[r] * row_bytes, row_bytes);
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
