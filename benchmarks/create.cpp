// `kiln bench --create`: filling arrays and making random numbers, against this machine's
// own limits and NumPy in the same run.
//
//   fills (zeros, full, arange) into a buffer already mapped, against memset of the same
//     buffer and the STREAM triad (bandwidth fraction: bytes written per second over the
//     triad's bytes moved per second); full into a new array (page faults included)
//     against np.full;
//   uniform and normal float64 numbers per second into a mapped buffer, against NumPy's
//     default_rng().random(out=) and .standard_normal(out=) (benchmarks/create_numpy.py
//     under /usr/bin/python3), 1 thread and all.
#include <cstdio>
#include <cstring>
#include <map>

#include <tbb/task_arena.h>

#include "bench.hpp"
#include "runtime.hpp"

namespace kiln::cli {

int run_create_bench(int argc, char** argv) {
  const int64_t n = arg_int(argc, argv, "--n", 100000000);
  const int reps = static_cast<int>(std::max<int64_t>(arg_int(argc, argv, "--reps", 5), 1));
  std::string script = "benchmarks/create_numpy.py";
  for (int i = 0; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--numpy") script = argv[i + 1];
  const int all = hardware_threads();
  std::vector<int> thread_counts = {1};
  if (all > 1) thread_counts.push_back(all);

  Array out = Array::zeros(DType::Float64, {n});  // mapped: rows below write into it
  Array b = Array::zeros(DType::Float64, {n}), c = Array::zeros(DType::Float64, {n});
  const double bytes = 8.0 * static_cast<double>(n);
  std::printf("kiln bench --create: n = %lld float64, median of %d (min-max), isa %s\n",
              static_cast<long long>(n), reps, simd_isa().c_str());
  std::printf("%-34s %7s %10s %10s %10s %9s %8s\n", "", "threads", "median ms", "min", "max", "GB/s", "of triad");
  std::map<std::string, double> kiln_1t;
  for (int t : thread_counts) {
    set_num_threads(t);
    tbb::task_arena arena(t);
    double* pa = out.data_as<double>();
    auto memset_of = [&](int byte) {
      return [&, byte] {
        stream_loop(arena, n, [=](int64_t lo, int64_t hi) { std::memset(pa + lo, byte, static_cast<size_t>(hi - lo) * 8); });
      };
    };
    std::vector<std::pair<std::string, std::function<void()>>> rows = {
        {"stream triad a = b + 3c", [&] { triad(arena, out, b, c); }},
        {"memset (glibc), byte 0", memset_of(0)},
        {"memset (glibc), byte 0x41", memset_of(0x41)},
        {"zeros(n) into out", [&] { eval(zeros({n}), out); }},
        {"full(n, 7.0) into out", [&] { eval(full({n}, 7.0), out); }},
        {"full(n, 7.0) new array", [&] { eval(full({n}, 7.0)); }},
        {"arange(n, dtype=float64) into out", [&] { eval(arange(0, n, 1, DType::Float64), out); }},
        {"uniform float64 into out", [&] { eval(random::uniform(1, Shape{n}), out); }},
        {"normal float64 into out", [&] { eval(random::normal(1, Shape{n}), out); }},
    };
    std::vector<std::function<void()>> fs;
    for (auto& r : rows) fs.push_back(r.second);
    for (auto& f : fs) f();  // warm-up: plans cached, pages mapped
    std::vector<Stats> st = measure_interleaved(reps, fs);
    const double triad_rate = 3 * bytes / st[0].median;
    for (size_t i = 0; i < rows.size(); ++i) {
      const double moved = i == 0 ? 3 * bytes : bytes;  // triad: 3 arrays; the rest write one
      std::printf("%-34s %7d %10.2f %10.2f %10.2f %9.1f %7.0f%%\n", rows[i].first.c_str(), t, 1e3 * st[i].median,
                  1e3 * st[i].min, 1e3 * st[i].max, 1e-9 * moved / st[i].median,
                  100.0 * (moved / st[i].median) / triad_rate);
      if (t == 1) kiln_1t[rows[i].first] = st[i].median;
    }
    if (t > 1)
      std::printf("  scaling 1 -> %d threads: uniform %.2fx, normal %.2fx\n", t,
                  kiln_1t["uniform float64 into out"] / st[7].median, kiln_1t["normal float64 into out"] / st[8].median);
  }
  set_num_threads(0);

  std::map<std::string, double> np = run_numpy_script(script, {std::to_string(n), std::to_string(reps)});
  if (np.empty()) {
    std::printf("(NumPy rows skipped: %s not found or /usr/bin/python3 without numpy)\n", script.c_str());
    return 0;
  }
  std::printf("\nNumPy %s, 1 thread, same n:\n", "(create_numpy.py)");
  struct Cmp {
    const char* np_row;
    const char* kiln_row;
    const char* what;
  };
  const Cmp cmps[] = {{"fill", "full(n, 7.0) into out", "out.fill(7.0)"},
                      {"full", "full(n, 7.0) new array", "np.full(n, 7.0)"},
                      {"arange", "arange(n, dtype=float64) into out", "np.arange(n, dtype=float64)"},
                      {"uniform", "uniform float64 into out", "default_rng().random(out=)"},
                      {"normal", "normal float64 into out", "default_rng().standard_normal(out=)"}};
  for (const Cmp& c2 : cmps) {
    auto it = np.find(c2.np_row);
    if (it == np.end()) continue;
    double k = kiln_1t[c2.kiln_row];
    std::printf("  %-38s %9.2f ms (%6.0f M/s)   kiln 1 thread %9.2f ms (%6.0f M/s): %.2fx\n", c2.what, 1e3 * it->second,
                1e-6 * static_cast<double>(n) / it->second, 1e3 * k, 1e-6 * static_cast<double>(n) / k, it->second / k);
  }
  return 0;
}

}  // namespace kiln::cli
