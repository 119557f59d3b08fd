// Every op of the table, on every dtype it computes in and every SIMD instruction set
// this CPU has, against a scalar reference loop written here from NumPy's documented
// semantics (not from kiln's kernels), and the float ops against xtensor.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <random>
#include <xtensor/xarray.hpp>
#include <xtensor/xadapt.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>
#include <sstream>
#include <string>

#include "isa_loop.hpp"
#include "kiln/kiln.hpp"

using kiln::Array;
using kiln::DType;
using kiln::Op;

namespace {

// Ops whose SIMD versions approximate libm: compared within a few ulps, others exactly.
bool approximate(Op op) {
  switch (op) {
    case Op::exp: case Op::exp2: case Op::expm1: case Op::log: case Op::log2: case Op::log10: case Op::log1p:
    case Op::sin: case Op::cos: case Op::tan: case Op::arcsin: case Op::arccos: case Op::arctan: case Op::arctan2:
    case Op::sinh: case Op::cosh: case Op::tanh: case Op::arcsinh: case Op::arccosh: case Op::arctanh:
    case Op::cbrt: case Op::sigmoid: case Op::power:  // float power from libmvec; ints exact
    case Op::logaddexp: case Op::logaddexp2:
      return true;
    default:
      return false;
  }
}

template <class T> T py_floor_div(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return 0;
    if (b == -1) return static_cast<T>(-static_cast<std::make_unsigned_t<T>>(a));
    T q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
  } else {
    if (b == 0) return a / b;
    // Python's float floor division: floor((a - fmod(a, b)) / b), adjusted toward the
    // divisor's sign.
    T mod = std::fmod(a, b);
    T div = (a - mod) / b;
    if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1;
    if (div == 0) return std::copysign(T(0), a / b);
    T f = std::floor(div);
    if (div - f > T(0.5)) f += 1;
    return f;
  }
}

template <class T> T py_mod(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0 || b == -1) return 0;
    T r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
  } else {
    T m = std::fmod(a, b);
    if (b == 0) return m;
    if (m == 0) return std::copysign(T(0), b);
    if ((b < 0) != (m < 0)) m += b;
    return m;
  }
}

template <class T> T wrap(long double) = delete;
template <class T> T to_wrapped(__int128 v) {  // two's complement wrap to T
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(static_cast<unsigned __int128>(v)));
}

template <class T> T int_pow(T base, T e) {
  if (e < 0) return base == 1 ? 1 : base == -1 ? ((e % 2) ? -1 : 1) : 0;
  __int128 r = 1, b = base;
  while (e) {
    if (e & 1) r = to_wrapped<T>(r * b);
    b = to_wrapped<T>(b * b);
    e >>= 1;
  }
  return static_cast<T>(r);
}

// 10^k as NumPy's round computes it (calculation.c's power_of_ten: 1e0..1e8, then 1e9
// times 10, k - 9 times, in float64), inf beyond the type's range.
template <class T> T power_of_ten(double k) {
  static const double exact[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
  if (!(k < 400)) return std::numeric_limits<T>::infinity();
  double p = 1e9;
  for (int n = static_cast<int>(k); n > 9; --n) p *= 10.0;
  return static_cast<T>(k < 9 ? exact[static_cast<int>(k)] : p);
}

// NumPy's round(x, decimals): x * 10^d rounded half to even, divided back (d < 0: the
// other way round); float32 beyond 10^38 multiplies and divides in float64 (value-based
// casting), rounding to float32 between; integers
// unchanged for d >= 0, else through float64, INT_MIN where that does not fit (x86).
template <class T> T np_round(T x, T decimals) {
  const double k = std::trunc(static_cast<double>(decimals));
  if constexpr (std::is_integral_v<T>) {
    if (k >= 0) return x;
    const double p = power_of_ten<double>(-k), r = std::nearbyint(static_cast<double>(x) / p) * p;
    const double limit = std::ldexp(1.0, std::numeric_limits<T>::digits);
    return r >= -limit && r < limit ? static_cast<T>(r) : std::numeric_limits<T>::min();
  } else {
    if (k == 0) return std::nearbyint(x);
    if (sizeof(T) == 4 && !(std::fabs(k) <= 38)) {  // float64 steps, float32 between them
      const double p = power_of_ten<double>(std::fabs(k));
      const T y = std::nearbyint(static_cast<T>(k > 0 ? x * p : x / p));
      return static_cast<T>(k > 0 ? y / p : y * p);
    }
    const T p = power_of_ten<T>(std::fabs(k));
    return k > 0 ? std::nearbyint(x * p) / p : std::nearbyint(x / p) * p;
  }
}

// log(e^a + e^b) or log2(2^a + 2^b) in long double, by NumPy's formula.
template <bool Base2> long double log_add_exp(long double a, long double b) {
  auto term = [](long double e) { return Base2 ? log1pl(exp2l(e)) / logl(2.0L) : log1pl(expl(e)); };
  if (a == b) return a + (Base2 ? 1.0L : logl(2.0L));
  const long double d = a - b;
  return d > 0 ? a + term(-d) : d <= 0 ? b + term(d) : d;
}

// minimum/maximum: NaN from either side wins; equal values give the second operand.
template <class T> T np_min(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return a;
    if (std::isnan(b)) return b;
  }
  return a < b ? a : b;
}
template <class T> T np_max(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return a;
    if (std::isnan(b)) return b;
  }
  return a > b ? a : b;
}

// Reference for ops that return their compute type T.
template <class T> T reference(Op op, T a, T b, T c) {
  constexpr bool I = std::is_integral_v<T> && !std::is_same_v<T, bool>;
  constexpr bool B = std::is_same_v<T, bool>;
  auto wide = [](T v) { return static_cast<__int128>(v); };
  switch (op) {
    case Op::add: if constexpr (B) return a || b; else if constexpr (I) return to_wrapped<T>(wide(a) + wide(b)); else return a + b;
    case Op::subtract: if constexpr (I) return to_wrapped<T>(wide(a) - wide(b)); else return a - b;
    case Op::multiply: if constexpr (B) return a && b; else if constexpr (I) return to_wrapped<T>(wide(a) * wide(b)); else return a * b;
    case Op::divide: return a / b;
    case Op::floor_divide: if constexpr (!B) return py_floor_div(a, b); break;
    case Op::remainder: if constexpr (!B) return py_mod(a, b); break;
    case Op::power: if constexpr (I) return int_pow(a, b); else if constexpr (!B) return std::pow(a, b); break;
    case Op::negative: if constexpr (I) return to_wrapped<T>(-wide(a)); else if constexpr (!B) return -a; break;
    case Op::invert: if constexpr (B) return !a; else if constexpr (I) return static_cast<T>(~a); break;
    case Op::bitwise_and: if constexpr (B || I) return static_cast<T>(a & b); break;
    case Op::bitwise_or: if constexpr (B || I) return static_cast<T>(a | b); break;
    case Op::bitwise_xor: if constexpr (B || I) return static_cast<T>(a ^ b); break;
    case Op::left_shift:  // a * 2^b, wrapped; 0 past the width
      if constexpr (I) {
        if (b < 0 || b >= static_cast<T>(sizeof(T) * 8)) return T(0);
        return to_wrapped<T>(wide(a) * (__int128(1) << b));
      }
      break;
    case Op::right_shift:  // floor(a / 2^b); past the width 0, or -1 for negatives
      if constexpr (I) {
        if (b < 0 || b >= static_cast<T>(sizeof(T) * 8)) return T(a < 0 ? -1 : 0);
        const __int128 p = __int128(1) << b;
        return static_cast<T>(wide(a) / p - (a < 0 && wide(a) % p != 0));
      }
      break;
    case Op::abs: if constexpr (B) return a; else if constexpr (I) return to_wrapped<T>(a < 0 ? -wide(a) : wide(a)); else return std::fabs(a);
    case Op::sqrt: if constexpr (!B && !I) return std::sqrt(a); break;
    case Op::cbrt: if constexpr (!B && !I) return std::cbrt(a); break;
    case Op::square: if constexpr (I) return to_wrapped<T>(wide(a) * wide(a)); else if constexpr (!B) return a * a; break;
    case Op::reciprocal:
      if constexpr (I) return a == 0 ? std::numeric_limits<T>::min() : (a == 1 || a == -1) ? a : 0;
      else if constexpr (!B) return 1 / a;
      break;
#define FLOAT_FN(o, fn) case Op::o: if constexpr (!B && !I) return std::fn(a); break;
    FLOAT_FN(exp, exp) FLOAT_FN(exp2, exp2) FLOAT_FN(expm1, expm1) FLOAT_FN(log, log) FLOAT_FN(log2, log2)
    FLOAT_FN(log10, log10) FLOAT_FN(log1p, log1p) FLOAT_FN(sin, sin) FLOAT_FN(cos, cos) FLOAT_FN(tan, tan)
    FLOAT_FN(arcsin, asin) FLOAT_FN(arccos, acos) FLOAT_FN(arctan, atan) FLOAT_FN(sinh, sinh) FLOAT_FN(cosh, cosh)
    FLOAT_FN(tanh, tanh) FLOAT_FN(arcsinh, asinh) FLOAT_FN(arccosh, acosh) FLOAT_FN(arctanh, atanh)
    FLOAT_FN(floor, floor) FLOAT_FN(ceil, ceil) FLOAT_FN(trunc, trunc) FLOAT_FN(rint, nearbyint)
#undef FLOAT_FN
    case Op::arctan2: if constexpr (!B && !I) return std::atan2(a, b); break;
    case Op::copysign: if constexpr (!B && !I) return std::copysign(a, b); break;
    case Op::hypot: if constexpr (!B && !I) return std::hypot(a, b); break;
    case Op::fmod:
      if constexpr (I) return b == 0 ? T(0) : static_cast<T>(wide(a) % wide(b));
      else if constexpr (!B) return std::fmod(a, b);
      break;
    case Op::sign:
      if constexpr (I) return static_cast<T>((a > 0) - (a < 0));
      else if constexpr (!B) return std::isnan(a) ? a : a > 0 ? T(1) : a < 0 ? T(-1) : T(0);
      break;
    case Op::minimum: return np_min(a, b);
    case Op::maximum: return np_max(a, b);
    case Op::fmin:
      if constexpr (!B && !I) { if (std::isnan(a)) return b; if (std::isnan(b)) return a; }
      return a < b ? a : b;
    case Op::fmax:
      if constexpr (!B && !I) { if (std::isnan(a)) return b; if (std::isnan(b)) return a; }
      return a > b ? a : b;
    case Op::clip: return np_min(np_max(a, b), c);
    case Op::relu: if constexpr (!B) return np_max(a, T(0)); break;
    case Op::sigmoid: if constexpr (!B && !I) return 1 / (1 + std::exp(-a)); break;
    case Op::logaddexp: if constexpr (!B && !I) return static_cast<T>(log_add_exp<false>(a, b)); break;
    case Op::logaddexp2: if constexpr (!B && !I) return static_cast<T>(log_add_exp<true>(a, b)); break;
    case Op::heaviside:
      if constexpr (!B && !I)
        return std::isnan(a) ? std::numeric_limits<T>::quiet_NaN() : a == 0 ? b : a < 0 ? T(0) : T(1);
      break;
    case Op::nan_to_num:
      if constexpr (!B && !I) {
        if (std::isnan(a)) return T(0);
        if (std::isinf(a)) return a > 0 ? std::numeric_limits<T>::max() : std::numeric_limits<T>::lowest();
      }
      return a;
    case Op::fabs: if constexpr (!B && !I) return std::fabs(a); break;
    case Op::round: if constexpr (!B) return np_round(a, b); break;
    case Op::deg2rad: if constexpr (!B && !I) return a * (std::numbers::pi_v<T> / 180); break;
    case Op::rad2deg: if constexpr (!B && !I) return a * (180 / std::numbers::pi_v<T>); break;
    default: break;
  }
  FAIL("no reference for op " << kiln::op_info(op).name);
  return T();
}

template <class T> bool reference_bool(Op op, T a, T b) {
  switch (op) {
    case Op::less: return a < b;
    case Op::less_equal: return a <= b;
    case Op::greater: return a > b;
    case Op::greater_equal: return a >= b;
    case Op::equal: return a == b;
    case Op::not_equal: return a != b;
    case Op::isnan: if constexpr (std::is_floating_point_v<T>) return std::isnan(a); else return false;
    case Op::isinf: if constexpr (std::is_floating_point_v<T>) return std::isinf(a); else return false;
    case Op::isfinite: if constexpr (std::is_floating_point_v<T>) return std::isfinite(a); else return true;
    case Op::logical_and: return a != 0 && b != 0;
    case Op::logical_or: return a != 0 || b != 0;
    case Op::logical_xor: return (a != 0) != (b != 0);
    case Op::logical_not: return !(a != 0);
    case Op::signbit:
      if constexpr (std::is_floating_point_v<T>) return std::signbit(a);
      else if constexpr (std::is_same_v<T, bool>) return false;
      else return a < 0;
    default: FAIL("no bool reference for op " << kiln::op_info(op).name); return false;
  }
}

// Values that break naive kernels.
template <class T> std::vector<T> edge_values() {
  std::vector<T> v;
  if constexpr (std::is_same_v<T, bool>) {
    v = {false, true};
  } else if constexpr (std::is_integral_v<T>) {
    using L = std::numeric_limits<T>;
    v = {0, 1, -1, 2, -2, 3, 7, -7, 100, L::min(), L::max(), T(L::min() + 1), T(L::max() - 1), 31, 62};
  } else {
    using L = std::numeric_limits<T>;
    v = {T(0), T(-0.0), T(1), T(-1), T(0.5), T(-2.5), T(3), T(1e-3), T(100), T(-100), T(700), T(-745),
         L::infinity(), -L::infinity(), L::quiet_NaN(), L::denorm_min(), L::max(), L::lowest(), T(0.9999),
         T(-0.9999), T(1e10), T(3.14159265358979), T(0.25), T(-0.125),  // halves at 10^1, 10^2
         // Around overflow and subnormal thresholds of exp, exp2 and friends in both widths.
         T(88.5), T(-87.5), T(-100), T(127), T(-126.5), T(-149), T(709.5), T(710), T(-708.5), T(-720),
         T(1023), T(-1022.5), T(-1074), T(1e-310)};
  }
  return v;
}

// The edge values, then random ones.
template <class T> std::vector<T> test_values(size_t n, uint64_t seed) {
  std::vector<T> v = edge_values<T>();
  std::mt19937_64 rng(seed);
  while (v.size() < n) {
    if constexpr (std::is_same_v<T, bool>) v.push_back(rng() & 1);
    else if constexpr (std::is_integral_v<T>) v.push_back(static_cast<T>(static_cast<int64_t>(rng() % 2001) - 1000));
    else v.push_back(static_cast<T>(std::uniform_real_distribution<double>(-20, 20)(rng)));
  }
  v.resize(n);
  return v;
}

// round's decimals: whole numbers about the range ends (10^308, 10^38), then small ones;
// floats also a fraction (truncated) and NaN.
template <class T> std::vector<T> decimals_edges() {
  std::vector<T> v;
  for (int k : {0, 1, -1, 2, -2, 3, -3, 10, -10, 22, -22, 38, -38, 39, -39, 100, -100, 307, -307, 308, -308, 309, -309,
                400, -400})
    v.push_back(static_cast<T>(k));
  if constexpr (std::is_floating_point_v<T>) v.insert(v.end(), {T(1.7), T(-1.7), std::numeric_limits<T>::quiet_NaN()});
  else v.insert(v.end(), {std::numeric_limits<T>::min(), std::numeric_limits<T>::max()});
  return v;
}
template <class T> std::vector<T> decimals_values(size_t n, uint64_t seed) {
  std::vector<T> v = decimals_edges<T>();
  std::mt19937_64 rng(seed);
  while (v.size() < n) v.push_back(static_cast<T>(static_cast<int64_t>(rng() % 25) - 12));
  v.resize(n);
  return v;
}

template <class T> Array make_array(const std::vector<T>& values) {
  Array a = Array::empty(kiln::dtype_of<T>(), {static_cast<int64_t>(values.size())});
  for (size_t i = 0; i < values.size(); ++i) a.data_as<T>()[i] = values[i];
  return a;
}

template <class T> int64_t ulp_distance(T x, T y) {
  using I = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;
  I ix, iy;
  std::memcpy(&ix, &x, sizeof x);
  std::memcpy(&iy, &y, sizeof y);
  if (ix < 0) ix = std::numeric_limits<I>::min() - ix;
  if (iy < 0) iy = std::numeric_limits<I>::min() - iy;
  __int128 d = static_cast<__int128>(ix) - iy;
  return static_cast<int64_t>(d < 0 ? -d : d);
}

// Same value: NaN where the reference has NaN, -0.0 kept apart from 0.0 for exact ops.
template <class T> bool matches(T got, T want, bool approx, int64_t max_ulps) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
    if (!approx) return got == want && std::signbit(got) == std::signbit(want);
    if (std::isinf(want) || std::isinf(got)) return got == want;
    return ulp_distance(got, want) <= max_ulps || std::fabs(got - want) <= std::numeric_limits<T>::min();
  } else {
    (void)approx;
    (void)max_ulps;
    return got == want;
  }
}

// logaddexp is the larger operand plus a term of at most ln 2: where the two cancel (a
// result near zero) the error is a few ulp of the operands, not of the result (NumPy's too).
template <class T> bool within_operand_ulps(Op op, T got, T want, T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (op != Op::logaddexp && op != Op::logaddexp2) return false;
    const T scale = std::max({std::fabs(a), std::fabs(b), T(1)});
    return std::isfinite(scale) && std::fabs(got - want) <= 8 * std::numeric_limits<T>::epsilon() * scale;
  } else {
    return false;
  }
}

template <class T> std::string show(T v) {
  std::ostringstream os;
  if constexpr (std::is_floating_point_v<T>) os.precision(std::numeric_limits<T>::max_digits10);
  os << +v;
  return os.str();
}

template <class T> void check_op(Op op, size_t n) {
  const auto& info = kiln::op_info(op);
  auto va = test_values<T>(n, 1), vb = test_values<T>(n, 2), vc = test_values<T>(n, 3);
  // Give binary ops pairings of unequal special values and, where n holds them, all of them
  // (INT_MIN % -1 overflows in a naive kernel).
  std::rotate(vb.begin(), vb.begin() + std::min<size_t>(n, 5) % std::max<size_t>(n, 1), vb.end());
  if (info.rule == kiln::Rule::Round) vb = decimals_values<T>(n, 2);
  const std::vector<T> edges = edge_values<T>();
  const std::vector<T> b_edges = info.rule == kiln::Rule::Round ? decimals_edges<T>() : edges;
  if (info.arity == 2 && n >= edges.size() * b_edges.size())
    for (size_t k = 0; k < edges.size() * b_edges.size(); ++k) {
      va[k] = edges[k / b_edges.size()];
      vb[k] = b_edges[k % b_edges.size()];
    }
  std::vector<bool> cond(n);
  for (size_t i = 0; i < n; ++i) cond[i] = (i * 7 + 3) % 5 < 2;
  Array a = make_array(va), b = make_array(vb), c = make_array(vc);
  std::vector<bool> cv(cond);
  Array ca = Array::empty(DType::Bool, {static_cast<int64_t>(n)});
  for (size_t i = 0; i < n; ++i) ca.data_as<bool>()[i] = cv[i];

  kiln::Expr e = info.rule == kiln::Rule::Where ? kiln::Expr::apply(op, {ca, a, b})
                 : info.arity == 1            ? kiln::Expr::apply(op, {a})
                 : info.arity == 2            ? kiln::Expr::apply(op, {a, b})
                                              : kiln::Expr::apply(op, {a, b, c});
  Array r = kiln::eval(e);
  REQUIRE(r.size() == static_cast<int64_t>(n));
  bool approx = approximate(op);
  const int64_t max_ulps = 8;
  bool bool_result = info.rule == kiln::Rule::Compare || info.rule == kiln::Rule::Predicate;
  bool float_result = (info.rule == kiln::Rule::FloatMath || info.rule == kiln::Rule::TrueDivide) &&
                      !std::is_floating_point_v<T>;
  const DType result_dtype = bool_result ? DType::Bool : float_result ? DType::Float64 : kiln::dtype_of<T>();
  REQUIRE(r.dtype() == result_dtype);
  int failures = 0;
  for (size_t i = 0; i < n && failures < 5; ++i) {
    // Texts only for a wrong element: made for every one, they were most of the sweep's time.
    std::string got, want;
    if (bool_result) {
      bool g = r.data_as<bool>()[i], w = reference_bool(op, va[i], vb[i]);
      if (g == w) continue;
      got = show(g);
      want = show(w);
    } else if (float_result) {
      double g = r.data_as<double>()[i];
      double w = reference<double>(op, static_cast<double>(va[i]), static_cast<double>(vb[i]), static_cast<double>(vc[i]));
      if (matches(g, w, approx, max_ulps) ||
          within_operand_ulps(op, g, w, static_cast<double>(va[i]), static_cast<double>(vb[i])))
        continue;
      got = show(g);
      want = show(w);
    } else {
      T g = r.data_as<T>()[i];
      T w = info.rule == kiln::Rule::Where ? (cv[i] ? va[i] : vb[i]) : reference<T>(op, va[i], vb[i], vc[i]);
      if (matches(g, w, approx, max_ulps) || within_operand_ulps(op, g, w, T(va[i]), T(vb[i]))) continue;
      got = show(g);
      want = show(w);
    }
    ++failures;
    FAIL_CHECK(info.name << "<" << kiln::dtype_name(kiln::dtype_of<T>()) << "> on " << kiln::simd_isa() << " n=" << n
                         << " i=" << i << " a=" << show(va[i]) << " b=" << show(vb[i]) << ": got " << got << ", want "
                         << want);
  }
}

template <class T> void check_all_ops(size_t n) {
  for (int o = 0; o < kiln::kNumOps; ++o) {
    Op op = static_cast<Op>(o);
    if (kiln::op_computes_in(op, kiln::dtype_of<T>())) check_op<T>(op, n);
  }
}

}  // namespace

TEST_CASE("every op matches its scalar reference on every dtype, instruction set and edge size", "[ops]") {
  kiln::test::for_each_isa([&](const std::string&) {
    for (size_t n : {1, 7, 63, 1023, 4097}) {
      check_all_ops<bool>(n);
      check_all_ops<int32_t>(n);
      check_all_ops<int64_t>(n);
      check_all_ops<float>(n);
      check_all_ops<double>(n);
    }
    check_all_ops<double>(65537);
  });
}

// round(x, d) with d one number, as written (the batch path with one power of ten), where
// the sweep above gives every element its own decimals.
template <class T> void check_round_by_literal() {
  const std::vector<T> x = test_values<T>(4097, 11);
  const Array a = make_array(x);
  for (T d : decimals_edges<T>()) {
    const Array r = kiln::eval(kiln::Expr::apply(Op::round, {a, kiln::Expr(d)}));
    REQUIRE(r.dtype() == kiln::dtype_of<T>());
    int failures = 0;
    for (size_t i = 0; i < x.size() && failures < 3; ++i) {
      const T got = r.data_as<T>()[i], want = np_round(x[i], d);
      if (!matches(got, want, false, 0)) {
        ++failures;
        FAIL_CHECK("round(" << show(x[i]) << ", " << show(d) << ") on " << kiln::simd_isa() << ": got " << show(got)
                            << ", want " << show(want));
      }
    }
  }
}

TEST_CASE("round by a literal number of decimals matches NumPy's arithmetic on every instruction set", "[ops]") {
  kiln::test::for_each_isa([&](const std::string&) {
    check_round_by_literal<int32_t>();
    check_round_by_literal<int64_t>();
    check_round_by_literal<float>();
    check_round_by_literal<double>();
  });
}

TEST_CASE("integer operands of float functions compute in float64, as NumPy", "[ops]") {
  for (int o = 0; o < kiln::kNumOps; ++o) {
    Op op = static_cast<Op>(o);
    if (kiln::op_info(op).rule != kiln::Rule::FloatMath) continue;
    check_op<int32_t>(op, 63);
    check_op<int64_t>(op, 63);
  }
}

TEST_CASE("float ops agree with xtensor's evaluation", "[ops][xtensor]") {
  auto va = test_values<double>(4097, 7), vb = test_values<double>(4097, 8);
  Array a = make_array(va), b = make_array(vb);
  xt::xarray<double> xa = xt::adapt(va, std::vector<size_t>{va.size()});
  xt::xarray<double> xb = xt::adapt(vb, std::vector<size_t>{vb.size()});
  struct Case {
    kiln::Expr expr;
    xt::xarray<double> want;
    bool approx;
  };
  std::vector<Case> cases = {
      {kiln::sqrt(a * a + b * b), xt::sqrt(xa * xa + xb * xb), false},
      {2 * a + 3 * b - 1.5, 2.0 * xa + 3.0 * xb - 1.5, false},
      {kiln::exp(a), xt::exp(xa), true},
      {kiln::log(kiln::abs(a)), xt::log(xt::abs(xa)), true},
      {kiln::sin(a) * kiln::cos(b), xt::sin(xa) * xt::cos(xb), true},
      {kiln::tanh(a), xt::tanh(xa), true},
      {kiln::arctan2(a, b), xt::atan2(xa, xb), true},
      {kiln::floor(a) - kiln::ceil(b), xt::floor(xa) - xt::ceil(xb), false},
      {kiln::where(a > b, a, b), xt::where(xa > xb, xa, xb), false},
      {kiln::fmax(a, b), xt::fmax(xa, xb), false},
      {kiln::hypot(a, b), xt::hypot(xa, xb), false},
      {kiln::cbrt(a), xt::cbrt(xa), true},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    Array r = kiln::eval(cases[k].expr);
    REQUIRE(r.dtype() == DType::Float64);
    int failures = 0;
    for (size_t i = 0; i < va.size() && failures < 3; ++i) {
      double g = r.data_as<double>()[i], w = cases[k].want(i);
      if (!matches(g, w, cases[k].approx, 8)) {
        ++failures;
        FAIL_CHECK("case " << k << " i=" << i << " a=" << show(va[i]) << " b=" << show(vb[i]) << ": got " << show(g)
                           << ", xtensor " << show(w));
      }
    }
  }
}

// A NumPy view of uint8 as bool may hold bytes other than 0 and 1; NumPy reads any nonzero
// byte as true. kiln must too: before, GCC ANDed, ORed and compared the raw bytes (2 & 1
// gave 0, sum counted 255 for a 0xFF, max returned 2). Every op, cast, reduction and
// matmul over such bytes must give what it gives over the same truths as 0 and 1, and
// every bool it returns must be a 0 or a 1.
TEST_CASE("bool operands are read as NumPy reads them: any nonzero byte true, in every op, cast, reduction and matmul",
          "[ops]") {
  // Bytes 0, 1, 2, 0x80, 0xFF in a pattern that pairs each with every other across a and b.
  auto bytes_of = [](int64_t n, int seed) {
    Array raw = Array::empty(DType::Bool, {n}), same = Array::empty(DType::Bool, {n});
    static constexpr uint8_t kinds[] = {0, 1, 2, 0x80, 0xFF, 0, 3};
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t b = kinds[(i * (seed + 2) + i / 7 + seed) % 7];
      reinterpret_cast<uint8_t*>(raw.data())[i] = b;
      reinterpret_cast<uint8_t*>(same.data())[i] = b != 0;
    }
    return std::pair{raw, same};
  };
  auto same_result = [](const Array& got, const Array& want) {
    REQUIRE(got.dtype() == want.dtype());
    REQUIRE(got.shape() == want.shape());
    const auto* g = reinterpret_cast<const uint8_t*>(got.data());
    if (got.dtype() == DType::Bool)
      CHECK(std::all_of(g, g + got.size(), [](uint8_t b) { return b <= 1; }));
    CHECK(std::memcmp(got.data(), want.data(), static_cast<size_t>(got.size()) * kiln::itemsize(got.dtype())) == 0);
  };
  kiln::test::for_each_isa([&](const std::string& isa) {
    for (int64_t n : {1, 7, 64, 1023, 4098}) {
      auto [a, a01] = bytes_of(n, 0);
      auto [b, b01] = bytes_of(n, 1);
      Array f = Array::empty(DType::Float64, {n}), k = Array::empty(DType::Int32, {n});
      for (int64_t i = 0; i < n; ++i) f.data_as<double>()[i] = 0.5 * static_cast<double>(i % 9) - 2, k.data_as<int32_t>()[i] = int32_t(i % 5) - 2;
      int ops_taking_bools = 0;
      for (int o = 0; o < kiln::kNumOps; ++o) {
        const Op op = static_cast<Op>(o);
        const auto& info = kiln::op_info(op);
        // The bools as each operand in turn, beside bools, int32s or float64s.
        std::vector<std::pair<std::vector<Array>, std::vector<Array>>> operand_sets;
        if (info.arity == 1) operand_sets.push_back({{a}, {a01}});
        if (info.arity == 2)
          for (const Array& other : {f, k})
            operand_sets.push_back({{a, b}, {a01, b01}}), operand_sets.push_back({{a, other}, {a01, other}}),
                operand_sets.push_back({{other, a}, {other, a01}});
        if (info.arity == 3) operand_sets.push_back({{a, b, a}, {a01, b01, a01}}), operand_sets.push_back({{a, f, f}, {a01, f, f}});
        for (auto& [raw, same] : operand_sets) {
          auto apply = [&](const std::vector<Array>& in) {
            return kiln::eval(in.size() == 1   ? kiln::Expr::apply(op, {in[0]})
                              : in.size() == 2 ? kiln::Expr::apply(op, {in[0], in[1]})
                                               : kiln::Expr::apply(op, {in[0], in[1], in[2]}));
          };
          Array want;
          try {
            want = apply(same);
          } catch (const kiln::Error&) {
            continue;  // an op that refuses these dtypes (say, sqrt of bools: NumPy's float16)
          }
          ++ops_taking_bools;
          INFO(info.name << " on " << isa << ", n " << n << ", operand dtypes " << kiln::dtype_name(raw[0].dtype()) << ", "
                         << kiln::dtype_name(raw.back().dtype()));
          same_result(apply(raw), want);
        }
      }
      CHECK(ops_taking_bools >= 20);
      for (const char* cast : {"bool(x)", "int32(x)", "int64(x)", "float32(x)", "float64(x)", "x + 0.5", "x * y"}) {
        INFO(cast << " on " << isa << ", n " << n);
        same_result(kiln::eval(cast, {{"x", a}, {"y", b}}), kiln::eval(cast, {{"x", a01}, {"y", b01}}));
      }
      // Every reduction: whole, and along each axis of 2 rows, n rows of 1 and 1 row of n.
      for (int r = 0; r < kiln::kNumReductions; ++r) {
        const std::string name = kiln::reduction_info(static_cast<kiln::Reduction>(r)).name;
        std::vector<std::pair<std::string, kiln::Shape>> cases = {{name + "(x)", {n}}};
        for (const kiln::Shape& s : {kiln::Shape{1, n}, kiln::Shape{n, 1}})
          for (const char* axis : {", axis=0)", ", axis=1)"}) cases.push_back({name + "(x" + axis, s});
        if (n % 2 == 0)
          for (const char* axis : {", axis=0)", ", axis=1)"}) cases.push_back({name + "(x" + axis, kiln::Shape{2, n / 2}});
        for (const auto& [expr, shape] : cases) {
          INFO(expr << " over shape (" << shape[0] << (shape.size() > 1 ? ", " + std::to_string(shape[1]) : "") << ") on "
                    << isa);
          same_result(kiln::eval(expr, {{"x", a.reshape(shape)}}), kiln::eval(expr, {{"x", a01.reshape(shape)}}));
        }
      }
      if (n % 2 == 0) {  // or of ands, by the matmul's own loop
        INFO("matmul of bools on " << isa << ", n " << n);
        same_result(kiln::eval("x @ y", {{"x", a.reshape({2, n / 2})}, {"y", b.reshape({n / 2, 2})}}),
                    kiln::eval("x @ y", {{"x", a01.reshape({2, n / 2})}, {"y", b01.reshape({n / 2, 2})}}));
      }
    }
  });
}
