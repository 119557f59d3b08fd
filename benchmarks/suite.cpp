// `kiln bench --suite`: STREAM copy/scale/add/triad, then every expression of
// reference.hpp at several sizes in float64 and float32: kiln fused on 1 thread and on all,
// the same graph one op at a time (NumPy's way, on kiln's kernels, 1 thread), a
// hand-written fused loop and xtensor (1 thread each), the bandwidth kiln achieves as a
// fraction of STREAM triad's, and how far its results are from the hand loop's. Then
// thread scaling and the fixed cost of a cached call. Medians of --reps repetitions,
// measured in turn so that noise from other tenants hits every column alike.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <xsimd/xsimd.hpp>

#include "bench.hpp"
#include "execute.hpp"
#include "plot.hpp"
#include "kiln/kiln.hpp"
#include "reference.hpp"
#include "runtime.hpp"

namespace kiln::cli {

namespace {

// Medians of each function's time, the functions run in turn.
std::vector<double> medians(int reps, const std::vector<std::function<void()>>& fs,
                            const std::vector<std::function<void()>>& warm = {}) {
  std::vector<double> out;
  for (const Stats& st : measure_interleaved(reps, fs, warm)) out.push_back(st.median);
  return out;
}

// STREAM's four kernels, static partition over `threads` threads; GB/s by STREAM's byte
// counts (copy and scale 16 bytes per element, add and triad 24).
std::vector<double> stream_gbs(int threads, int reps, int64_t n) {
  Array a = random_array<double>(n, 1, 0, 1), b = random_array<double>(n, 2, 0, 1), c = random_array<double>(n, 3, 0, 1);
  double *pa = a.data_as<double>(), *pb = b.data_as<double>(), *pc = c.data_as<double>();
  tbb::task_arena arena(threads);
  auto run = [&](auto body) {
    return [&, body] {
      stream_loop(arena, n, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) body(i);
      });
    };
  };
  std::vector<double> t = medians(reps, {run([=](int64_t i) { pc[i] = pa[i]; }),
                                         run([=](int64_t i) { pb[i] = 3.0 * pc[i]; }),
                                         run([=](int64_t i) { pc[i] = pa[i] + pb[i]; }),
                                         run([=](int64_t i) { pa[i] = pb[i] + 3.0 * pc[i]; })});
  double gb = 1e-9 * 8.0 * static_cast<double>(n);
  return {2 * gb / t[0], 2 * gb / t[1], 3 * gb / t[2], 3 * gb / t[3]};
}

struct Row {
  std::string dtype, name;
  int64_t n;
  double kiln1, kiln_all, unfused, hand, xt;  // seconds; hand/xt 0 where not run
  double fresh1;                               // kiln 1 thread, allocating its result
  double gbs1, gbs_all;                        // kiln's bytes per second
  double rel_diff;                             // kiln vs the hand loop
  uint64_t temp_bytes;                         // arrays allocated by one evaluation into out
};

template <class T>
void run_dtype(const char* dtype, const std::vector<int64_t>& sizes, int reps, int all, bool refs,
               std::vector<Row>& rows) {
  for (int64_t n : sizes) {
    n = std::max<int64_t>(1000, n / 1000 * 1000);  // the broadcast and transposed cases need whole rows
    // Values where every function is defined and not saturated: a in (-1, 1), b, c in (0.5, 1.5).
    Array a2 = random_array<T>(2 * n, 11, -1, 1), b = random_array<T>(n, 12, 0.5, 1.5), c = random_array<T>(n, 13, 0.5, 1.5);
    Array a = a2.slice(0, 0, n);
    Array out = Array::empty(dtype_of<T>(), {n}), ref = Array::empty(dtype_of<T>(), {n});
    for (const bench::CaseInfo& info : bench::kCases) {
      Bindings in = {{"a", a}, {"b", b}, {"c", c}};
      Array target = out;
      if (info.id == bench::Case::Strided) in[0].second = a2.slice(0, 0, 2 * n, 2);
      if (info.id == bench::Case::Broadcast) {
        in = {{"a", a.reshape({n / 1000, 1000})}, {"b", b.slice(0, 0, 1000)}};
        target = out.reshape({n / 1000, 1000});
      }
      if (info.id == bench::Case::Transposed) {
        in = {{"a", a.reshape({1000, n / 1000}).transpose()}, {"b", b.reshape({n / 1000, 1000})}};
        target = out.reshape({n / 1000, 1000});
      }
      if (info.id == bench::Case::Dot) target = out.slice(0, 0, 1).reshape({});
      const T* pa = info.id == bench::Case::Strided ? a2.data_as<T>() : a.data_as<T>();
      // Small sizes are timed over `calls` calls in a row, as a program calling in a loop
      // would see them: data in cache, and no timer granularity in the figure. Each after
      // two untimed calls of its own: at 10^6 float64, where the caches hold one evaluation's
      // arrays but not all five functions', kiln writing a buffer of its own measured 1.4x
      // slower than the hand loop writing one that xtensor had just written.
      const int calls = static_cast<int>(std::max<int64_t>(1, 2000000 / n));
      auto repeated = [](int times, std::function<void()> f) {
        return std::function<void()>([times, f] { for (int k = 0; k < times; ++k) f(); });
      };
      auto hand1 = [&] { bench::hand_loop(info.id, pa, b.data_as<T>(), c.data_as<T>(), ref.data_as<T>(), n); };
      std::vector<std::function<void()>> once{[&] { eval(info.expr, in, target); },  // fused, into out
                                              [&] { eval_unfused(info.expr, in); },
                                              [&] { eval(info.expr, in); }};  // allocating its result
      if (refs) {
        once.push_back(hand1);
        once.push_back([&] { bench::xtensor_eval(info.id, pa, b.data_as<T>(), c.data_as<T>(), ref.data_as<T>(), n); });
      }
      // Timed: `calls` in a row. Warmed (one call left 10^6 half warm): two, or one at
      // sizes beyond the caches, so that a timed call follows its own function: a loop
      // with plain stores leaves the caches full of its dirty lines, and whatever runs
      // next pays for writing them back (10^7 float64 sqrt(a*a + b*b): kiln 1.17-1.23x
      // the hand loop's time after another function, 1.00-1.07x after itself).
      std::vector<std::function<void()>> fs, warm;
      for (const auto& f : once) {
        fs.push_back(repeated(calls, f));
        warm.push_back(repeated(calls > 1 ? 2 : 1, f));
      }
      const std::function<void()> fused = fs[0];
      set_num_threads(1);
      std::vector<double> t = medians(reps, fs, warm);
      for (double& x : t) x /= calls;
      set_num_threads(all);
      warm.resize(std::min<size_t>(warm.size(), 1));  // fused's alone
      double t_all = medians(reps, {fused}, warm)[0] / calls;
      uint64_t allocated_before = array_bytes_allocated();
      fused();
      uint64_t temp_bytes = (array_bytes_allocated() - allocated_before) / calls;
      set_num_threads(0);
      // max |kiln - hand| / max |hand|: expressions that cancel to ~0 would make a per-element
      // relative difference meaningless (and the hand loop contracts a*b + c into an FMA).
      double rel = 0;
      if (refs) {
        hand1();
        fused();
        int64_t m = info.id == bench::Case::Dot ? 1 : n;
        double diff = 0, scale = 0;
        for (int64_t i = 0; i < m; ++i) {
          double x = out.data_as<T>()[i], y = ref.data_as<T>()[i];
          diff = std::max(diff, std::fabs(x - y));
          scale = std::max(scale, std::fabs(y));
        }
        rel = diff / std::max(scale, 1e-300);
      }
      double bytes = static_cast<double>(info.streams) * static_cast<double>(n) * sizeof(T);
      rows.push_back({dtype, info.name, n, t[0], t_all, t[1], refs ? t[3] : 0, refs ? t[4] : 0, t[2], bytes / t[0],
                      bytes / t_all, rel, temp_bytes});
    }
  }
}

std::vector<int64_t> parse_list(const char* text) {
  std::vector<int64_t> v;
  for (const char* p = text; *p;) {
    char* end;
    double x = std::strtod(p, &end);  // 1e7 and 10000000 alike
    if (end == p || x < 1) break;
    v.push_back(static_cast<int64_t>(x));
    p = *end == ',' ? end + 1 : end;
  }
  return v;
}

// Bandwidth against size for a memory-bound expression (float64), with STREAM triad as
// the limit, and each expression's speed-up against its 1-thread time.
std::vector<Chart> charts(const std::vector<Row>& rows, const std::vector<std::pair<int, std::vector<double>>>& scaling,
                          double triad1, double triad_all, int all) {
  const std::string expr = "2*a + 3*b*c - 1.5";
  Chart bw{"f64 " + expr + ": bandwidth", "elements", "GB/s", true, {}};
  Series k1{"kiln 1 thread", {}}, kall{"kiln " + std::to_string(all) + " threads", {}}, hand{"hand loop 1T", {}},
      xt{"xtensor 1T", {}}, unfused{"one op at a time 1T", {}}, t1{"STREAM triad 1T", {}, true},
      tall{"STREAM triad " + std::to_string(all) + "T", {}, true};
  for (const Row& r : rows) {
    if (r.dtype != "f64" || r.name != expr) continue;
    double x = static_cast<double>(r.n), bytes = r.gbs1 * r.kiln1 * 1e-9;  // GB moved per evaluation
    k1.points.push_back({x, r.gbs1 * 1e-9});
    kall.points.push_back({x, r.gbs_all * 1e-9});
    if (r.hand > 0) hand.points.push_back({x, bytes / r.hand});
    if (r.xt > 0) xt.points.push_back({x, bytes / r.xt});
    unfused.points.push_back({x, bytes / r.unfused});
    t1.points.push_back({x, triad1});
    tall.points.push_back({x, triad_all});
  }
  bw.series = {k1, kall, unfused, t1, tall};
  if (!hand.points.empty()) bw.series.insert(bw.series.begin() + 2, {hand, xt});
  Chart sc{"thread scaling, 10^7 float64", "threads", "speed-up over 1 thread", false, {}};
  Series poly{expr, {}}, sincos{"sin(a)**2 + cos(b)**2", {}}, ideal{"ideal", {}, true};
  for (const auto& [t, v] : scaling) {
    poly.points.push_back({static_cast<double>(t), scaling[0].second[0] / v[0]});
    sincos.points.push_back({static_cast<double>(t), scaling[0].second[1] / v[1]});
    ideal.points.push_back({static_cast<double>(t), static_cast<double>(t)});
  }
  sc.series = {poly, sincos, ideal};
  return {bw, sc};
}

}  // namespace

int run_suite(int argc, char** argv) {
  std::vector<int64_t> sizes{100000, 1000000, 10000000, 100000000};
  int reps = 5;
  bool json = false;
  std::string plot;  // SVG file for the charts
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--sizes" && i + 1 < argc) sizes = parse_list(argv[++i]);
    else if (arg == "--reps" && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--json") json = true;
    else if (arg == "--plot" && i + 1 < argc) plot = argv[++i];
  }
  if (!plot.empty()) write_svg(plot, {});  // fails now, not after the measurements, if it cannot be written
  const int all = hardware_threads();
  const bool refs = xsimd::available_architectures().fma3_avx2;  // the references need AVX2 + FMA
  int64_t stream_n = std::max<int64_t>(10000000, *std::max_element(sizes.begin(), sizes.end()) / 10);
  std::vector<double> s1 = stream_gbs(1, reps, stream_n), sall = stream_gbs(all, reps, stream_n);

  std::vector<Row> rows;
  run_dtype<double>("f64", sizes, reps, all, refs, rows);
  run_dtype<float>("f32", sizes, reps, all, refs, rows);

  // Thread scaling on 10^7 float64: a memory-bound and a compute-bound expression.
  const int64_t sn = 10000000;
  Bindings sin_in = {{"a", random_array<double>(sn, 21, -1, 1)}, {"b", random_array<double>(sn, 22, 0.5, 1.5)},
                     {"c", random_array<double>(sn, 23, 0.5, 1.5)}};
  Array sout = Array::empty(DType::Float64, {sn});
  std::vector<std::pair<int, std::vector<double>>> scaling;
  for (int t = 1; t <= all; ++t) {
    set_num_threads(t);
    scaling.push_back({t, medians(reps, {[&] { eval("2*a + 3*b*c - 1.5", sin_in, sout); },
                                         [&] { eval("sin(a)**2 + cos(b)**2", sin_in, sout); }})});
  }
  set_num_threads(0);
  // The fixed cost of a cached call (string API, out given), by size.
  std::vector<std::pair<int64_t, double>> per_call;
  for (int64_t n : {16, 1000}) {
    Bindings in = {{"a", random_array<double>(n, 1, -1, 1)}, {"b", random_array<double>(n, 2, -1, 1)},
                   {"c", random_array<double>(n, 3, -1, 1)}};
    Array o = Array::empty(DType::Float64, {n});
    const int calls = 10000;
    per_call.push_back({n, medians(reps, {[&] { for (int k = 0; k < calls; ++k) eval("a*b + c", in, o); }})[0] / calls});
  }

  if (!plot.empty()) write_svg(plot, charts(rows, scaling, s1[3], sall[3], all));
  if (json) {
    std::printf("{\"isa\": \"%s\", \"threads\": %d, \"stream_gbs_1\": [%g, %g, %g, %g], \"stream_gbs_all\": [%g, %g, %g, %g], \"rows\": [",
                simd_isa().c_str(), all, s1[0], s1[1], s1[2], s1[3], sall[0], sall[1], sall[2], sall[3]);
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::printf("%s{\"dtype\": \"%s\", \"expr\": \"%s\", \"n\": %lld, \"kiln_1_s\": %.6g, \"kiln_all_s\": %.6g, "
                  "\"unfused_s\": %.6g, \"hand_s\": %.6g, \"xtensor_s\": %.6g, \"kiln_1_gbs\": %.4g, "
                  "\"kiln_all_gbs\": %.4g, \"max_rel_diff_vs_hand\": %.3g, \"kiln_1_allocating_s\": %.6g, "
                  "\"temp_bytes\": %llu}",
                  i ? ", " : "", r.dtype.c_str(), r.name.c_str(), static_cast<long long>(r.n), r.kiln1, r.kiln_all,
                  r.unfused, r.hand, r.xt, r.gbs1, r.gbs_all, r.rel_diff, r.fresh1,
                  static_cast<unsigned long long>(r.temp_bytes));
    }
    std::printf("], \"scaling\": [");
    for (size_t i = 0; i < scaling.size(); ++i)
      std::printf("%s{\"threads\": %d, \"poly_s\": %.6g, \"sincos_s\": %.6g}", i ? ", " : "", scaling[i].first,
                  scaling[i].second[0], scaling[i].second[1]);
    std::printf("], \"per_call_s\": {\"16\": %.4g, \"1000\": %.4g}, \"scratch_bytes\": %llu}\n", per_call[0].second,
                per_call[1].second, static_cast<unsigned long long>(scratch_bytes_held()));
    return 0;
  }
  std::printf("kiln bench --suite: simd %s, %d hardware threads, medians of %d\n", simd_isa().c_str(), all, reps);
  std::printf("STREAM (n = %lld float64) GB/s   copy %.1f  scale %.1f  add %.1f  triad %.1f (1 thread);"
              "  copy %.1f  scale %.1f  add %.1f  triad %.1f (%d threads)\n",
              static_cast<long long>(stream_n), s1[0], s1[1], s1[2], s1[3], sall[0], sall[1], sall[2], sall[3], all);
  if (!refs) std::printf("(no AVX2 + FMA: the hand-written and xtensor references are not run)\n");
  std::printf("\n%-4s %-24s %10s %10s %10s %10s %10s %10s %8s %8s %8s %9s %7s %7s\n", "", "expression", "n", "kiln 1T",
              "kiln all", "unfused", "hand 1T", "xtensor", "1T %tri", "all %tri", "hand/k", "rel diff", "alloc/", "temp");
  std::printf("%-4s %-24s %10s %10s %10s %10s %10s %10s %8s %8s %8s %9s %7s %7s\n", "", "", "", "ms", "ms", "ms 1T", "ms",
              "ms 1T", "", "", "1T", "vs hand", "out 1T", "bytes");
  for (const Row& r : rows)
    std::printf("%-4s %-24s %10lld %10.3f %10.3f %10.3f %10.3f %10.3f %7.0f%% %7.0f%% %8.2f %9.1e %7.2f %7llu\n",
                r.dtype.c_str(), r.name.c_str(), static_cast<long long>(r.n), r.kiln1 * 1e3, r.kiln_all * 1e3,
                r.unfused * 1e3, r.hand * 1e3, r.xt * 1e3, 100 * r.gbs1 / (s1[3] * 1e9), 100 * r.gbs_all / (sall[3] * 1e9),
                r.hand > 0 ? r.hand / r.kiln1 : 0.0, r.rel_diff, r.fresh1 / r.kiln1,
                static_cast<unsigned long long>(r.temp_bytes));
  std::printf("\nthread scaling, n = 10^7 float64 (ms):");
  for (const auto& [t, v] : scaling) std::printf("  %dT 2*a+3*b*c-1.5 %.2f, sin**2+cos**2 %.2f;", t, v[0] * 1e3, v[1] * 1e3);
  std::printf("\ncached call of a*b + c (string API, out given): %.2f us at n = 16, %.2f us at n = 1000\n",
              per_call[0].second * 1e6, per_call[1].second * 1e6);
  std::printf("chunk scratch held by all threads: %.1f KiB\n", static_cast<double>(scratch_bytes_held()) / 1024);
  return 0;
}

}  // namespace kiln::cli
