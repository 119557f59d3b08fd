// `kiln bench --linalg`: matrix products through kiln against a direct cblas call of the
// same OpenBLAS in the same run, and the thread budget's effect.
//
//   DGEMM and SGEMM n^3 (GFLOP/s): kiln::matmul into an existing array against
//     cblas_?gemm with OpenBLAS's own threads set to the same count, 1 thread and all;
//     and against the measured peak: every thread running 12 independent AVX2 FMA chains
//     at once (reference.cpp), at the clock the cores really hold (OpenBLAS 0.3.21's
//     kernels on these machines are AVX2 ones, Haswell's; an AVX-512 server core with two
//     512-bit FMA pipes could go twice as high);
//   relu(A @ B + bias), fused (the epilogue runs over each GEMM tile as it is made)
//     against the GEMM then a separate element-wise pass, square and with a short inner
//     dimension (where the epilogue's sweep over memory is a larger share);
//   two user threads each computing a product at once: with kiln (one budget) against
//     each calling cblas with OpenBLAS set to every core (what two NumPy threads do).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "bench.hpp"
#include "reference.hpp"
#include "runtime.hpp"
#include "threads.hpp"

namespace kiln::cli {

namespace {

// Measured AVX2 FMA peak of `threads` threads at once, flops per second (best of 3).
double measured_peak(int threads, bool f32) {
  std::vector<std::string> isas = available_simd_isas();
  if (std::find(isas.begin(), isas.end(), "avx2") == isas.end()) return 0;  // no AVX2 + FMA: no peak row
  const int64_t iterations = 20000000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<double> flops(threads);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] { flops[t] = bench::fma_flops(f32, iterations); });
    for (auto& t : ts) t.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, threads * flops[0] / s);
  }
  return best;
}

double clock_mhz() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("cpu MHz", 0) == 0) return std::stod(line.substr(line.find(':') + 1));
  return 0;
}

void direct_gemm(const Array& a, const Array& b, const Array& c) {
  const int m = static_cast<int>(a.shape()[0]), k = static_cast<int>(a.shape()[1]), n = static_cast<int>(b.shape()[1]);
  if (a.dtype() == DType::Float64)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, a.data_as<double>(), k, b.data_as<double>(), n,
                0.0, c.data_as<double>(), n);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data_as<float>(), k, b.data_as<float>(), n,
                0.0f, c.data_as<float>(), n);
}

Array matrix(DType dt, int64_t rows, int64_t cols, uint64_t seed) {
  Array a = dt == DType::Float64 ? random_array<double>(rows * cols, seed, -1, 1) : random_array<float>(rows * cols, seed, -1, 1);
  return a.reshape({rows, cols});
}

}  // namespace

int run_linalg_bench(int argc, char** argv) {
  const int64_t n = arg_int(argc, argv, "--n", 2000);
  const int reps = static_cast<int>(std::max<int64_t>(arg_int(argc, argv, "--reps", 5), 1));
  const int all = hardware_threads();
  const double mhz = clock_mhz();
  blas::blas_threads_at_load();  // kiln's policy in force before the first direct call
  std::printf("kiln bench --linalg: n = %lld, median of %d (min-max), %d cores at %.0f MHz (/proc/cpuinfo), OpenBLAS %s\n",
              static_cast<long long>(n), reps, all, mhz, openblas_get_config());
  std::printf("%-44s %7s %10s %8s %8s %9s %9s\n", "", "threads", "median ms", "min", "max", "GFLOP/s", "of peak");
  std::vector<int> thread_counts = {1};
  if (all > 1) thread_counts.push_back(all);
  // Not reported: after a direct call OpenBLAS's pool threads spin for work for a while
  // (0.1 s or so), taking cores from whatever runs next; kiln's own calls never wake them.
  auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); };
  for (DType dt : {DType::Float64, DType::Float32}) {
    const char* name = dt == DType::Float64 ? "DGEMM" : "SGEMM";
    Array a = matrix(dt, n, n, 1), b = matrix(dt, n, n, 2), c = Array::zeros(dt, {n, n});
    const double flops = 2.0 * n * n * n;
    for (int t : thread_counts) {
      set_num_threads(t);
      const double peak = measured_peak(t, dt == DType::Float32);
      std::printf("%s measured AVX2 FMA peak, %d thread%s: %.1f GFLOP/s\n", name, t, t == 1 ? "" : "s", 1e-9 * peak);
      std::vector<Stats> st = measure_interleaved(reps, {
          [&] { eval(matmul(a, b), c); },
          [&] {
            openblas_set_num_threads(t);
            direct_gemm(a, b, c);
            openblas_set_num_threads(1);
          },
          settle,
      });
      const char* labels[] = {"kiln matmul", "direct cblas (OpenBLAS threads)"};
      for (int i = 0; i < 2; ++i)
        std::printf("%s %-38s %7d %10.2f %8.2f %8.2f %9.1f %8.0f%%\n", name, labels[i], t, 1e3 * st[i].median,
                    1e3 * st[i].min, 1e3 * st[i].max, 1e-9 * flops / st[i].median, 100.0 * flops / st[i].median / peak);
      std::printf("  %s kiln / direct cblas at %d thread%s: %.3f\n", name, t, t == 1 ? "" : "s", st[1].median / st[0].median);
    }
  }

  // The epilogue: square, and with a short inner dimension.
  set_num_threads(0);
  struct Case {
    int64_t m, k, n;
  };
  for (Case cs : {Case{n, n, n}, Case{2 * n, n / 8, 2 * n}}) {
    Array a = matrix(DType::Float64, cs.m, cs.k, 3), b = matrix(DType::Float64, cs.k, cs.n, 4);
    Array bias = random_array<double>(cs.n, 5, -1, 1), out = Array::zeros(DType::Float64, {cs.m, cs.n});
    Array tmp = Array::zeros(DType::Float64, {cs.m, cs.n});
    Expr fused = relu(matmul(a, b) + bias);
    std::vector<Stats> st = measure_interleaved(reps, {
        [&] { eval(fused, out); },
        [&] {
          eval(matmul(a, b), tmp);
          eval(relu(Expr(tmp) + bias), out);
        },
        [&] { eval(matmul(a, b), tmp); },
    });
    const double flops = 2.0 * cs.m * cs.n * cs.k;
    char shape[64];
    std::snprintf(shape, sizeof shape, "%lldx%lldx%lld", static_cast<long long>(cs.m), static_cast<long long>(cs.k),
                  static_cast<long long>(cs.n));
    const char* labels[] = {"relu(A @ B + bias) fused", "  GEMM, then relu(C + bias)", "  the GEMM alone"};
    for (int i = 0; i < 3; ++i)
      std::printf("%-44s %7d %10.2f %8.2f %8.2f %9.1f\n", (std::string(labels[i]) + " " + shape).c_str(), all,
                  1e3 * st[i].median, 1e3 * st[i].min, 1e3 * st[i].max, 1e-9 * flops / st[i].median);
    std::printf("  separate / fused: %.3f; fused epilogue costs %.1f%% over the GEMM alone\n", st[1].median / st[0].median,
                100.0 * (st[0].median / st[2].median - 1));
  }

  // Two user threads at once, each a product of its own.
  {
    const int users = 2;
    std::vector<Array> as, bs, cs;
    for (int u = 0; u < users; ++u) {
      as.push_back(matrix(DType::Float64, n, n, 10 + u));
      bs.push_back(matrix(DType::Float64, n, n, 20 + u));
      cs.push_back(Array::zeros(DType::Float64, {n, n}));
    }
    auto in_threads = [&](const std::function<void(int)>& work) {
      std::vector<std::thread> ts;
      for (int u = 0; u < users; ++u) ts.emplace_back(work, u);
      for (auto& t : ts) t.join();
    };
    set_num_threads(0);
    std::vector<Stats> st = measure_interleaved(reps, {
        [&] { in_threads([&](int u) { eval(matmul(as[u], bs[u]), cs[u]); }); },
        [&] {
          openblas_set_num_threads(all);
          in_threads([&](int u) { direct_gemm(as[u], bs[u], cs[u]); });
          openblas_set_num_threads(1);
        },
        settle,
    });
    const double flops = users * 2.0 * n * n * n;
    const char* labels[] = {"2 user threads x matmul, kiln budget", "2 user threads x cblas, all-core BLAS each"};
    for (int i = 0; i < 2; ++i)
      std::printf("%-44s %7d %10.2f %8.2f %8.2f %9.1f\n", labels[i], all, 1e3 * st[i].median, 1e3 * st[i].min,
                  1e3 * st[i].max, 1e-9 * flops / st[i].median);
    std::printf("  naive / kiln: %.3f\n", st[1].median / st[0].median);
  }
  return 0;
}

}  // namespace kiln::cli
