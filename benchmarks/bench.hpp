// What bench.cpp (`kiln bench`) and suite.cpp (`kiln bench --suite`) share: timing,
// data, and NumPy-style evaluation one op at a time.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include "kiln/kiln.hpp"

namespace kiln::cli {

struct Stats {
  double median, min, max;  // seconds
};

// Several measurements taken in turn, repetition by repetition, so that a noisy
// neighbour or the kernel merging pages into huge pages affects them all alike. With
// `warm` (one per function: a call or two of what fs[i] repeats), every timed call
// follows warm[i]: each function then finds the caches as it leaves them, not as the
// function before it did. Odd repetitions go in reverse order: a function that follows
// a similar one can find its buffers warm (`kiln bench`'s sum(q, axis=0) took 0.90x its
// unfused twin's time when it ran second, 1.03-1.07x when first).
std::vector<Stats> measure_interleaved(int reps, const std::vector<std::function<void()>>& fs,
                                       const std::vector<std::function<void()>>& warm = {});

// Command-line helpers: the integer after `flag` (or fallback), whether `flag` is given.
int64_t arg_int(int argc, char** argv, const char* flag, int64_t fallback);
bool has_flag(int argc, char** argv, const char* flag);

// `kiln bench --io` (io.cpp) and `kiln bench --create` (create.cpp).
int run_io_bench(int argc, char** argv);
int run_create_bench(int argc, char** argv);
int run_linalg_bench(int argc, char** argv);  // linalg.cpp: `kiln bench --linalg`

// NumPy's side of a benchmark: runs `/usr/bin/python3 script args...` and reads its
// "name seconds" lines (empty when the script or python3 is missing; other lines go to
// stderr).
std::map<std::string, double> run_numpy_script(const std::string& script, const std::vector<std::string>& args);

// NumPy's way: every operator a separate pass with a freshly allocated full-size result.
Array eval_unfused(const std::string& expr, const Bindings& inputs);

// body(first, last) over [0, n) on `arena`, cut into pieces of 2^15 statically as
// STREAM's OpenMP loops are: how the bandwidth references (triad, copy, memset) run.
template <class Body>
void stream_loop(tbb::task_arena& arena, int64_t n, const Body& body) {
  arena.execute([&] {
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 1 << 15),
                      [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); },
                      tbb::static_partitioner());
  });
}

// STREAM's triad a = b + 3c over whole arrays on `arena`.
inline void triad(tbb::task_arena& arena, Array& a, const Array& b, const Array& c) {
  double* pa = a.data_as<double>();
  const double* pb = b.data_as<double>();
  const double* pc = c.data_as<double>();
  stream_loop(arena, a.size(), [=](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) pa[i] = pb[i] + 3.0 * pc[i];
  });
}

// n deterministic pseudo-random values in [lo, hi), filled in parallel (a splitmix64 hash
// of the index and seed).
template <class T>
Array random_array(int64_t n, uint64_t seed, double lo, double hi) {
  Array a = Array::empty(dtype_of<T>(), {n});
  T* p = a.data_as<T>();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 1 << 16), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) {
      uint64_t z = (static_cast<uint64_t>(i) + seed * 0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 31)) * 0x94D049BB133111EBull;
      z ^= z >> 29;
      p[i] = static_cast<T>(lo + (hi - lo) * static_cast<double>(z >> 11) * 0x1.0p-53);
    }
  });
  return a;
}

}  // namespace kiln::cli
