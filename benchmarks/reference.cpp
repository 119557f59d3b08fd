// The references of `kiln bench --suite` (see reference.hpp). This file alone is compiled
// with -mavx2 -mfma -ffast-math -fopenmp-simd: -ffast-math lets GCC call libmvec's
// vector sin/cos/exp/log1p from `omp simd` loops and vectorise the dot product's sum.
#include "reference.hpp"

#include <immintrin.h>

#include <cmath>
#include <cstddef>

#include <xtensor/xadapt.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xreducer.hpp>

namespace kiln::bench {

namespace {

template <class T>
void hand(Case c, const T* a, const T* b, const T* cc, T* o, int64_t n) {
  switch (c) {
    case Case::Fma:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = a[i] * b[i] + cc[i];
      break;
    case Case::Poly:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = T(2) * a[i] + T(3) * b[i] * cc[i] - T(1.5);
      break;
    case Case::Hypot:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = std::sqrt(a[i] * a[i] + b[i] * b[i]);
      break;
    case Case::Where:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = a[i] > T(0) ? a[i] : T(0.1) * a[i];
      break;
    case Case::SinCos:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        T s = std::sin(a[i]), k = std::cos(b[i]);
        o[i] = s * s + k * k;
      }
      break;
    case Case::ExpLog:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = std::exp(-a[i]) * std::log1p(b[i]);
      break;
    case Case::Dot: {
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
      o[0] = s;
      break;
    }
    case Case::Strided:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = a[2 * i] * T(2) + b[i];
      break;
    case Case::Broadcast:
      for (int64_t r = 0; r < n / 1000; ++r)
#pragma omp simd
        for (int64_t k = 0; k < 1000; ++k) o[r * 1000 + k] = a[r * 1000 + k] + b[k];
      break;
    case Case::Transposed: {  // as written by hand: row by row of the result
      const int64_t rows = n / 1000;
      for (int64_t r = 0; r < rows; ++r)
#pragma omp simd
        for (int64_t k = 0; k < 1000; ++k) o[r * 1000 + k] = a[k * rows + r] + b[r * 1000 + k];
      break;
    }
  }
}

template <class T>
void xt_eval(Case c, const T* a, const T* b, const T* cc, T* o, int64_t n) {
  using shape1 = std::array<std::size_t, 1>;
  auto size = static_cast<std::size_t>(n);
  auto A = xt::adapt(a, size, xt::no_ownership(), shape1{size});
  auto B = xt::adapt(b, size, xt::no_ownership(), shape1{size});
  auto C = xt::adapt(cc, size, xt::no_ownership(), shape1{size});
  auto O = xt::adapt(o, size, xt::no_ownership(), shape1{size});
  switch (c) {
    case Case::Fma: xt::noalias(O) = A * B + C; break;
    case Case::Poly: xt::noalias(O) = T(2) * A + T(3) * B * C - T(1.5); break;
    case Case::Hypot: xt::noalias(O) = xt::sqrt(A * A + B * B); break;
    case Case::Where: xt::noalias(O) = xt::where(A > T(0), A, T(0.1) * A); break;
    case Case::SinCos: xt::noalias(O) = xt::square(xt::sin(A)) + xt::square(xt::cos(B)); break;
    case Case::ExpLog: xt::noalias(O) = xt::exp(-A) * xt::log1p(B); break;
    case Case::Dot: o[0] = xt::sum(A * B)(); break;
    case Case::Strided: {
      auto S = xt::adapt(a, size, xt::no_ownership(), shape1{size}, shape1{2});  // xtensor wants the element count
      xt::noalias(O) = S * T(2) + B;
      break;
    }
    case Case::Broadcast: {
      using shape2 = std::array<std::size_t, 2>;
      auto M = xt::adapt(a, size, xt::no_ownership(), shape2{size / 1000, 1000});
      auto R = xt::adapt(b, 1000, xt::no_ownership(), shape1{1000});
      auto O2 = xt::adapt(o, size, xt::no_ownership(), shape2{size / 1000, 1000});
      xt::noalias(O2) = M + R;
      break;
    }
    case Case::Transposed: {
      using shape2 = std::array<std::size_t, 2>;
      auto M = xt::adapt(a, size, xt::no_ownership(), shape2{1000, size / 1000});
      auto B2 = xt::adapt(b, size, xt::no_ownership(), shape2{size / 1000, 1000});
      auto O2 = xt::adapt(o, size, xt::no_ownership(), shape2{size / 1000, 1000});
      xt::noalias(O2) = xt::transpose(M) + B2;
      break;
    }
  }
}

}  // namespace

double fma_flops(bool f32, int64_t iterations) {
  __m256d d[12];
  __m256 f[12];
  const __m256d dm = _mm256_set1_pd(0.999999), da = _mm256_set1_pd(1e-7);
  const __m256 fm = _mm256_set1_ps(0.9999f), fa = _mm256_set1_ps(1e-4f);
  for (int i = 0; i < 12; ++i) d[i] = _mm256_set1_pd(i), f[i] = _mm256_set1_ps(static_cast<float>(i));
  for (int64_t r = 0; r < iterations; ++r) {
    if (f32) {
      for (int i = 0; i < 12; ++i) f[i] = _mm256_fmadd_ps(f[i], fm, fa);
    } else {
      for (int i = 0; i < 12; ++i) d[i] = _mm256_fmadd_pd(d[i], dm, da);
    }
  }
  // Keep the chains alive.
  double sink = 0;
  for (int i = 0; i < 12; ++i) sink += _mm256_cvtsd_f64(d[i]) + _mm256_cvtss_f32(f[i]);
  volatile double keep = sink;
  (void)keep;
  return 12.0 * 2 * (f32 ? 8 : 4) * static_cast<double>(iterations);
}

void hand_loop(Case c, const double* a, const double* b, const double* cc, double* o, int64_t n) { hand(c, a, b, cc, o, n); }
void hand_loop(Case c, const float* a, const float* b, const float* cc, float* o, int64_t n) { hand(c, a, b, cc, o, n); }
void xtensor_eval(Case c, const double* a, const double* b, const double* cc, double* o, int64_t n) { xt_eval(c, a, b, cc, o, n); }
void xtensor_eval(Case c, const float* a, const float* b, const float* cc, float* o, int64_t n) { xt_eval(c, a, b, cc, o, n); }

}  // namespace kiln::bench
