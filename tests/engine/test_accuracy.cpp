// Accuracy of the vectorised math functions against the correctly rounded result, on
// every instruction set: the reference is computed in x87 long double (64-bit
// significand, 11 bits more than float64) and rounded once, so it is the correctly
// rounded float64 except in cases far rarer than these sweeps can meet. The bound is
// the issue's: 4 ulp (float64 and float32), over wide ranges of arguments, not only
// those where the polynomial is at its best.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "isa_loop.hpp"
#include "kiln/kiln.hpp"

using kiln::Array;
using kiln::DType;
using kiln::Op;

namespace {

template <class T> int64_t ordered_bits(T x) {
  if constexpr (sizeof(T) == 8) {
    int64_t i;
    std::memcpy(&i, &x, 8);
    return i < 0 ? INT64_MIN - i : i;
  } else {
    int32_t i;
    std::memcpy(&i, &x, 4);
    return i < 0 ? INT32_MIN - i : i;
  }
}

// Distance in units in the last place; 0 for equal values (0.0 and -0.0 included).
template <class T> int64_t ulps(T got, T want) {
  if (got == want) return 0;
  if (std::isnan(got) || std::isnan(want) || std::isinf(got) || std::isinf(want)) return INT64_MAX;
  int64_t d = ordered_bits(got) - ordered_bits(want);
  return d < 0 ? -d : d;
}

long double reference(Op op, long double x) {
  switch (op) {
    case Op::sin: return sinl(x);
    case Op::cos: return cosl(x);
    case Op::tan: return tanl(x);
    case Op::exp: return expl(x);
    case Op::expm1: return expm1l(x);
    case Op::exp2: return exp2l(x);
    case Op::log: return logl(x);
    case Op::log1p: return log1pl(x);
    case Op::log2: return log2l(x);
    case Op::log10: return log10l(x);
    case Op::tanh: return tanhl(x);
    case Op::sinh: return sinhl(x);
    case Op::cosh: return coshl(x);
    case Op::arctan: return atanl(x);
    case Op::arcsin: return asinl(x);
    case Op::arccos: return acosl(x);
    case Op::arcsinh: return asinhl(x);
    case Op::arccosh: return acoshl(x);
    case Op::arctanh: return atanhl(x);
    case Op::cbrt: return cbrtl(x);
    case Op::sigmoid: return 1.0L / (1.0L + expl(-x));
    default: return NAN;
  }
}

struct Sweep {
  Op op;
  double lo, hi;
  bool log_spread;  // magnitudes uniform in their logarithm (from 1e-3 where lo < 0), random signs
};

// splitmix64's numbers in [0, 1), from a seed.
struct Uniform {
  uint64_t s;
  double operator()() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  }
};

// n arguments spread over [lo, hi], plus the ends themselves.
template <class T> std::vector<T> arguments(const Sweep& sw, double lo, double hi, int64_t n) {
  std::vector<T> v;
  Uniform next{0};
  double log_lo = std::log(lo > 0 ? lo : 1e-3), log_hi = std::log(hi);
  for (int64_t i = 0; i < n; ++i) {
    double x = lo + (hi - lo) * next();
    if (sw.log_spread) {
      x = std::exp(log_lo + (log_hi - log_lo) * next());
      if (lo < 0 && next() < 0.5) x = -x;
    }
    v.push_back(static_cast<T>(x));
  }
  v.push_back(static_cast<T>(lo));
  v.push_back(static_cast<T>(hi));
  return v;
}

// Ranges where each function is defined and its result is a normal number.
const Sweep kSweeps[] = {
    {Op::sin, -0.785, 0.785, false}, {Op::sin, -1, 1, false},   {Op::sin, -100, 100, false},
    {Op::sin, -1e5, 1e5, true},      {Op::cos, -0.785, 0.785, false}, {Op::cos, -1, 1, false},
    {Op::cos, -100, 100, false},     {Op::cos, -1e5, 1e5, true},  {Op::tan, -1.5, 1.5, false},
    {Op::exp, -1, 1, false},         {Op::exp, -700, 700, false}, {Op::exp2, -1000, 1000, false},
    {Op::expm1, -1, 1, false},       {Op::expm1, -50, 700, false}, {Op::log, 1e-300, 1e300, true},
    {Op::log, 0.5, 2, false},        {Op::log1p, -0.99, 1, false}, {Op::log1p, 1e-300, 1e300, true},
    {Op::log2, 1e-300, 1e300, true}, {Op::log10, 1e-300, 1e300, true}, {Op::tanh, -20, 20, false},
    {Op::sinh, -700, 700, false},    {Op::cosh, -700, 700, false}, {Op::arctan, -1e6, 1e6, true},
    {Op::sigmoid, -30, 30, false},   {Op::arcsin, -1, 1, false},  {Op::arccos, -1, 1, false},
    {Op::arcsinh, -1e6, 1e6, true},  {Op::arccosh, 1, 1e6, true}, {Op::arctanh, -0.999, 0.999, false},
    {Op::cbrt, 1e-300, 1e300, true}, {Op::cbrt, -8, 8, false},
};

template <class T> void check_sweeps(int64_t n) {
  constexpr int64_t kMaxUlps = 4;
  for (const Sweep& sw : kSweeps) {
    // float32's range is narrower: clamp the sweep to arguments whose result is normal.
    double lo = sw.lo, hi = sw.hi;
    if constexpr (sizeof(T) == 4) {
      double limit = sw.op == Op::exp2 ? 126 : sw.op == Op::exp || sw.op == Op::expm1 || sw.op == Op::sinh || sw.op == Op::cosh ? 87 : 1e30;
      lo = std::max(lo, sw.op == Op::log || sw.op == Op::log2 || sw.op == Op::log10 ? 1e-30 : -limit);
      hi = std::min(hi, limit);
      if (sw.op == Op::sin || sw.op == Op::cos) hi = std::min(hi, 1e4), lo = std::max(lo, -1e4);
    }
    std::vector<T> x = arguments<T>(sw, lo, hi, n);
    Array a = Array::empty(kiln::dtype_of<T>(), {static_cast<int64_t>(x.size())});
    std::memcpy(a.data(), x.data(), x.size() * sizeof(T));
    Array r = kiln::eval(kiln::Expr::apply(sw.op, {a}));
    int64_t worst = 0;
    size_t worst_at = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      T want = static_cast<T>(reference(sw.op, static_cast<long double>(x[i])));
      int64_t d = ulps(r.data_as<T>()[i], want);
      if (d > worst) worst = d, worst_at = i;
    }
    INFO(kiln::op_info(sw.op).name << "<" << kiln::dtype_name(kiln::dtype_of<T>()) << "> on " << kiln::simd_isa()
                                   << " over [" << lo << ", " << hi << "]: worst " << worst << " ulp at x = "
                                   << static_cast<double>(x[worst_at]) << ", got "
                                   << static_cast<double>(r.data_as<T>()[worst_at]));
    CHECK(worst <= kMaxUlps);
  }
}

}  // namespace

TEST_CASE("vectorised math is within 4 ulp of the correctly rounded result on every instruction set", "[ops][accuracy]") {
  kiln::test::for_each_isa([&](const std::string&) {
    check_sweeps<double>(20000);
    check_sweeps<float>(20000);
  });
}

namespace {

// arctan2 and power of pairs drawn over wide ranges (magnitudes uniform in their
// logarithm, random signs for arctan2), against atan2l and powl rounded once.
template <class T> void check_binary_sweeps(int64_t n) {
  constexpr int64_t kMaxUlps = 4;
  Uniform next{7};
  const double span = sizeof(T) == 8 ? 300 : 35;  // decades of magnitude each way
  const double exp_limit = sizeof(T) == 8 ? 700 : 85;  // |y * ln x| keeping x**y normal
  for (Op op : {Op::arctan2, Op::power}) {
    std::vector<T> x, y;
    for (int64_t i = 0; i < n; ++i) {
      if (op == Op::arctan2) {
        x.push_back(static_cast<T>((next() < 0.5 ? -1 : 1) * std::pow(10.0, span * (2 * next() - 1))));
        y.push_back(static_cast<T>((next() < 0.5 ? -1 : 1) * std::pow(10.0, span * (2 * next() - 1))));
      } else {  // bases over many decades, exponents as large as the result allows
        const double base = std::pow(10.0, (i % 2 ? span : 2.0) * (2 * next() - 1));
        const double limit = std::min(exp_limit / std::max(std::fabs(std::log(base)), 1e-3), 1e4);
        x.push_back(static_cast<T>(base));
        y.push_back(static_cast<T>(limit * (2 * next() - 1)));
      }
    }
    Array a = Array::empty(kiln::dtype_of<T>(), {n}), b = Array::empty(kiln::dtype_of<T>(), {n});
    std::memcpy(a.data(), (op == Op::arctan2 ? y : x).data(), n * sizeof(T));
    std::memcpy(b.data(), (op == Op::arctan2 ? x : y).data(), n * sizeof(T));
    Array r = kiln::eval(kiln::Expr::apply(op, {a, b}));
    int64_t worst = 0, worst_at = 0;
    for (int64_t i = 0; i < n; ++i) {
      const long double p = a.data_as<T>()[i], q = b.data_as<T>()[i];
      const T want = static_cast<T>(op == Op::arctan2 ? atan2l(p, q) : powl(p, q));
      if (std::fpclassify(want) != FP_NORMAL) continue;  // underflow: not this sweep's business
      const int64_t d = ulps(r.data_as<T>()[i], want);
      if (d > worst) worst = d, worst_at = i;
    }
    INFO(kiln::op_info(op).name << "<" << kiln::dtype_name(kiln::dtype_of<T>()) << "> on " << kiln::simd_isa()
                                << ": worst " << worst << " ulp at (" << static_cast<double>(a.data_as<T>()[worst_at])
                                << ", " << static_cast<double>(b.data_as<T>()[worst_at]) << ")");
    CHECK(worst <= kMaxUlps);
  }
}

// Every pairing of special arguments gives libm's value exactly, the sign of zero included:
// atan2's quadrants at zeros and infinities, pow's negative bases, zeros, ones and NaNs.
template <class T> void check_binary_specials() {
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  const T tiny = std::numeric_limits<T>::denorm_min(), big = std::numeric_limits<T>::max();
  const std::vector<T> values = {T(0), -T(0), T(1), T(-1), T(0.5), T(-0.5), T(2), T(-2), T(3), T(-3), T(2.5),
                                 T(-2.5), inf, -inf, nan, tiny, -tiny, big, -big, T(1e-3), T(-7)};
  std::vector<T> x, y;
  for (T p : values)
    for (T q : values) x.push_back(p), y.push_back(q);
  const int64_t n = static_cast<int64_t>(x.size());
  Array a = Array::empty(kiln::dtype_of<T>(), {n}), b = Array::empty(kiln::dtype_of<T>(), {n});
  std::memcpy(a.data(), x.data(), n * sizeof(T));
  std::memcpy(b.data(), y.data(), n * sizeof(T));
  for (Op op : {Op::arctan2, Op::power}) {
    Array r = kiln::eval(kiln::Expr::apply(op, {a, b}));
    int wrong = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T want = op == Op::arctan2 ? std::atan2(x[i], y[i]) : std::pow(x[i], y[i]);
      const T got = r.data_as<T>()[i];
      const bool same = std::isnan(want) ? std::isnan(got)
                                         : (got == want && std::signbit(got) == std::signbit(want)) ||
                                               (std::isfinite(want) && want != 0 && ulps(got, want) <= 4);
      if (!same && wrong++ < 5)
        FAIL_CHECK(kiln::op_info(op).name << "<" << kiln::dtype_name(kiln::dtype_of<T>()) << "> on " << kiln::simd_isa()
                                          << " (" << static_cast<double>(x[i]) << ", " << static_cast<double>(y[i])
                                          << "): got " << static_cast<double>(got)
                                          << ", want " << static_cast<double>(want));
    }
  }
}

}  // namespace

TEST_CASE("arctan2 and power: within 4 ulp, and libm's values at special arguments, on every instruction set",
          "[ops][accuracy]") {
  kiln::test::for_each_isa([&](const std::string&) {
    check_binary_sweeps<double>(20000);
    check_binary_sweeps<float>(20000);
    check_binary_specials<double>();
    check_binary_specials<float>();
  });
}
