// `kiln bench` and `kiln demo`: what kiln's speed is, measured against this machine's
// own limits in the same run. Every figure is a median (with min and max) of several
// repetitions: build machines are shared and noisy.
//
// bench: STREAM triad bandwidth (the memory bus's limit); 2*a + 3*b*c - 1.5 fused by
//        kiln vs evaluated one operator at a time with a full temporary per operator (as
//        NumPy does, on kiln's own kernels so that only fusion differs); 1 thread and all.
// demo:  example expressions over generated .npy files, fused vs unfused, results checked
//        against each other.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "bench.hpp"
#include "execute.hpp"
#include "kiln/kiln.h"
#include "kiln/kiln.hpp"
#include "npy.hpp"
#include "parser.hpp"
#include "plan_cache.hpp"
#include "runtime.hpp"

namespace kiln::cli {

namespace {

Stats measure(int reps, const std::function<void()>& f) {
  f();  // warm-up: page faults, plan cache, thread start-up
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t.front(), t.back()};
}

// STREAM triad a = b + s*c on `threads` threads, static partition as STREAM's OpenMP.
double triad_seconds(int threads, int reps, Array& a, const Array& b, const Array& c) {
  tbb::task_arena arena(threads);
  return measure(reps, [&] { triad(arena, a, b, c); }).median;
}

// Read bandwidth: a dot product of two arrays, as fast as plain C++ runs it (eight
// independent sums per block, static partition): the limit for a fused reduction.
std::function<void()> read_kernel(tbb::task_arena& arena, const Array& a, const Array& b) {
  constexpr int64_t kBlock = 1 << 15;
  auto partial = std::make_shared<std::vector<double>>((a.size() + kBlock - 1) / kBlock);
  return [&arena, &a, &b, partial] {
    const double* pa = a.data_as<double>();
    const double* pb = b.data_as<double>();
    int64_t n = a.size();
    arena.execute([&] {
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, static_cast<int64_t>(partial->size())),
                        [&](const tbb::blocked_range<int64_t>& r) {
                          for (int64_t blk = r.begin(); blk < r.end(); ++blk) {
                            double s[8] = {};
                            int64_t i = blk * kBlock, end = std::min(n, i + kBlock);
                            for (; i + 8 <= end; i += 8)
                              for (int k = 0; k < 8; ++k) s[k] += pa[i + k] * pb[i + k];
                            for (; i < end; ++i) s[0] += pa[i] * pb[i];
                            (*partial)[blk] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
                          }
                        },
                        tbb::static_partitioner());
    });
  };
}


double max_abs_diff(const Array& x, const Array& y) {
  Array d = eval("abs(float64(x) - float64(y))", {{"x", x}, {"y", y}});
  double m = 0;
  const double* p = d.data_as<double>();
  for (int64_t i = 0; i < d.size(); ++i)
    if (!(p[i] <= m)) m = std::isnan(p[i]) && !std::isnan(m) ? m : std::max(m, p[i]);
  return m;
}

double get_max_abs(const Array& x) {
  Array m = eval("max(abs(x))", {{"x", x}});
  return m.data_as<double>()[0];
}

}  // namespace

int64_t arg_int(int argc, char** argv, const char* flag, int64_t fallback) {
  for (int i = 0; i + 1 < argc; ++i)
    if (std::string(argv[i]) == flag) return std::atoll(argv[i + 1]);
  return fallback;
}

bool has_flag(int argc, char** argv, const char* flag) {
  for (int i = 0; i < argc; ++i)
    if (std::string(argv[i]) == flag) return true;
  return false;
}

std::vector<Stats> measure_interleaved(int reps, const std::vector<std::function<void()>>& fs,
                                       const std::vector<std::function<void()>>& warm) {
  for (const auto& f : fs) f();  // warm-up
  std::vector<std::vector<double>> t(fs.size());
  for (int r = 0; r < reps; ++r)
    for (size_t k = 0; k < fs.size(); ++k) {
      const size_t i = r % 2 ? fs.size() - 1 - k : k;
      if (!warm.empty()) warm[i]();
      auto t0 = std::chrono::steady_clock::now();
      fs[i]();
      t[i].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  std::vector<Stats> out;
  for (auto& v : t) {
    std::sort(v.begin(), v.end());
    out.push_back({v[v.size() / 2], v.front(), v.back()});
  }
  return out;
}

std::map<std::string, double> run_numpy_script(const std::string& script, const std::vector<std::string>& args) {
  std::map<std::string, double> out;
  if (script.empty() || !std::filesystem::exists(script)) return out;
  std::string cmd = "/usr/bin/python3 '" + script + "'";
  for (const std::string& a : args) cmd += " '" + a + "'";
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return out;
  char line[512];
  while (std::fgets(line, sizeof line, p)) {
    char name[128];
    double v;
    if (std::sscanf(line, "%127s %lf", name, &v) == 2) out[name] = v;
    else std::fprintf(stderr, "%s: %s", script.c_str(), line);
  }
  ::pclose(p);
  return out;
}

Array eval_unfused(const std::string& expr, const Bindings& inputs) {
  Graph g;
  parse_expression(expr, g);
  std::vector<Array> values(g.nodes().size());
  const simd::KernelTable& kernels = Runtime::instance().kernels();
  for (size_t id = 0; id < g.nodes().size(); ++id) {
    const Node& n = g.node(id);
    if (n.kind == NodeKind::Input) {
      for (const auto& [name, a] : inputs)
        if (name == g.input_names()[n.input]) values[id] = a;
      continue;
    }
    if (n.kind == NodeKind::Literal) continue;
    Graph one;
    std::vector<Array> args;
    int ids[3];
    for (int i = 0; i < n.nargs; ++i) {
      const Node& arg = g.node(n.args[i]);
      if (arg.kind == NodeKind::Literal) {
        ids[i] = one.literal(arg.value);
      } else {
        ids[i] = one.input("t" + std::to_string(args.size()));
        args.push_back(values[n.args[i]]);
      }
    }
    one.roots = {n.kind == NodeKind::Op       ? one.op(n.op, ids, n.nargs)
                 : n.kind == NodeKind::Reduce ? one.reduce(n.reduce, ids[0])
                                              : one.cast(n.dtype, ids[0])};
    std::vector<DType> dtypes;
    for (const Array& a : args) dtypes.push_back(a.dtype());
    std::string key = "u:" + one.key();
    append_plan_key(key, dtypes, nullptr, kernels.isa);
    auto plan = PlanCache::global().get(key, [&] { return build_plan(one, dtypes, std::nullopt, kernels); });
    values[id] = execute(*plan, args, nullptr);
  }
  return values[g.roots[0]];
}

// Where parallel evaluation starts to pay, for loops of each kind of work the engine
// weighs (serial_threshold): cheap float32 and float64 loops, a reduction, transcendental
// math, random numbers. Run with KILN_SERIAL_THRESHOLD=0 so that the parallel path is
// taken at every size. Serial and parallel blocks of calls (at least 20, some 4 ms) alternate
// rep by rep, each after 5 ms of untimed calls: a new thread count makes a new arena, and
// blocks of 20 calls straight after one ran no faster on 2 threads than on 1 at sizes where
// longer blocks ran 1.3-1.7x faster (the first expression a process times measured up to 2x
// slower too, so an untimed one goes first).
int run_crossover(int reps) {
  struct Kind {
    const char* label;
    const char* expr;
    DType dtype;
  };
  const Kind kinds[] = {{"f32 a + 1", "a + 1", DType::Float32},
                        {"f64 2*a+3*b*c-1.5", "2*a + 3*b*c - 1.5", DType::Float64},
                        {"f64 sum(a)", "sum(a)", DType::Float64},
                        {"f64 sin**2+cos**2", "sin(a)**2 + cos(b)**2", DType::Float64},
                        {"f32 a + uniform", "a + uniform(0, 1, size=N, seed=5)", DType::Float32}};
  std::printf("serial vs parallel by size: 1-thread microseconds and the speed-up on all threads, median of %d\n", reps);
  const char* forced = std::getenv("KILN_SERIAL_THRESHOLD");
  std::printf("(KILN_SERIAL_THRESHOLD=%s)\n", forced ? forced : "unset: kiln picks");
  std::printf("%8s", "n");
  for (const Kind& k : kinds) std::printf(" %24s", k.label);
  std::printf("\n");
  {
    Array w = random_array<double>(1 << 17, 1, -1, 1);
    for (int k = 0; k < 200; ++k) eval("w * 2 + 1", {{"w", w}});
  }
  for (int64_t n = 4096; n <= (1 << 18); n *= 2) {
    std::printf("%8lld", static_cast<long long>(n));
    for (const Kind& kind : kinds) {
      Array a = random_array<double>(n, 1, -1, 1), b = random_array<double>(n, 2, -1, 1), c = random_array<double>(n, 3, -1, 1);
      if (kind.dtype == DType::Float32) {
        a = eval("float32(a)", {{"a", a}});
        b = eval("float32(a)", {{"a", b}});
        c = eval("float32(a)", {{"a", c}});
      }
      std::string expr = kind.expr;
      if (size_t at = expr.find("size=N"); at != std::string::npos) expr.replace(at + 5, 1, std::to_string(n));
      Bindings in = {{"a", a}, {"b", b}, {"c", c}};
      Array out = eval(expr, in);
      const int calls = static_cast<int>(std::max<int64_t>(20, (int64_t{1} << 22) / n));
      auto block = [&] { for (int k = 0; k < calls; ++k) eval(expr, in, out); };
      auto warm = [&] {
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(5);
        while (std::chrono::steady_clock::now() < until) eval(expr, in, out);
      };
      std::vector<double> one, all;
      for (int r = 0; r < reps; ++r) {
        set_num_threads(1);
        warm();
        one.push_back(measure(1, block).median);
        set_num_threads(0);
        warm();
        all.push_back(measure(1, block).median);
      }
      std::sort(one.begin(), one.end());
      std::sort(all.begin(), all.end());
      const double t1 = one[one.size() / 2], tall = all[all.size() / 2];
      std::printf(" %15.2f us %5.2fx", t1 / calls * 1e6, t1 / tall);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}

// Fixed cost of one cached evaluation: 16 elements, the plan already cached, out given.
double small_call_seconds(int reps, const std::string& expr) {
  Array a = random_array<double>(16, 1, -1, 1), b = random_array<double>(16, 2, -1, 1);
  Bindings in = {{"a", a}, {"b", b}};
  Array out = eval(expr, in);
  const int calls = 20000;
  return measure(reps, [&] { for (int k = 0; k < calls; ++k) eval(expr, in, out); }).median / calls;
}

// The same written with the C++ builder: one Expr evaluated again and again.
double small_builder_call_seconds(int reps) {
  Array a = random_array<double>(16, 1, -1, 1), b = random_array<double>(16, 2, -1, 1);
  Expr e = 2.0 * Expr(a) + b;
  Array out = eval(e);
  const int calls = 20000;
  return measure(reps, [&] { for (int k = 0; k < calls; ++k) eval(e, out); }).median / calls;
}

// The same through the C ABI, as an embedding program calls it: kiln_eval returning a new
// array each time (the "cached-plan call overhead of kiln_eval").
double small_c_call_seconds(int reps, const char* expr) {
  Array a = random_array<double>(16, 1, -1, 1), b = random_array<double>(16, 2, -1, 1);
  int64_t n = 16;
  kiln_array* ha = nullptr;
  kiln_array* hb = nullptr;
  kiln_array_wrap(a.data(), KILN_FLOAT64, 1, &n, nullptr, nullptr, nullptr, &ha);
  kiln_array_wrap(b.data(), KILN_FLOAT64, 1, &n, nullptr, nullptr, nullptr, &hb);
  const char* names[] = {"a", "b"};
  kiln_array* arrays[] = {ha, hb};
  const int calls = 20000;
  double t = measure(reps, [&] {
    for (int k = 0; k < calls; ++k) {
      kiln_array* r = nullptr;
      if (kiln_eval(expr, 2, names, arrays, nullptr, &r) != KILN_OK) throw Error(Status::Internal, kiln_last_error());
      kiln_array_release(r);
    }
  }).median / calls;
  kiln_array_release(ha);
  kiln_array_release(hb);
  return t;
}

int run_suite(int argc, char** argv);  // suite.cpp

// `kiln bench --shm`: benchmarks/shm_bench.py (Python's multiprocessing against kiln's
// segments needs Python on both sides) over the libkiln.so built next to this program.
int run_shm_bench(int argc, char** argv) {
  std::string script = "benchmarks/shm_bench.py", mb = "800", reps = "5";
  for (int i = 0; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--numpy") script = argv[i + 1];
    if (std::string(argv[i]) == "--mb") mb = argv[i + 1];
    if (std::string(argv[i]) == "--reps") reps = argv[i + 1];
  }
  std::filesystem::path library = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "libkiln.so";
  if (!std::filesystem::exists(script) || !std::filesystem::exists(library)) {
    std::fprintf(stderr, "kiln bench --shm: needs %s and %s\n", script.c_str(), library.c_str());
    return 1;
  }
  std::string cmd = "/usr/bin/python3 '" + script + "' --library '" + library.string() + "' --mb '" + mb + "' --reps '" + reps + "'";
  return std::system(cmd.c_str()) == 0 ? 0 : 1;
}

int run_bench(int argc, char** argv) {
  if (has_flag(argc, argv, "--suite")) return run_suite(argc, argv);
  if (has_flag(argc, argv, "--io")) return run_io_bench(argc, argv);
  if (has_flag(argc, argv, "--create")) return run_create_bench(argc, argv);
  if (has_flag(argc, argv, "--linalg")) return run_linalg_bench(argc, argv);
  if (has_flag(argc, argv, "--shm")) return run_shm_bench(argc, argv);
  int64_t n = arg_int(argc, argv, "--n", 10000000);
  int reps = static_cast<int>(std::max<int64_t>(arg_int(argc, argv, "--reps", 5), 1));
  bool json = has_flag(argc, argv, "--json");
  if (has_flag(argc, argv, "--crossover")) return run_crossover(reps);
  int all = hardware_threads();
  std::vector<int> thread_counts = {1};
  if (all > 1) thread_counts.push_back(all);
  for (int i = 0; i + 1 < argc; ++i)  // --threads 1,2,4,8
    if (std::string(argv[i]) == "--threads") {
      thread_counts.clear();
      for (const char* p = argv[i + 1]; *p;) {
        char* end;
        long t = std::strtol(p, &end, 10);
        if (end == p || t < 1) break;
        thread_counts.push_back(static_cast<int>(t));
        p = *end == ',' ? end + 1 : end;
      }
    }

  Array a = random_array<double>(n, 1, -1, 1), b = random_array<double>(n, 2, -1, 1), c = random_array<double>(n, 3, -1, 1);
  Array out = Array::empty(DType::Float64, {n});
  const std::string expr = "2*a + 3*b*c - 1.5";
  Bindings inputs = {{"a", a}, {"b", b}, {"c", c}};
  // The same operands and result 16 bytes past a cache line, where NumPy's arrays lie
  // (malloc's large blocks): kiln's own arrays start on a line.
  auto numpy_placed = [n](const Array* values) {
    Array v = Array::empty(DType::Float64, {n + 2}).slice(0, 2, n + 2);
    if (values) std::memcpy(v.data_as<double>(), values->data_as<double>(), static_cast<size_t>(n) * 8);
    return v;
  };
  Bindings placed_inputs = {{"a", numpy_placed(&a)}, {"b", numpy_placed(&b)}, {"c", numpy_placed(&c)}};
  Array placed_out = numpy_placed(nullptr);
  double gb = 1e-9 * 8.0 * static_cast<double>(n);

  struct Row {
    std::string name;
    int threads;
    Stats s;
    double bytes;  // STREAM convention: bytes the loop must move
  };
  std::vector<Row> rows;
  for (int t : thread_counts) {
    Array ta = Array::empty(DType::Float64, {n});
    double triad = triad_seconds(t, reps, ta, b, c);
    rows.push_back({"stream triad a=b+3c", t, {triad, triad, triad}, 3 * gb});
    set_num_threads(t);
    rows.push_back({"fused " + expr, t, measure(reps, [&] { eval(expr, inputs, out); }), 4 * gb});
    rows.push_back({"unfused (numpy-style)", t, measure(reps, [&] { eval_unfused(expr, inputs); }), 12 * gb});
    rows.push_back(
        {"fused, NumPy-placed operands", t, measure(reps, [&] { eval(expr, placed_inputs, placed_out); }), 4 * gb});
  }
  // Reductions: a producer fused into a sum against the read bandwidth; sums along the
  // inner and the outer axis of a (n/1000, 1000) matrix, of rows of 8 (short vectors'
  // norms) and of 8 long rows; standardising (three passes).
  Array x = a.reshape({n / 1000, 1000});
  const int64_t n8 = n / 8 * 8;
  Bindings rin = {{"a", a}, {"b", b}, {"x", x}, {"p", a.slice(0, 0, n8).reshape({n8 / 8, 8})},
                  {"q", a.slice(0, 0, n8).reshape({8, n8 / 8})}};
  std::vector<Row> red;
  const char* reductions[] = {"sum(a*b)",          "sum(x**2, axis=1)", "sum(x**2, axis=0)",
                              "sum(p**2, axis=1)", "sum(q, axis=0)",    "(a - mean(a)) / std(a)"};
  // sum(q, axis=0) has nothing to fuse: its unfused twin runs the same plan, so its ratio is
  // the table's noise floor. Each timed call follows a call of its own (the third argument):
  // the previous row's result lines, written back during the next call, biased the pairs.
  // The reads (and writes) a one-pass-per-reduction plan needs.
  const double red_bytes[] = {2 * gb, gb, gb, gb * 9 / 8, gb * 9 / 8, 4 * gb};
  constexpr size_t kReductions = std::size(reductions);
  for (int t : thread_counts) {
    tbb::task_arena arena(t);
    set_num_threads(t);
    std::vector<std::function<void()>> fs{read_kernel(arena, a, b)};
    for (const char* r : reductions) {
      fs.push_back([&, r] { eval(r, rin); });
      fs.push_back([&, r] { eval_unfused(r, rin); });
    }
    std::vector<Stats> st = measure_interleaved(reps, fs, fs);
    red.push_back({"read a.b (plain C++ dot)", t, st[0], 2 * gb});
    for (size_t i = 0; i < kReductions; ++i) {
      red.push_back({std::string("kiln ") + reductions[i], t, st[1 + 2 * i], red_bytes[i]});
      red.push_back({"  unfused", t, st[2 + 2 * i], red_bytes[i]});
    }
  }
  set_num_threads(0);
  double red_diff = 0;
  for (const char* r : reductions) {
    Array f = eval(r, rin), u = eval_unfused(r, rin);
    double scale = std::max(1.0, std::fabs(get_max_abs(u)));
    red_diff = std::max(red_diff, max_abs_diff(f, u) / scale);
  }
  double diff = max_abs_diff(eval(expr, inputs), eval_unfused(expr, inputs));
  double small_call = small_call_seconds(reps, "2*a + b");
  double small_builder = small_builder_call_seconds(reps);
  double small_sum = small_c_call_seconds(reps, "sum(a*b)");

  if (json) {
    std::printf("{\"n\": %lld, \"reps\": %d, \"isa\": \"%s\", \"rows\": [", static_cast<long long>(n), reps,
                simd_isa().c_str());
    for (size_t i = 0; i < rows.size(); ++i)
      std::printf("%s{\"name\": \"%s\", \"threads\": %d, \"median_s\": %.6g, \"min_s\": %.6g, \"max_s\": %.6g, "
                  "\"gb_per_s\": %.4g}",
                  i ? ", " : "", rows[i].name.c_str(), rows[i].threads, rows[i].s.median, rows[i].s.min,
                  rows[i].s.max, rows[i].bytes / rows[i].s.median);
    std::printf("], \"reductions\": [");
    for (size_t i = 0; i < red.size(); ++i)
      std::printf("%s{\"name\": \"%s\", \"threads\": %d, \"median_s\": %.6g, \"min_s\": %.6g, \"max_s\": %.6g, "
                  "\"gb_per_s\": %.4g}",
                  i ? ", " : "", red[i].name.c_str(), red[i].threads, red[i].s.median, red[i].s.min, red[i].s.max,
                  red[i].bytes / red[i].s.median);
    std::printf("], \"max_abs_diff_fused_vs_unfused\": %g, \"reductions_max_rel_diff\": %g, "
                "\"cached_call_16_elements_s\": %.4g, \"cached_builder_call_16_elements_s\": %.4g, "
                "\"cached_sum_16_elements_s\": %.4g}\n",
                diff, red_diff, small_call, small_builder, small_sum);
    return 0;
  }
  std::printf("kiln bench: n = %lld float64, median of %d (min..max), simd %s, %d hardware threads\n",
              static_cast<long long>(n), reps, simd_isa().c_str(), all);
  std::printf("%-30s %7s %10s %21s %9s\n", "what", "threads", "median ms", "min..max ms", "GB/s");
  for (const Row& r : rows)
    std::printf("%-30s %7d %10.2f %10.2f..%-10.2f %9.2f\n", r.name.c_str(), r.threads, r.s.median * 1e3,
                r.s.min * 1e3, r.s.max * 1e3, r.bytes / r.s.median);
  for (size_t i = 0; i < rows.size(); i += 4) {
    const Row &triad = rows[i], &fused = rows[i + 1], &unfused = rows[i + 2], &placed = rows[i + 3];
    std::printf("threads %d: fused is %.2fx the unfused evaluation; fused moves bytes at %.0f%% of the triad's rate "
                "(%.0f%% with NumPy-placed operands)\n",
                triad.threads, unfused.s.median / fused.s.median,
                100.0 * (fused.bytes / fused.s.median) / (triad.bytes / triad.s.median),
                100.0 * (placed.bytes / placed.s.median) / (triad.bytes / triad.s.median));
  }
  std::printf("fused vs unfused results: max abs difference %g\n", diff);
  std::printf("\n%-30s %7s %10s %21s %9s\n", "reductions", "threads", "median ms", "min..max ms", "GB/s");
  for (const Row& r : red)
    std::printf("%-30s %7d %10.2f %10.2f..%-10.2f %9.2f\n", r.name.c_str(), r.threads, r.s.median * 1e3,
                r.s.min * 1e3, r.s.max * 1e3, r.bytes / r.s.median);
  for (size_t i = 0; i < red.size(); i += 1 + 2 * kReductions) {  // per thread count: the read, then kiln and unfused
    const Row& read = red[i];
    std::printf("threads %d: sum(a*b) reads at %.0f%% of the read bandwidth; kiln vs unfused:", read.threads,
                100.0 * (red[i + 1].bytes / red[i + 1].s.median) / (read.bytes / read.s.median));
    for (size_t k = 0; k < kReductions; ++k) std::printf(" %.2fx", red[i + 2 + 2 * k].s.median / red[i + 1 + 2 * k].s.median);
    std::printf(" (in the order above)\n");
  }
  std::printf("reductions, kiln vs unfused: max relative difference %g\n", red_diff);
  std::printf("cached evaluation of 2*a + b on 16 elements (string API, out given): %.2f us per call\n",
              small_call * 1e6);
  std::printf("the same written with the C++ builder (kiln::eval(e, out) of one Expr): %.2f us per call\n",
              small_builder * 1e6);
  std::printf("cached kiln_eval (C ABI) of sum(a*b) on 16 elements, new 0-d result: %.2f us per call\n",
              small_sum * 1e6);
  return 0;
}

int run_demo(int argc, char** argv) {
  int64_t n = arg_int(argc, argv, "--n", 4000000);
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("kiln-demo-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::printf("kiln %s demo: %lld float64 elements per array, simd %s, %d threads, files in %s\n", version(),
              static_cast<long long>(n), simd_isa().c_str(), get_num_threads(), dir.c_str());
  save_npy((dir / "a.npy").string(), random_array<double>(n, 11, -2, 2));
  save_npy((dir / "b.npy").string(), random_array<double>(n, 12, -2, 2));
  save_npy((dir / "c.npy").string(), random_array<double>(n, 13, 0.5, 1.5));
  Bindings inputs = {{"a", load_npy((dir / "a.npy").string())},
                     {"b", load_npy((dir / "b.npy").string())},
                     {"c", load_npy((dir / "c.npy").string())}};
  const char* exprs[] = {"sqrt(a*a + b*b)", "where(a > 0, a, 0.1*a)", "2*a + 3*b*c - 1.5",
                         "sigmoid(a) * b + c", "(a - b) / (abs(a) + abs(b) + 1)", "clip(a*c, -1, 1) ** 2",
                         "exp(-a*a) * cos(b)"};
  std::printf("%-34s %12s %12s %9s %14s\n", "expression", "fused ms", "unfused ms", "speed-up", "max |diff|");
  int status = 0;
  for (const char* e : exprs) {
    Array fused = eval(e, inputs), unfused = eval_unfused(e, inputs);
    double diff = max_abs_diff(fused, unfused);
    Stats f = measure(5, [&] { eval(e, inputs); });
    Stats u = measure(5, [&] { eval_unfused(e, inputs); });
    std::printf("%-34s %12.2f %12.2f %8.2fx %14.3g\n", e, f.median * 1e3, u.median * 1e3, u.median / f.median, diff);
    if (!(diff <= 1e-12)) status = 1;
    save_npy((dir / "result.npy").string(), fused);
  }
  fs::remove_all(dir);
  std::printf(status ? "MISMATCH between fused and unfused results\n" : "all fused results match the unfused ones\n");
  return status;
}

}  // namespace kiln::cli
