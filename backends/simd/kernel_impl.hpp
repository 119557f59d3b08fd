// The kernels themselves, written once and compiled once per instruction set: the file
// that includes this defines KILN_SIMD_NAME (the set's name: kernels_<name>() is its
// table), KILN_SIMD_NS (a namespace private to that set, so that no inline function
// compiled with, say, AVX-512 flags can be picked by the linker for another set) and
// KILN_SIMD_ARCH (the xsimd architecture).
//
// Each op is a small struct: `scalar` gives NumPy's semantics for one element; float ops
// may add `batch`, the same on an xsimd batch. One loop template runs either: batches
// over the bulk, `scalar` over the tail. Integer and bool loops are plain loops that the
// compiler vectorises under this file's flags. Signed integer arithmetic wraps like
// NumPy's (done in unsigned, so it is defined behaviour).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numbers>
#include <span>
#include <tuple>
#include <utility>
#include <type_traits>

// xsimd's large-argument trigonometric reduction is a plain inline function: renamed
// per instruction set, or the linker would keep one copy (possibly AVX-512 code) for all.
// tests/check_isa_symbols.sh fails the build's tests if any such shared symbol appears.
#define KILN_PASTE2(a, b) a##_##b
#define KILN_STRINGIFY2(a) #a
#define KILN_STRINGIFY(a) KILN_STRINGIFY2(a)
#define KILN_SIMD_NAME_STRING KILN_STRINGIFY(KILN_SIMD_NAME)
#define KILN_PASTE(a, b) KILN_PASTE2(a, b)
#define __kernel_rem_pio2 KILN_PASTE(__kernel_rem_pio2, KILN_SIMD_NS)
#define __ieee754_rem_pio2 KILN_PASTE(__ieee754_rem_pio2, KILN_SIMD_NS)
#include <xsimd/xsimd.hpp>
#undef __kernel_rem_pio2
#undef __ieee754_rem_pio2

#include "kernels.hpp"

namespace kiln::simd::KILN_SIMD_NS {

using Arch = KILN_SIMD_ARCH;
template <class T> using Batch = xsimd::batch<T, Arch>;

// The value as computed, rounded: the empty asm hides where it came from, so the
// compiler cannot contract a*b + c into a fused multiply-add (one rounding) as it may
// elsewhere (GCC's default -ffp-contract=fast keeps xsimd's math functions fast).
template <class T> inline T rounded(T v) {
  if constexpr (std::is_arithmetic_v<T>) asm("" : "+v"(v));
  else asm("" : "+v"(v.data));
  return v;
}

template <class T> constexpr bool kIsBool = std::is_same_v<T, bool>;
template <class T> constexpr bool kIsInt = std::is_integral_v<T> && !kIsBool<T>;
template <class T> constexpr bool kIsFloat = std::is_floating_point_v<T>;

// Item i of x. A bool is read from its byte, any nonzero byte true, as NumPy reads them:
// a NumPy view of uint8 as bool may hold bytes other than 0 and 1, which C++ may not
// read as bool (GCC then ANDs, ORs and compares the raw bytes: 2 & 1 gave 0).
template <class T> inline T item(const T* x, int64_t i) {
  if constexpr (kIsBool<T>) return reinterpret_cast<const uint8_t*>(x)[i] != 0;
  else return x[i];
}

template <class T> using Unsigned = std::make_unsigned_t<T>;
template <class T> inline T wrap_add(T a, T b) { return T(Unsigned<T>(a) + Unsigned<T>(b)); }
template <class T> inline T wrap_sub(T a, T b) { return T(Unsigned<T>(a) - Unsigned<T>(b)); }
template <class T> inline T wrap_mul(T a, T b) { return T(Unsigned<T>(a) * Unsigned<T>(b)); }
template <class T> inline T wrap_neg(T a) { return T(Unsigned<T>(0) - Unsigned<T>(a)); }

// Python/NumPy floor division and remainder (npy_divmod): the remainder takes the
// divisor's sign; floats divided by zero give a/b and NaN.
template <class T> inline T floor_div(T a, T b) {
  if constexpr (kIsInt<T>) {
    if (b == 0) return 0;
    if (b == -1) return wrap_neg(a);  // INT_MIN // -1 wraps, as NumPy
    T q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? T(q - 1) : q;
  } else {
    if (b == 0) return a / b;
    T mod = std::fmod(a, b);
    T div = (a - mod) / b;
    if (mod != 0) {
      if ((b < 0) != (mod < 0)) div -= T(1);
    }
    if (div == 0) return std::copysign(T(0), a / b);
    T fl = std::floor(div);
    return div - fl > T(0.5) ? fl + T(1) : fl;
  }
}
template <class T> inline T remainder_of(T a, T b) {
  if constexpr (kIsInt<T>) {
    if (b == 0 || b == -1) return 0;
    T r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? T(r + b) : r;
  } else {
    T mod = std::fmod(a, b);
    if (b == 0) return mod;
    if (mod != 0) {
      if ((b < 0) != (mod < 0)) mod += b;
    } else {
      mod = std::copysign(T(0), b);
    }
    return mod;
  }
}
// Integers to negative powers: NumPy raises; kiln cannot raise per element, so it gives
// the truncated result (1 for base 1, +-1 for base -1, else 0).
template <class T> inline T int_power(T base, T exp) {
  if (exp < 0) return base == 1 ? T(1) : base == -1 ? ((exp & 1) ? T(-1) : T(1)) : T(0);
  T result = 1;
  while (exp) {
    if (exp & 1) result = wrap_mul(result, base);
    base = wrap_mul(base, base);
    exp >>= 1;
  }
  return result;
}

#define KILN_SCALAR1(expr) \
  template <class T> static auto scalar(T a) { return expr; }
#define KILN_BATCH1(expr) \
  template <class V> static V batch(V a) { return expr; }
#define KILN_SCALAR2(expr) \
  template <class T> static auto scalar(T a, T b) { return expr; }
#define KILN_BATCH2(expr) \
  template <class V> static V batch(V a, V b) { return expr; }
// Float math with a libm scalar and an xsimd batch of the same name.
#define KILN_MATH1(fn) KILN_SCALAR1(std::fn(a)) KILN_BATCH1(xsimd::fn(a))
// The same, with the batch from libmvec where prefer_mvec says so (fn: libm's name).
// libmvec is right over the whole domain (it sends special lanes to libm itself), so
// from_mvec also switches off the batch_safe check below.
#define KILN_MATH1_MVEC(op, fn)                                                      \
  KILN_SCALAR1(std::fn(a))                                                           \
  template <class T> static constexpr bool from_mvec = prefer_mvec<T>(op);           \
  template <class V> static V batch(V a) {                                           \
    if constexpr (prefer_mvec<typename V::value_type>(op)) return mvec_##fn(a);      \
    else return xsimd::fn(a);                                                        \
  }
// Where xsimd's batch version is only right for part of the domain, `batch_safe` (given
// every operand) says which lanes are inside it; a batch with any lane outside is computed
// by `scalar`.
// xsimd's log and cbrt treat subnormal inputs as zero; its exp family overflows a little
// early and flushes subnormal results to zero (limits: float64, then float32).
#define KILN_SAFE_NORMAL                                                            \
  template <class V> static auto batch_safe(V a) {                                  \
    using T = typename V::value_type;                                               \
    return (xsimd::abs(a) >= V(std::numeric_limits<T>::min())) | (a == V(0));       \
  }
#define KILN_SAFE_BETWEEN(lo64, hi64, lo32, hi32)                                   \
  template <class V> static auto batch_safe(V a) {                                  \
    constexpr bool wide = sizeof(typename V::value_type) == 8;                      \
    return (a > V(wide ? lo64 : lo32)) & (a < V(wide ? hi64 : hi32));               \
  }

// glibc's vector math library (libmvec, at most 4 ulp) against xsimd, by function, dtype
// and instruction set: where libmvec measured more than 1.1x faster per element (8192
// arguments in each function's usual range, this file's flags, best of 300), the batch
// path calls it. AVX-512 (Zen 5 EPYC): xsimd keeps sin, cos and exp. log is the exception
// to that rule, measured over whole arrays instead (kiln-ab, 1 thread), where xsimd's also
// pays its domain check: libmvec took float64 0.96-0.98x the time at 10^6 (0.97 at 10^4),
// float32 0.78-0.79x (0.87), so it moved; libmvec's exp took 1.12-1.49x xsimd's there, cos
// 1.07-1.19x and float64 sin 1.03-1.06x, so they stayed. AVX2, measured
// again on a Zen 3 EPYC (AVX2 only: where this table runs by default): libmvec is faster
// for all of float64 but arcsin and arctan (1.3-3.6x: sin and cos 2.2x on (-3.2, 3.2),
// exp 2.2x, log1p 2.2x) and float32 but expm1, the inverse hyperbolics, arcsin and tanh
// (1.1-2.4x: sin and cos 2.0x); float64 arctan and float32 tanh tie there and keep
// libmvec, which won on the Zen 5 under AVX2 flags. float32 exp and exp2 moved to libmvec
// once its calls stopped paying the domain check xsimd's need (kiln-ab on the Zen 3, 10^6
// elements: exp 0.91x the time, exp2 0.84x; expm1 stays, 1.04-1.2x slower from libmvec).
// SSE2 keeps xsimd (not measured).
// Entry points follow the x86-64 vector function ABI (d = AVX2, e = AVX-512); each set's
// file declares only its own, as a wider vector type would change the calling convention.
#define KILN_MVEC_FUNCTIONS(X) \
  X(sin) X(cos) X(tan) X(exp) X(exp2) X(expm1) X(log) X(log2) X(log10) X(log1p) X(sinh) X(cosh) X(tanh) X(asin) \
  X(acos) X(atan) X(asinh) X(acosh) X(atanh) X(cbrt)
#if defined(__AVX512F__)
#define KILN_MVEC_F64(fn) _ZGVeN8v_##fn
#define KILN_MVEC_F32(fn) _ZGVeN16v_##fn##f
constexpr Op kMvec64[] = {Op::log,    Op::expm1,  Op::log2,    Op::log10,   Op::log1p,
                          Op::cosh,   Op::arccos, Op::arcsinh, Op::arctanh, Op::cbrt};
constexpr Op kMvec32[] = {Op::sin,  Op::log,     Op::expm1,   Op::log2, Op::log10,
                          Op::cosh, Op::arcsinh, Op::arctanh, Op::cbrt};
#elif defined(__AVX2__)
#define KILN_MVEC_F64(fn) _ZGVdN4v_##fn
#define KILN_MVEC_F32(fn) _ZGVdN8v_##fn##f
constexpr Op kMvec64[] = {Op::sin,     Op::cos,   Op::tan,    Op::exp,     Op::exp2,    Op::expm1,
                          Op::log,     Op::log2,  Op::log10,  Op::log1p,   Op::sinh,    Op::cosh,
                          Op::tanh,    Op::arccos, Op::arctan, Op::arcsinh, Op::arccosh, Op::arctanh, Op::cbrt};
constexpr Op kMvec32[] = {Op::sin,  Op::cos,  Op::tan,  Op::exp,  Op::exp2,   Op::log,    Op::log2, Op::log10,
                          Op::log1p, Op::sinh, Op::cosh, Op::tanh, Op::arccos, Op::arctan, Op::cbrt};
#endif
#if defined(KILN_MVEC_F64)
// The register types of this set's batches: __m512d/__m512 or __m256d/__m256.
#define KILN_MVEC_DECLARE(fn)                                                                                    \
  extern "C" Batch<double>::register_type KILN_MVEC_F64(fn)(Batch<double>::register_type);                      \
  extern "C" Batch<float>::register_type KILN_MVEC_F32(fn)(Batch<float>::register_type);                        \
  inline Batch<double> mvec_##fn(Batch<double> a) { return KILN_MVEC_F64(fn)(a); }                                \
  inline Batch<float> mvec_##fn(Batch<float> a) { return KILN_MVEC_F32(fn)(a); }
#else
#define KILN_MVEC_DECLARE(fn) \
  template <class V> V mvec_##fn(V a) { return xsimd::fn(a); }
constexpr std::span<const Op> kMvec64, kMvec32;  // none
#endif
KILN_MVEC_FUNCTIONS(KILN_MVEC_DECLARE)
#undef KILN_MVEC_DECLARE
#undef KILN_MVEC_FUNCTIONS
#undef KILN_MVEC_F64
#undef KILN_MVEC_F32

// Two-argument functions from libmvec (glibc 2.35 added atan2; pow since 2.22): libm's
// scalar atan2 took 20 ns an element (float64), 13 (float32), pow 10 and 4; NumPy's SIMD
// loops 2.6 and 0.6, 1.9 and 0.6. libmvec sends lanes with special arguments (zeros,
// infinities, NaN, negative bases) to the scalar function, so those keep libm's values.
#if defined(__AVX512F__)
#define KILN_MVEC2_F64(fn) _ZGVeN8vv_##fn
#define KILN_MVEC2_F32(fn) _ZGVeN16vv_##fn##f
#elif defined(__AVX2__)
#define KILN_MVEC2_F64(fn) _ZGVdN4vv_##fn
#define KILN_MVEC2_F32(fn) _ZGVdN8vv_##fn##f
#endif
#if defined(KILN_MVEC2_F64)
#define KILN_MVEC2_DECLARE(fn)                                                                                   \
  extern "C" Batch<double>::register_type KILN_MVEC2_F64(fn)(Batch<double>::register_type,                     \
                                                             Batch<double>::register_type);                    \
  extern "C" Batch<float>::register_type KILN_MVEC2_F32(fn)(Batch<float>::register_type,                       \
                                                            Batch<float>::register_type);                      \
  inline Batch<double> mvec_##fn(Batch<double> a, Batch<double> b) { return KILN_MVEC2_F64(fn)(a, b); }         \
  inline Batch<float> mvec_##fn(Batch<float> a, Batch<float> b) { return KILN_MVEC2_F32(fn)(a, b); }
KILN_MVEC2_DECLARE(atan2)
KILN_MVEC2_DECLARE(pow)
#undef KILN_MVEC2_DECLARE
#define KILN_MVEC2_BATCH(fn) \
  template <class V> static V batch(V a, V b) { return mvec_##fn(a, b); }
#else
#define KILN_MVEC2_BATCH(fn)  // SSE2: libm, an element at a time
#endif
#undef KILN_MVEC2_F64
#undef KILN_MVEC2_F32

template <class T> constexpr bool prefer_mvec(Op op) {
  std::span<const Op> ops = sizeof(T) == 8 ? std::span<const Op>(kMvec64) : std::span<const Op>(kMvec32);
  return std::find(ops.begin(), ops.end(), op) != ops.end();
}

template <Op> struct Impl;

template <> struct Impl<Op::add> {
  template <class T> static T scalar(T a, T b) {
    if constexpr (kIsBool<T>) return a || b;
    else if constexpr (kIsInt<T>) return wrap_add(a, b);
    else return a + b;
  }
  KILN_BATCH2(a + b)
};
template <> struct Impl<Op::subtract> {
  template <class T> static T scalar(T a, T b) {
    if constexpr (kIsInt<T>) return wrap_sub(a, b);
    else return a - b;
  }
  KILN_BATCH2(a - b)
};
template <> struct Impl<Op::multiply> {
  template <class T> static T scalar(T a, T b) {
    if constexpr (kIsBool<T>) return a && b;
    else if constexpr (kIsInt<T>) return wrap_mul(a, b);
    else return a * b;
  }
  KILN_BATCH2(a * b)
};
template <> struct Impl<Op::divide> {
  KILN_SCALAR2(a / b)
  KILN_BATCH2(a / b)
};
template <> struct Impl<Op::floor_divide> { KILN_SCALAR2(floor_div(a, b)) };
template <> struct Impl<Op::remainder> { KILN_SCALAR2(remainder_of(a, b)) };
template <> struct Impl<Op::power> {
  template <class T> static T scalar(T a, T b) {
    if constexpr (kIsInt<T>) return int_power(a, b);
    else return std::pow(a, b);
  }
  KILN_MVEC2_BATCH(pow)
};
template <> struct Impl<Op::negative> {
  template <class T> static T scalar(T a) {
    if constexpr (kIsInt<T>) return wrap_neg(a);
    else return -a;
  }
  KILN_BATCH1(xsimd::bitwise_xor(a, V(-0.0)))  // flips the sign bit: -(0.0) is -0.0
};
template <> struct Impl<Op::invert> {
  template <class T> static T scalar(T a) {
    if constexpr (kIsBool<T>) return !a;
    else return T(~a);
  }
};
template <> struct Impl<Op::bitwise_and> { KILN_SCALAR2(T(a & b)) };
template <> struct Impl<Op::bitwise_or> { KILN_SCALAR2(T(a | b)) };
template <> struct Impl<Op::bitwise_xor> { KILN_SCALAR2(T(a ^ b)) };
// NumPy's shifts: a shift by the width or more (or by a negative amount) gives 0, or -1 for
// a negative number shifted right; left shifts wrap.
template <> struct Impl<Op::left_shift> {
  KILN_SCALAR2(Unsigned<T>(b) < sizeof(T) * 8 ? T(Unsigned<T>(a) << b) : T(0))
};
template <> struct Impl<Op::right_shift> {
  KILN_SCALAR2(Unsigned<T>(b) < sizeof(T) * 8 ? T(a >> b) : T(a < 0 ? -1 : 0))
};
// Comparisons; `compare` is the same on batches, a batch_bool (false for NaN but in !=;
// xsimd's != is false for NaN too, so it is taken as not ==).
#define KILN_COMPARE(expr, batch_expr) \
  KILN_SCALAR2(bool(expr))             \
  template <class V> static auto compare(V a, V b) { return batch_expr; }
template <> struct Impl<Op::less> { KILN_COMPARE(a < b, a < b) };
template <> struct Impl<Op::less_equal> { KILN_COMPARE(a <= b, a <= b) };
template <> struct Impl<Op::greater> { KILN_COMPARE(a > b, a > b) };
template <> struct Impl<Op::greater_equal> { KILN_COMPARE(a >= b, a >= b) };
template <> struct Impl<Op::equal> { KILN_COMPARE(a == b, a == b) };
template <> struct Impl<Op::not_equal> { KILN_COMPARE(a != b, !(a == b)) };
#undef KILN_COMPARE
// NumPy's logical ops: a nonzero operand (NaN too) is true. `&`, not `&&`: no branch.
template <> struct Impl<Op::logical_and> { KILN_SCALAR2(bool((a != T(0)) & (b != T(0)))) };
template <> struct Impl<Op::logical_or> { KILN_SCALAR2(bool((a != T(0)) | (b != T(0)))) };
template <> struct Impl<Op::logical_xor> { KILN_SCALAR2(bool((a != T(0)) != (b != T(0)))) };
template <> struct Impl<Op::logical_not> {
  template <class T> static bool scalar(T a) { return a == T(0); }
};
template <> struct Impl<Op::abs> {
  template <class T> static T scalar(T a) {
    if constexpr (kIsBool<T>) return a;
    else if constexpr (kIsInt<T>) return a < 0 ? wrap_neg(a) : a;
    else return std::fabs(a);
  }
  KILN_BATCH1(xsimd::abs(a))
};
template <> struct Impl<Op::sqrt> { KILN_MATH1(sqrt) };
template <> struct Impl<Op::cbrt> { KILN_MATH1_MVEC(Op::cbrt, cbrt) KILN_SAFE_NORMAL };
template <> struct Impl<Op::square> {
  template <class T> static T scalar(T a) {
    if constexpr (kIsInt<T>) return wrap_mul(a, a);
    else return a * a;
  }
  KILN_BATCH1(a * a)
};
template <> struct Impl<Op::reciprocal> {
  // Integer reciprocal truncates; 1/0 gives the most negative value, as NumPy on x86.
  template <class T> static T scalar(T a) {
    if constexpr (kIsInt<T>) return a == 0 ? std::numeric_limits<T>::min() : (a == 1 || a == -1) ? a : T(0);
    else return T(1) / a;
  }
  KILN_BATCH1(V(1) / a)
};
template <> struct Impl<Op::exp> { KILN_MATH1_MVEC(Op::exp, exp) KILN_SAFE_BETWEEN(-708, 709, -87, 88) };
template <> struct Impl<Op::exp2> { KILN_MATH1_MVEC(Op::exp2, exp2) KILN_SAFE_BETWEEN(-1022, 1023, -126, 127) };
template <> struct Impl<Op::expm1> { KILN_MATH1_MVEC(Op::expm1, expm1) KILN_SAFE_BETWEEN(-700, 709, -80, 88) };
template <> struct Impl<Op::log> { KILN_MATH1_MVEC(Op::log, log) KILN_SAFE_NORMAL };
template <> struct Impl<Op::log2> { KILN_MATH1_MVEC(Op::log2, log2) KILN_SAFE_NORMAL };
template <> struct Impl<Op::log10> { KILN_MATH1_MVEC(Op::log10, log10) KILN_SAFE_NORMAL };
template <> struct Impl<Op::log1p> { KILN_MATH1_MVEC(Op::log1p, log1p) };
template <> struct Impl<Op::sin> { KILN_MATH1_MVEC(Op::sin, sin) };
template <> struct Impl<Op::cos> { KILN_MATH1_MVEC(Op::cos, cos) };
template <> struct Impl<Op::tan> { KILN_MATH1_MVEC(Op::tan, tan) };
template <> struct Impl<Op::arcsin> { KILN_MATH1_MVEC(Op::arcsin, asin) };
template <> struct Impl<Op::arccos> { KILN_MATH1_MVEC(Op::arccos, acos) };
template <> struct Impl<Op::arctan> { KILN_MATH1_MVEC(Op::arctan, atan) };
// xsimd's atan2 gets the signed-zero and infinite quadrants wrong: libmvec's or libm's.
template <> struct Impl<Op::arctan2> { KILN_SCALAR2(std::atan2(a, b)) KILN_MVEC2_BATCH(atan2) };
template <> struct Impl<Op::sinh> { KILN_MATH1_MVEC(Op::sinh, sinh) KILN_SAFE_BETWEEN(-709, 709, -88, 88) };
template <> struct Impl<Op::cosh> { KILN_MATH1_MVEC(Op::cosh, cosh) KILN_SAFE_BETWEEN(-709, 709, -88, 88) };
template <> struct Impl<Op::tanh> { KILN_MATH1_MVEC(Op::tanh, tanh) };
template <> struct Impl<Op::arcsinh> { KILN_MATH1_MVEC(Op::arcsinh, asinh) };
// xsimd's acosh misses the domain error for large negative inputs.
template <> struct Impl<Op::arccosh> {
  KILN_SCALAR1(std::acosh(a))
  template <class V> static V batch(V a) {
    using T = typename V::value_type;
    return xsimd::select(a < V(1), V(std::numeric_limits<T>::quiet_NaN()),
                         prefer_mvec<T>(Op::arccosh) ? mvec_acosh(a) : xsimd::acosh(a));
  }
};
template <> struct Impl<Op::arctanh> { KILN_MATH1_MVEC(Op::arctanh, atanh) };
// xsimd's SSE2 rounding goes through integers and loses the sign of -0.0; the result
// always has the operand's sign, so copysign restores it.
template <> struct Impl<Op::floor> { KILN_SCALAR1(std::floor(a)) KILN_BATCH1(xsimd::copysign(xsimd::floor(a), a)) };
template <> struct Impl<Op::ceil> { KILN_SCALAR1(std::ceil(a)) KILN_BATCH1(xsimd::copysign(xsimd::ceil(a), a)) };
template <> struct Impl<Op::trunc> { KILN_SCALAR1(std::trunc(a)) KILN_BATCH1(xsimd::copysign(xsimd::trunc(a), a)) };
// To the nearest integer, halves to even (the default rounding mode's); -0.4 gives -0.0.
template <> struct Impl<Op::rint> {
  KILN_SCALAR1(std::nearbyint(a)) KILN_BATCH1(xsimd::copysign(xsimd::nearbyint(a), a))
};
// C's fmod, as NumPy: the remainder with the dividend's sign, exact (a - trunc(a / b) * b
// is not), NaN where b is 0. Integers: 0 where b is 0 (NumPy warns) or -1 (the smallest
// integer % -1 overflows).
template <> struct Impl<Op::fmod> {
  template <class T> static T scalar(T a, T b) {
    if constexpr (kIsInt<T>) return b == 0 || b == -1 ? T(0) : T(a % b);
    else return std::fmod(a, b);
  }
};
template <> struct Impl<Op::sign> {
  // NaN stays NaN; -0.0 gives +0.0 (NumPy).
  template <class T> static T scalar(T a) {
    if constexpr (kIsInt<T>) return T((a > 0) - (a < 0));
    else return a > 0 ? T(1) : a < 0 ? T(-1) : a == 0 ? T(0) : a;
  }
};
template <> struct Impl<Op::copysign> { KILN_SCALAR2(std::copysign(a, b)) KILN_BATCH2(xsimd::copysign(a, b)) };
template <> struct Impl<Op::hypot> { KILN_SCALAR2(std::hypot(a, b)) };
// xsimd's != is an ordered compare (false for NaN), so NaN tests use xsimd::isnan.
// minimum/maximum propagate NaN; when a and b compare equal (0.0 and -0.0) the second is
// returned, matching NumPy's vectorised loops.
template <> struct Impl<Op::minimum> {
  template <class T> static T scalar(T a, T b) {
    if constexpr (kIsFloat<T>) if (std::isnan(a)) return a;
    return a < b ? a : b;
  }
  KILN_BATCH2(xsimd::select(xsimd::isnan(a), a, xsimd::select(a < b, a, b)))
};
template <> struct Impl<Op::maximum> {
  template <class T> static T scalar(T a, T b) {
    if constexpr (kIsFloat<T>) if (std::isnan(a)) return a;
    return a > b ? a : b;
  }
  KILN_BATCH2(xsimd::select(xsimd::isnan(a), a, xsimd::select(a > b, a, b)))
};
// fmin/fmax ignore a NaN operand.
template <> struct Impl<Op::fmin> {
  template <class T> static T scalar(T a, T b) {
    if constexpr (kIsFloat<T>) {
      if (std::isnan(b)) return a;
      if (std::isnan(a)) return b;
    }
    return a < b ? a : b;
  }
  KILN_BATCH2(xsimd::select(xsimd::isnan(b), a, xsimd::select(xsimd::isnan(a), b, xsimd::select(a < b, a, b))))
};
template <> struct Impl<Op::fmax> {
  template <class T> static T scalar(T a, T b) {
    if constexpr (kIsFloat<T>) {
      if (std::isnan(b)) return a;
      if (std::isnan(a)) return b;
    }
    return a > b ? a : b;
  }
  KILN_BATCH2(xsimd::select(xsimd::isnan(b), a, xsimd::select(xsimd::isnan(a), b, xsimd::select(a > b, a, b))))
};
template <> struct Impl<Op::isnan> {
  template <class T> static bool scalar(T a) {
    if constexpr (kIsFloat<T>) return std::isnan(a);
    else return (void)a, false;
  }
};
template <> struct Impl<Op::isinf> {
  template <class T> static bool scalar(T a) {
    if constexpr (kIsFloat<T>) return std::isinf(a);
    else return (void)a, false;
  }
};
template <> struct Impl<Op::isfinite> {
  template <class T> static bool scalar(T a) {
    if constexpr (kIsFloat<T>) return std::isfinite(a);
    else return (void)a, true;
  }
};
// Branch-free: a data-dependent branch per element mispredicts on real masks. Integers
// blend with a mask the compiler vectorises; floats take the batch path in run().
template <> struct Impl<Op::where> {
  template <class T> static T scalar(bool c, T x, T y) {
    if constexpr (kIsInt<T>) {
      Unsigned<T> m = Unsigned<T>(0) - Unsigned<T>(c);
      return T((Unsigned<T>(x) & m) | (Unsigned<T>(y) & ~m));
    } else {
      return c ? x : y;
    }
  }
};
// clip(x, lo, hi) = minimum(maximum(x, lo), hi), NaN-propagating like NumPy 1.24.
template <> struct Impl<Op::clip> {
  template <class T> static T scalar(T x, T lo, T hi) {
    return Impl<Op::minimum>::scalar(Impl<Op::maximum>::scalar(x, lo), hi);
  }
  template <class V> static V batch(V x, V lo, V hi) {
    return Impl<Op::minimum>::batch(Impl<Op::maximum>::batch(x, lo), hi);
  }
};
template <> struct Impl<Op::relu> {
  template <class T> static T scalar(T a) { return Impl<Op::maximum>::scalar(a, T(0)); }
  KILN_BATCH1(Impl<Op::maximum>::batch(a, V(0)))
};
template <> struct Impl<Op::sigmoid> {
  KILN_SCALAR1(T(1) / (T(1) + std::exp(-a)))
  template <class T> static constexpr bool from_mvec = Impl<Op::exp>::from_mvec<T>;
  KILN_BATCH1(V(1) / (V(1) + Impl<Op::exp>::batch(-a)))
  KILN_SAFE_BETWEEN(-708, 709, -87, 88)
};
// log(e^a + e^b) and log2(2^a + 2^b), NumPy's way: the larger plus log1p(e^-|a - b|)
// (in log2's units); exactly a + ln 2 (a + 1) where a == b, equal infinities too; NaN where
// a - b is. The batch takes the lanes whose e^-|a - b| is a normal number; the scalar function
// the others (NaN, infinities, subnormal terms, which the batch exp flushes to zero).
template <bool Base2> struct LogAddExp {
  template <class T> static T scalar(T a, T b) {
    if (a == b) return a + (Base2 ? T(1) : std::numbers::ln2_v<T>);
    const T d = a - b;
    if (d > 0) return a + term(-d);
    if (d <= 0) return b + term(d);
    return d;
  }
  template <class V> static V batch(V a, V b) {
    using T = typename V::value_type;
    const V e = -xsimd::abs(a - b);
    const V sum = Base2 ? Impl<Op::log1p>::batch(Impl<Op::exp2>::batch(e)) * V(std::numbers::log2e_v<T>)
                        : Impl<Op::log1p>::batch(Impl<Op::exp>::batch(e));
    return xsimd::select(a == b, a + V(Base2 ? T(1) : std::numbers::ln2_v<T>), xsimd::max(a, b) + sum);
  }
  template <class V> static auto batch_safe(V a, V b) {
    using T = typename V::value_type;
    constexpr T limit = sizeof(T) == 8 ? (Base2 ? 1000 : 700) : (Base2 ? 120 : 85);
    return xsimd::abs(a - b) < V(limit);
  }

 private:
  template <class T> static T term(T e) {  // e <= 0
    if constexpr (Base2) return std::log1p(std::exp2(e)) * std::numbers::log2e_v<T>;
    else return std::log1p(std::exp(e));
  }
};
template <> struct Impl<Op::logaddexp> : LogAddExp<false> {};
template <> struct Impl<Op::logaddexp2> : LogAddExp<true> {};
// NumPy's heaviside(x, h0): 0 below zero, h0 at zero, 1 above, a positive NaN for NaN.
template <> struct Impl<Op::heaviside> {
  template <class T> static T scalar(T x, T h0) {
    return std::isnan(x) ? std::numeric_limits<T>::quiet_NaN() : x == 0 ? h0 : x < 0 ? T(0) : T(1);
  }
  template <class V> static V batch(V a, V b) {
    const V nan(std::numeric_limits<typename V::value_type>::quiet_NaN());
    return xsimd::select(a < V(0), V(0), xsimd::select(a > V(0), V(1), xsimd::select(a == V(0), b, nan)));
  }
};
// NaN to 0, infinities to the largest finite values (NumPy's defaults); integers as they are.
template <> struct Impl<Op::nan_to_num> {
  template <class T> static T scalar(T a) {
    if constexpr (kIsFloat<T>) {
      using L = std::numeric_limits<T>;
      return std::isnan(a) ? T(0) : a > L::max() ? L::max() : a < L::lowest() ? L::lowest() : a;
    } else {
      return a;
    }
  }
  template <class V> static V batch(V a) {
    using L = std::numeric_limits<typename V::value_type>;
    return xsimd::select(xsimd::isnan(a), V(0), xsimd::min(xsimd::max(a, V(L::lowest())), V(L::max())));
  }
};
template <> struct Impl<Op::fabs> { KILN_SCALAR1(std::fabs(a)) KILN_BATCH1(xsimd::abs(a)) };
template <> struct Impl<Op::signbit> {
  template <class T> static bool scalar(T a) {
    if constexpr (kIsFloat<T>) return std::signbit(a);
    else if constexpr (kIsInt<T>) return a < 0;
    else return (void)a, false;
  }
};
// 10^k as NumPy's round takes it (k >= 0 whole): 1 multiplied by 10 k times in float64
// (from 10^23 not always the nearest double to 10^k), inf from k = 309 or for NaN; as T.
inline constexpr std::array<double, 309> kPowersOfTen = [] {
  std::array<double, 309> t{};
  t[0] = 1;
  for (size_t i = 1; i < t.size(); ++i) t[i] = t[i - 1] * 10;
  return t;
}();
template <class T> T power_of_ten(double k) {
  return k < 309 ? static_cast<T>(kPowersOfTen[static_cast<int>(k)]) : std::numeric_limits<T>::infinity();
}
// NumPy's round(x, decimals) (around): x * 10^d rounded to a whole number, halves to even,
// then divided back (d < 0: x / 10^-d, rounded, multiplied back), NumPy's own arithmetic,
// so the same bits (2.675 to 2 decimals is 2.67: 267.49999...). decimals is taken as a
// whole number (truncated). float32 with 10^|d| beyond float32 multiplies and divides in
// float64, as NumPy's value-based casting does, rounding to float32 between the steps.
// Integers: as they are for d >= 0; for d < 0 through float64, the smallest integer where
// the result does not fit (x86's conversion: NumPy's).
template <> struct Impl<Op::round> {
  template <class T> static T scalar(T x, T decimals) {
    const double k = std::trunc(static_cast<double>(decimals));
    if constexpr (kIsInt<T>) {
      if (k >= 0) return x;
      const double p = power_of_ten<double>(-k), r = std::nearbyint(static_cast<double>(x) / p) * p;
      constexpr double kLimit = -static_cast<double>(std::numeric_limits<T>::min());
      return r >= -kLimit && r < kLimit ? static_cast<T>(r) : std::numeric_limits<T>::min();
    } else {
      if (k == 0) return std::nearbyint(x);
      if constexpr (sizeof(T) == 4) {
        if (!(std::fabs(k) < 39)) {  // NumPy: each step in float64, stored back in float32
          const double p = power_of_ten<double>(std::fabs(k)), v = x;
          const T y = std::nearbyint(static_cast<T>(k > 0 ? v * p : v / p));
          return static_cast<T>(k > 0 ? y / p : y * p);
        }
      }
      const T p = power_of_ten<T>(std::fabs(k));
      return k > 0 ? std::nearbyint(x * p) / p : std::nearbyint(x / p) * p;
    }
  }
  // Decimals are nearly always one literal: the same in every lane, one power of ten.
  template <class V> static V batch(V x, V decimals) {
    using T = typename V::value_type;
    alignas(64) T lanes[V::size];
    decimals.store_aligned(lanes);
    const T k = std::trunc(lanes[0]);
    if (!xsimd::all(decimals == V(lanes[0])) || !(std::fabs(k) < (sizeof(T) == 8 ? 309 : 39))) {
      alignas(64) T xs[V::size];
      x.store_aligned(xs);
      for (size_t i = 0; i < V::size; ++i) xs[i] = scalar(xs[i], lanes[i]);
      return V::load_aligned(xs);
    }
    auto rint = [](V y) { return xsimd::copysign(xsimd::nearbyint(y), y); };
    if (k == 0) return rint(x);
    const V p(power_of_ten<T>(std::fabs(k)));
    return k > 0 ? rint(x * p) / p : rint(x / p) * p;
  }
};
// NumPy's constants: pi / 180 and 180 / pi worked out in the operand's own type.
template <> struct Impl<Op::deg2rad> {
  KILN_SCALAR1(a * (std::numbers::pi_v<T> / T(180)))
  template <class V> static V batch(V a) {
    using T = typename V::value_type;
    return a * V(std::numbers::pi_v<T> / T(180));
  }
};
template <> struct Impl<Op::rad2deg> {
  KILN_SCALAR1(a * (T(180) / std::numbers::pi_v<T>))
  template <class V> static V batch(V a) {
    using T = typename V::value_type;
    return a * V(T(180) / std::numbers::pi_v<T>);
  }
};

#undef KILN_SCALAR1
#undef KILN_BATCH1
#undef KILN_SCALAR2
#undef KILN_BATCH2
#undef KILN_MATH1
#undef KILN_MATH1_MVEC
#undef KILN_SAFE_NORMAL
#undef KILN_SAFE_BETWEEN

// Each byte of w that is not zero made 1, the others 0: its "not zero" goes to its high
// bit (no carry crosses into the next byte), then down to the low one.
inline uint64_t nonzero_bytes(uint64_t w) {
  constexpr uint64_t low7 = 0x7F7F7F7F7F7F7F7Full, high = 0x8080808080808080ull;
  return ((((w & low7) + low7) | w) & high) >> 7;
}

// A mask of `count` (<= 64) bits: bit k is set when byte k at p is not zero. Eight bytes
// at a time, one multiply gathering their low bits into the top byte (bit k from byte k).
template <int64_t count> inline uint64_t nonzero_byte_bits(const bool* p) {
  uint64_t bits = 0;
  for (int64_t j = 0; j < count; j += 8) {
    uint64_t w = 0;
    std::memcpy(&w, p + j, count - j < 8 ? count - j : 8);
    bits |= (nonzero_bytes(w) * 0x0102040810204080ull >> 56) << j;
  }
  return bits;
}

#if defined(__AVX2__) && !defined(__AVX512F__)
// Comparisons into bools, four batches of masks packed into bytes at a time: GCC's own
// vectorisation of bool(a < b) took 1.2x (float64) to 1.4x (float32) the time of this in
// cache (its packs take twice the shuffles). In kiln, comparisons then folded by any/all
// (kiln-ab, Zen 3, 1 thread): 0.74-0.85x the time against a scalar, 0.89-0.95x between
// arrays, 10^5 and 10^6 items. AVX-512 (none here to measure) keeps GCC's loop, which
// compares into mask registers; SSE2, the fallback, keeps it too.
#define KILN_PACKED_COMPARES 1
template <class T> constexpr bool kPackedCompare = kIsFloat<T> || std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t>;
template <class T> __m256i mask_ints(const xsimd::batch_bool<T, Arch>& m) {
  if constexpr (std::is_same_v<T, float>) return _mm256_castps_si256(m);
  else if constexpr (std::is_same_v<T, double>) return _mm256_castpd_si256(m);
  else return m;
}
// F's compare, but a float != as one unordered compare (true where either is NaN): as not
// == it took 1.05-1.07x GCC's loop's time (10^5, float32 and float64), one xor more a batch.
template <class F, class T> xsimd::batch_bool<T, Arch> packed_compare(const Batch<T>& a, const Batch<T>& b) {
  if constexpr (std::is_same_v<F, Impl<Op::not_equal>> && std::is_same_v<T, float>) return _mm256_cmp_ps(a, b, _CMP_NEQ_UQ);
  else if constexpr (std::is_same_v<F, Impl<Op::not_equal>> && std::is_same_v<T, double>) return _mm256_cmp_pd(a, b, _CMP_NEQ_UQ);
  else return F::compare(a, b);
}
// Stores the four masks' lanes, in order, as bytes 0 or 1 at out (4 * Batch<T>::size of them).
template <class T> inline void store_mask_bytes(const xsimd::batch_bool<T, Arch> (&m)[4], bool* out) {
  const __m256i m0 = mask_ints(m[0]), m1 = mask_ints(m[1]), m2 = mask_ints(m[2]), m3 = mask_ints(m[3]);
  if constexpr (sizeof(T) == 4) {
    // Packing interleaves the 128-bit halves; the permute puts the 4-byte groups in order.
    __m256i q = _mm256_packs_epi16(_mm256_packs_epi32(m0, m1), _mm256_packs_epi32(m2, m3));
    q = _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_and_si256(q, _mm256_set1_epi8(1)));
  } else {
    // One 32-bit half of each 64-bit mask, then two packs: lanes (0 1 4 5 8 9 12 13) in the
    // low half and (2 3 6 7 ...) in the high; interleaving pairs of them restores the order.
    auto halves = [](__m256i a, __m256i b) {
      return _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), 0x88));
    };
    const __m256i p = _mm256_packs_epi32(halves(m0, m1), halves(m2, m3)), q = _mm256_packs_epi16(p, p);
    const __m128i r = _mm_unpacklo_epi16(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_and_si128(r, _mm_set1_epi8(1)));
  }
}
#else
#define KILN_PACKED_COMPARES 0
#endif

// The one loop shape. Operand types: where's condition is bool, all others T.
template <class F, class T, size_t I> using Operand = std::conditional_t<std::is_same_v<F, Impl<Op::where>> && I == 0, bool, T>;
template <size_t K> using Index = std::integral_constant<size_t, K>;

// Bit k of `Scalars`: operand k is one value, element 0 of src[k] (kBinaryMasks, ...).
template <class F, class T, unsigned Scalars, size_t... I>
void run(const void* const* src, void* dst, int64_t n, std::index_sequence<I...>) {
  static_assert(Scalars == 0 || !std::is_same_v<F, Impl<Op::where>>);
  if (n <= 0) return;
  const auto in = std::tuple{static_cast<const Operand<F, T, I>*>(src[I])...};
  // The scalar operands' values, read once before the loops: out may alias a source, so
  // a read inside them would be made again after every store.
  const auto value = std::tuple{((Scalars >> I & 1) ? item(std::get<I>(in), 0) : Operand<F, T, I>{})...};
  // Operand K's element i.
  auto elem = [&]<size_t K>(Index<K>, int64_t i) {
    if constexpr ((Scalars >> K & 1) != 0) return std::get<K>(value);
    else return item(std::get<K>(in), i);
  };
  // A batch of operand K from element `at`: loaded, or its value in every lane (the batch paths').
  auto load = [&]<size_t K>(Index<K>, int64_t at) {
    if constexpr ((Scalars >> K & 1) != 0) return Batch<T>(std::get<K>(value));
    else return Batch<T>::load_unaligned(std::get<K>(in) + at);
  };
  using R = decltype(F::scalar(elem(Index<I>{}, 0)...));
  R* out = static_cast<R*>(dst);
  int64_t i = 0;
  if constexpr (kIsFloat<T> && std::is_same_v<F, Impl<Op::where>>) {
    constexpr int64_t width = Batch<T>::size;
    const bool* cond = std::get<0>(in);
    using U = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
    alignas(64) U lane_bit[width];
    for (int64_t k = 0; k < width; ++k) lane_bit[k] = U(1) << k;
    const auto lane_bits = Batch<U>::load_aligned(lane_bit);
    for (; i + width <= n; i += width) {
      // Bit k of `bits` says whether cond[i + k] is true; each lane then picks its bit.
      const auto taken = (Batch<U>(U(nonzero_byte_bits<width>(cond + i))) & lane_bits) != Batch<U>(0);
      const auto x = xsimd::bitwise_cast<Batch<U>>(Batch<T>::load_unaligned(std::get<1>(in) + i));
      const auto y = xsimd::bitwise_cast<Batch<U>>(Batch<T>::load_unaligned(std::get<2>(in) + i));
      xsimd::bitwise_cast<Batch<T>>(xsimd::select(taken, x, y)).store_unaligned(out + i);
    }
  }
  if constexpr (kIsFloat<T> && requires(Batch<T> v) { F::batch((I, v)...); }) {
    // Every element goes through the batch function (lanes batch_safe refuses through the
    // scalar one, lane by lane), the tail too: a result then depends on its own operands
    // only, never on where a kernel call starts or ends, so how a loop is cut into chunks
    // (by size, by rows, by alignment) cannot change a bit.
    constexpr int64_t width = Batch<T>::size;
    constexpr bool checks_domain = [] {
      if constexpr (!requires(Batch<T> v) { F::batch_safe((I, v)...); }) return false;
      else if constexpr (requires { F::template from_mvec<T>; }) return !F::template from_mvec<T>;
      else return true;
    }();
    // One batch of results at p[...]: the batch function, with the lanes batch_safe
    // refuses (if any) replaced by the scalar function's. Out of line: inlined into the
    // main loop below it made float32 exp(-a) * log1p(b) 10% slower.
    auto one = [&](const T* const (&p)[sizeof...(I)], R* o) __attribute__((noinline, cold)) {
      if constexpr (checks_domain) {
        const auto safe = F::batch_safe(Batch<T>::load_unaligned(p[I])...);
        if (!xsimd::all(safe)) {
          alignas(64) bool ok[width];
          alignas(64) R lanes[width];
          safe.store_aligned(ok);
          F::batch(Batch<T>::load_unaligned(p[I])...).store_aligned(lanes);
          for (int64_t k = 0; k < width; ++k)
            if (!ok[k]) lanes[k] = F::scalar(p[I][k]...);
          std::memcpy(o, lanes, sizeof lanes);
          return;
        }
      }
      F::batch(Batch<T>::load_unaligned(p[I])...).store_unaligned(o);
    };
    // Where `one` reads a scalar operand: its value in every lane.
    alignas(64) T splat[sizeof...(I)][width];
    ((Scalars >> I & 1 ? std::fill(splat[I], splat[I] + width, std::get<I>(value)) : void()), ...);
    auto at = [&]<size_t K>(Index<K>, int64_t k) -> const T* {
      if constexpr ((Scalars >> K & 1) != 0) return splat[K];
      else return std::get<K>(in) + k;
    };
    auto step = [&](int64_t k) {  // the batch of elements k .. k + width
      if constexpr (checks_domain) {
        if (!xsimd::all(F::batch_safe(load(Index<I>{}, k)...))) return one({at(Index<I>{}, k)...}, out + k);
      }
      F::batch(load(Index<I>{}, k)...).store_unaligned(out + k);
    };
    // A ragged end after a full batch is the last batch again, ending at n: the loop's
    // last step is clamped there, so each kernel inlines its batch code once (a second
    // inlined copy cost more compile time; a call to `one` instead made float32 m + row
    // at 10^7 1.2x slower). The elements it rewrites get their own bits again, unless out
    // is also an operand's memory (they would be read back already computed): then the
    // padded batch below, which costs a copy in and out.
    auto apart = [&]<size_t K>(Index<K>) {
      if constexpr ((Scalars >> K & 1) != 0) return true;
      else {
        const auto p = reinterpret_cast<uintptr_t>(std::get<K>(in)), o = reinterpret_cast<uintptr_t>(out);
        return p + n * sizeof(T) <= o || o + n * sizeof(R) <= p;
      }
    };
    const int64_t bulk = n > width && (apart(Index<I>{}) && ...) ? n : n / width * width;
    for (; i < bulk; i += width) step(i < n - width ? i : n - width);
    i = bulk;
    if (i < n) {
      // The last partial batch, padded with copies of its first element.
      alignas(64) T pad[sizeof...(I)][width];
      alignas(64) R lanes[width];
      // memcpy, not std::copy: a std:: template left out of line (as at -O1) would be a
      // weak symbol one copy of which serves every instruction set (check_isa_symbols.sh).
      ((std::fill(pad[I], pad[I] + width, elem(Index<I>{}, i)),
        Scalars >> I & 1 ? void() : (void)std::memcpy(pad[I], std::get<I>(in) + i, (n - i) * sizeof(T))),
       ...);
      one({pad[I]...}, lanes);
      std::memcpy(out + i, lanes, (n - i) * sizeof(R));
      i = n;
    }
  }
  if constexpr (kIsInt<T> && std::is_same_v<F, Impl<Op::power>>) {
    // Exponentiation by squaring a batch at a time, as many steps as the batch's longest
    // exponent has bits (64-bit multiplies built from 32-bit ones where the set has none):
    // int_power an element at a time mispredicts its loop's end on every change of
    // exponent length (NumPy's loop too).
    using U = Unsigned<T>;
    using B = Batch<U>;
    constexpr int64_t width = B::size;
    alignas(64) U lanes[2][width];
    const B one(1);
    for (; i + width <= n; i += width) {
      for (int64_t k = 0; k < width; ++k) lanes[0][k] = U(elem(Index<0>{}, i + k)), lanes[1][k] = U(elem(Index<1>{}, i + k));
      B base = B::load_aligned(lanes[0]), exp = B::load_aligned(lanes[1]), result = one;
      const auto negative = (exp >> (8 * sizeof(U) - 1)) != B(0);
      exp = xsimd::select(negative, B(0), exp);
      while (xsimd::any(exp != B(0))) {
        result = result * xsimd::select((exp & one) != B(0), base, one);  // wraps, as wrap_mul
        base = base * base;
        exp = exp >> 1;
      }
      if (xsimd::any(negative)) {  // int_power's values for negative exponents
        alignas(64) U got[width];
        result.store_aligned(got);
        for (int64_t k = 0; k < width; ++k)
          if (T(lanes[1][k]) < 0) got[k] = U(int_power(T(lanes[0][k]), T(lanes[1][k])));
        result = B::load_aligned(got);
      }
      result.store_unaligned(reinterpret_cast<U*>(out + i));
    }
  }
#if KILN_PACKED_COMPARES
  if constexpr (kPackedCompare<T> && requires(Batch<T> v) { F::compare(v, v); }) {
    constexpr int64_t width = Batch<T>::size;
    for (; i + 4 * width <= n; i += 4 * width) {
      const xsimd::batch_bool<T, Arch> m[4] = {
          packed_compare<F, T>(load(Index<I>{}, i)...), packed_compare<F, T>(load(Index<I>{}, i + width)...),
          packed_compare<F, T>(load(Index<I>{}, i + 2 * width)...), packed_compare<F, T>(load(Index<I>{}, i + 3 * width)...)};
      store_mask_bytes<T>(m, out + i);
    }
  }
#endif
  if constexpr (kIsBool<T> && std::is_same_v<F, Impl<Op::invert>>) {
    // NumPy's logical not, a batch of bytes at a time: 1 where the byte is zero. GCC left
    // the loop below a byte at a time here (8.7x NumPy's time over 10^6 bools).
    using B = Batch<uint8_t>;
    const auto* x = reinterpret_cast<const uint8_t*>(std::get<0>(in));
    auto* o = reinterpret_cast<uint8_t*>(out);
    for (; i + static_cast<int64_t>(B::size) <= n; i += B::size)
      xsimd::select(B::load_unaligned(x + i) == B(0), B(1), B(0)).store_unaligned(o + i);
    for (; i < n; ++i) o[i] = x[i] == 0;
  }
  for (; i < n; ++i) out[i] = F::scalar(elem(Index<I>{}, i)...);
}

template <class F, class T, int Arity, unsigned Scalars = 0>
void kernel(const void* const* src, void* dst, int64_t n) {
  run<F, T, Scalars>(src, dst, n, std::make_index_sequence<Arity>{});
}

// The scalar-operand variants of one kernel, one per mask of `Masks`. Not for SSE2, the
// portable fallback, which keeps its plain kernels: the variants more than double the
// kernels' compile time (2-core Zen 5: the AVX-512 file 21 -> 47 s; in the sanitizer
// build the SSE2 file takes 125 s without them, AVX2 and AVX-512 286-299 s with them).
template <class F, class T, int Arity, const auto& Masks, size_t... M>
void fill_scalar_variants(KernelFn* variants, std::index_sequence<M...>) {
  if constexpr (!std::is_same_v<Arch, xsimd::sse2>) ((variants[M] = &kernel<F, T, Arity, Masks[M]>), ...);
}

// NumPy astype: float to int is C's truncation where representable; NaN and values out
// of range give the most negative integer (what x86's conversion instructions return).
template <class From, class To> inline To convert(From v) {
  if constexpr (kIsBool<To>) return v != From(0);
  else if constexpr (kIsInt<To> && kIsFloat<From>) {
    constexpr double lo = static_cast<double>(std::numeric_limits<To>::min());  // exact power of two
    double d = static_cast<double>(v);
    return (d >= lo && d < -lo) ? static_cast<To>(v) : std::numeric_limits<To>::min();
  } else if constexpr (kIsInt<To> && kIsInt<From> && sizeof(To) < sizeof(From)) {
    return static_cast<To>(static_cast<Unsigned<From>>(v));  // wraps, as NumPy
  } else {
    return static_cast<To>(v);
  }
}

// f(i, byte i as a To: 1 if nonzero, else 0) for i in [0, n), in the form GCC vectorises.
// For float To, its scalar form branches on each byte, mispredicted half the time over
// random bools (column means over rows of 10 bools took 6 ns a bool, 3x the int64 sums),
// so all but whole 32s take a form without a branch, which vectorises worse.
template <class To, class F> void bools_as(const uint8_t* bytes, int64_t n, F f) {
  int64_t i = 0;
  for (const int64_t body = kIsFloat<To> ? n & ~int64_t(31) : n; i < body; ++i) f(i, bytes[i] != 0 ? To(1) : To(0));
  for (; i < n; ++i) f(i, static_cast<To>(std::min<uint8_t>(bytes[i], 1)));
}

template <class From, class To>
void cast_kernel(const void* const* src, void* dst, int64_t n) {
  const From* in = static_cast<const From*>(src[0]);
  To* out = static_cast<To*>(dst);
  if constexpr (kIsBool<From>) {
    // Bytes, any nonzero one true (item): GCC vectorises bools_as, where it left a cast
    // from bool a byte at a time (10^6 bools to float64 from Python: 491 -> 297 us, NumPy
    // 221; to int32 370 -> 130, NumPy 92).
    bools_as<To>(reinterpret_cast<const uint8_t*>(in), n, [out](int64_t i, To v) { out[i] = v; });
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = convert<From, To>(in[i]);
  }
}

template <Op O, DType D> constexpr void fill_op(KernelTable& t) {
  if constexpr (op_computes_in(O, D)) {
    using T = typename CType<D>::type;
    t.op[static_cast<int>(O)][static_cast<int>(D)] = &kernel<Impl<O>, T, op_info(O).arity>;
    if constexpr (op_info(O).arity == 2 && kIsFloat<T>)
      fill_scalar_variants<Impl<O>, T, 2, kBinaryMasks>(t.op_scalar[static_cast<int>(O)][static_cast<int>(D)],
                                                        std::make_index_sequence<kNumBinaryMasks>{});
  }
}

template <DType From, DType To> constexpr void fill_cast(KernelTable& t) {
  t.cast[static_cast<int>(From)][static_cast<int>(To)] =
      &cast_kernel<typename CType<From>::type, typename CType<To>::type>;
}

using AllDTypes = std::make_index_sequence<kNumDTypes>;

template <DType From, size_t... To> constexpr void fill_casts_from(KernelTable& t, std::index_sequence<To...>) {
  (fill_cast<From, static_cast<DType>(To)>(t), ...);
}

template <size_t... From> constexpr void fill_all_casts(KernelTable& t, std::index_sequence<From...>) {
  (fill_casts_from<static_cast<DType>(From)>(t, AllDTypes{}), ...);
}

template <Op O, size_t... D> constexpr void fill_all_dtypes(KernelTable& t, std::index_sequence<D...>) {
  (fill_op<O, static_cast<DType>(D)>(t), ...);
}

// Square blocks transposed in registers: the band movers' and the short segments' (below).
#include "transpose_impl.hpp"

// --- reductions ---------------------------------------------------------------------

// How a reduction combines two values (`a` first); floats may add `batch`.
template <Reduction R> struct Fold;
template <> struct Fold<Reduction::sum> {
  template <class T> static T scalar(T a, T b) { return Impl<Op::add>::scalar(a, b); }
  template <class V> static V batch(V a, V b) { return a + b; }
};
template <> struct Fold<Reduction::prod> {
  template <class T> static T scalar(T a, T b) { return Impl<Op::multiply>::scalar(a, b); }
  template <class V> static V batch(V a, V b) { return a * b; }
};
template <> struct Fold<Reduction::min> {
  template <class T> static T scalar(T a, T b) { return Impl<Op::minimum>::scalar(a, b); }
  template <class V> static V batch(V a, V b) { return Impl<Op::minimum>::batch(a, b); }
};
template <> struct Fold<Reduction::max> {
  template <class T> static T scalar(T a, T b) { return Impl<Op::maximum>::scalar(a, b); }
  template <class V> static V batch(V a, V b) { return Impl<Op::maximum>::batch(a, b); }
};
template <> struct Fold<Reduction::any> {
  template <class T> static T scalar(T a, T b) { return a || b; }
};
template <> struct Fold<Reduction::all> {
  template <class T> static T scalar(T a, T b) { return a && b; }
};

// Float sums are pairwise, as NumPy's: leaves of 32 SIMD vectors, each folded in four
// vector accumulators, are combined as a binary tree of whole vectors (iteratively: a
// recursive version measured 3x slower), and only the final vector is summed across its
// lanes (pairwise too). The error grows with log(n), not n.
// The values a fold reads: an array, the element-wise product of two (sum(a*b) read
// straight from memory, the products never stored), or an array's squared deviations
// from one value (var's second pass). Each source names the arrays it streams through
// and makes its values from their items (`value`, on one item or a batch of them).
template <class T> struct Values {
  const T* x;
  std::array<const T*, 1> streams() const { return {x}; }
  template <class V> V value(V a) const { return a; }
  Batch<T> batch(int64_t i) const { return Batch<T>::load_unaligned(x + i); }
  T scalar(int64_t i) const { return item(x, i); }
};
template <class T> struct Products {
  const T *x, *y;
  std::array<const T*, 2> streams() const { return {x, y}; }
  template <class V> V value(V a, V b) const { return rounded(a * b); }
  Batch<T> batch(int64_t i) const { return value(Batch<T>::load_unaligned(x + i), Batch<T>::load_unaligned(y + i)); }
  T scalar(int64_t i) const { return value(x[i], y[i]); }
};
// sum(x**2) and sum(x*x): the products of one array with itself, each item read once.
template <class T> struct Squares {
  const T* x;
  std::array<const T*, 1> streams() const { return {x}; }
  template <class V> V value(V a) const { return rounded(a * a); }
  Batch<T> batch(int64_t i) const { return value(Batch<T>::load_unaligned(x + i)); }
  T scalar(int64_t i) const { return value(x[i]); }
};
template <class T> struct Deviations {
  const T* x;
  T c;
  std::array<const T*, 1> streams() const { return {x}; }
  template <class V> V value(V a) const {  // rounded as subtract, then square
    const V d = rounded(a - V(c));
    return rounded(d * d);
  }
  Batch<T> batch(int64_t i) const { return value(Batch<T>::load_unaligned(x + i)); }
  T scalar(int64_t i) const { return value(x[i]); }
};

// var's second pass along an outer axis: each column's squared deviations from its own
// centre (c[i] for column i, rounded as subtract then square): a row further on moves x
// only (down).
template <class T> struct ColumnDeviations {
  const T *x, *c;
  template <class V> V value(V a, V centre) const {
    const V d = rounded(a - centre);
    return rounded(d * d);
  }
  Batch<T> batch(int64_t i) const { return value(Batch<T>::load_unaligned(x + i), Batch<T>::load_unaligned(c + i)); }
  T scalar(int64_t i) const { return value(x[i], c[i]); }
};

template <class T> Values<T> shifted(Values<T> v, int64_t i) { return {v.x + i}; }
template <class T> Products<T> shifted(Products<T> v, int64_t i) { return {v.x + i, v.y + i}; }
template <class T> Squares<T> shifted(Squares<T> v, int64_t i) { return {v.x + i}; }
// The source `items` further on along a row-major array: rows further down in fold_rows.
template <class Src> Src down(Src v, int64_t items) { return shifted(v, items); }
template <class T> ColumnDeviations<T> down(ColumnDeviations<T> v, int64_t items) { return {v.x + items, v.c}; }

// A fold reads its values' batches in order from the first (fold_leaf): a source's
// in_order() reader gives them one after another. Sources read by lines keep the line a
// batch ends in for the next one; the rest load each batch where it lies.
template <class T, class Src> struct InOrder {
  const Src* x;
  int64_t at = 0;
  Batch<T> next() {
    const Batch<T> v = x->batch(at);
    at += Batch<T>::size;
    return v;
  }
};
template <class T, class Src> InOrder<T, Src> in_order(const Src& x) { return {&x}; }

// AVX-512 loads that straddle two cache lines slow a fold from memory: on Zen 5 a loop
// summing 10^7 float64s 16 bytes past a line (as NumPy's arrays lie: malloc's large
// blocks) read 29.8 GB/s against 41.8 on a line. A LineReader loads the aligned lines a
// source's items lie in, each once, and picks every batch out of the line the previous
// batch ended in and the next with one permute: the same items in the same lanes, so the
// same result bits. kiln-ab --offset 16, 1 thread, time by lines over time by straddling
// loads: 10^7 float64 max(a) 0.52, prod(a) 0.85, sum(a*b) 0.88, rows of 1000 max 0.67,
// sum(a*b) 0.87; float32 max 0.56; from the caches (10^4-10^5) 0.88-1.03. Loading each
// line twice (into two permutes) had left plain sums slower by lines than straddling:
// with the line kept, against that, sum(a) 0.85-0.91, sum(a*a) 0.84-0.93, var(a)
// 0.93-0.95, sum(a*b) 0.96-0.98, float32 sums 0.93; rows of 1000 max and min 1.06-1.07.
// Its loads reach past the items only within lines that hold some of them, so never onto
// another page; AddressSanitizer cannot know that, so instrumented builds load directly.
#if defined(__AVX512F__) && !defined(__SANITIZE_ADDRESS__)
#define KILN_LINE_LOADS 1
template <class T> constexpr bool kLineLoads = kIsFloat<T>;
template <class T> class LineReader {
 public:
  explicit LineReader(const T* x) {
    constexpr int64_t width = Batch<T>::size;
    const int64_t past = static_cast<int64_t>(reinterpret_cast<uintptr_t>(x) % 64 / sizeof(T));
    const T* line = x - past;
    // A batch's items lie in a line and the next; on a line, all in the one: the pick
    // then takes them from the second operand, and no line after the items is loaded.
    next_ = line + (past ? width : 0);
    const int64_t from = past ? past : width;
    if constexpr (sizeof(T) == 8) pick_ = _mm512_add_epi64(_mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi64(from));
    else
      pick_ = _mm512_add_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                               _mm512_set1_epi32(static_cast<int>(from)));
    carry_ = Batch<T>::load_aligned(line);
  }
  Batch<T> next() {
    // The empty asm pins the loaded line in its register: GCC otherwise loaded it a
    // second time into the next batch's permute, undoing the carry.
    auto line = Batch<T>::load_aligned(next_ + at_).data;
    asm("" : "+v"(line));
    Batch<T> v;
    if constexpr (sizeof(T) == 8) v = _mm512_permutex2var_pd(carry_, pick_, line);
    else v = _mm512_permutex2var_ps(carry_, pick_, line);
    carry_ = line;
    at_ += Batch<T>::size;
    return v;
  }

 private:
  const T* next_;
  __m512i pick_;
  Batch<T> carry_;
  int64_t at_ = 0;
};
// A source read by lines: the same values from the same items.
template <class Src> struct ByLines {
  Src src;
  auto scalar(int64_t i) const { return src.scalar(i); }
};
template <class T, class Src> struct ByLinesReader {
  Src src;
  std::array<LineReader<T>, std::tuple_size_v<decltype(src.streams())>> lines;
  Batch<T> next() {
    return std::apply([&](auto&... line) { return src.value(line.next()...); }, lines);
  }
};
template <class T, class Src> ByLinesReader<T, Src> in_order(const ByLines<Src>& v) {
  return {v.src, std::apply([](auto... p) { return std::array{LineReader<T>(p)...}; }, v.src.streams())};
}
// Whether reading x by lines pays: it starts past a line, on a multiple of its item size
// (wrapped memory need not be), and spans a page or more. Shorter runs (rows of 100
// float64s) gained nothing from memory and ran up to 1.26x slower from the caches.
template <class T> bool by_lines(const T* x, int64_t n) {
  const auto at = reinterpret_cast<uintptr_t>(x);
  return at % 64 != 0 && at % sizeof(T) == 0 && n * static_cast<int64_t>(sizeof(T)) >= 4096;
}
#else
#define KILN_LINE_LOADS 0
#endif

// The next n values of a reader (in_order), n a multiple of the width.
// Inlined: the reader then stays in registers (out of line, each step stored it back).
template <Reduction R, class T, class Reader> [[gnu::always_inline]] inline Batch<T> fold_leaf(Reader& x, int64_t n) {
  constexpr int64_t width = Batch<T>::size;
  Batch<T> a = x.next();
  int64_t i = width;
  if (n >= 4 * width) {
    Batch<T> b = x.next(), c = x.next(), d = x.next();
    // Not unrolled: within a pairwise leaf GCC knows the count and unrolled it whole, its
    // checks between steps made sums from the caches 1.27x slower (var 1.36x).
#pragma GCC unroll 1
    for (i = 4 * width; i + 4 * width <= n; i += 4 * width) {
      a = Fold<R>::batch(a, x.next());
      b = Fold<R>::batch(b, x.next());
      c = Fold<R>::batch(c, x.next());
      d = Fold<R>::batch(d, x.next());
    }
    a = Fold<R>::batch(Fold<R>::batch(a, b), Fold<R>::batch(c, d));
  }
  for (; i < n; i += width) a = Fold<R>::batch(a, x.next());
  return a;
}

template <Reduction R, class T, class Src> Batch<T> fold_batches(const Src& src, int64_t n) {  // n: a multiple of the width
  constexpr int64_t leaf = 32 * Batch<T>::size;
  auto x = in_order<T>(src);  // one reader for all the leaves: read by lines, each line once
  if (R != Reduction::sum || n <= leaf) return fold_leaf<R, T>(x, n);
  Batch<T> stack[64];
  int level[64], top = 0;
  for (int64_t i = 0; i < n; i += leaf) {
    Batch<T> v = fold_leaf<R, T>(x, std::min(leaf, n - i));
    int l = 0;
    for (; top > 0 && level[top - 1] == l; ++l) v = Fold<R>::batch(stack[--top], v);
    stack[top] = v;
    level[top++] = l;
  }
  Batch<T> v = stack[--top];
  while (top > 0) v = Fold<R>::batch(stack[--top], v);
  return v;
}

template <Reduction R, class T, class Src> T fold_run(const Src& x, int64_t n) {
  int64_t i = 0;
  T r{};
  if constexpr (kIsFloat<T> && requires(Batch<T> v) { Fold<R>::batch(v, v); }) {
    constexpr int64_t width = Batch<T>::size;
    if (n >= width) {
      i = n - n % width;
      alignas(64) T lanes[width];
      fold_batches<R, T>(x, i).store_aligned(lanes);
      for (int64_t step = width / 2; step > 0; step /= 2)
        for (int64_t k = 0; k < step; ++k) lanes[k] = Fold<R>::scalar(lanes[k], lanes[k + step]);
      r = lanes[0];
    } else {
      r = x.scalar(i++);
    }
  } else {
    r = x.scalar(i++);
  }
  for (; i < n; ++i) r = Fold<R>::scalar(r, x.scalar(i));
  return r;
}

// fold_run over values in memory, by lines where that pays for any of its streams and
// all of them lie on multiples of their item size (see LineReader).
template <Reduction R, class T, class Src> T fold_memory(const Src& v, int64_t n) {
#if KILN_LINE_LOADS
  if constexpr (kLineLoads<T>) {
    bool pays = false, items = true;
    for (const T* p : v.streams()) {
      pays = pays || by_lines(p, n);
      items = items && reinterpret_cast<uintptr_t>(p) % sizeof(T) == 0;
    }
    if (pays && items) return fold_run<R, T>(ByLines<Src>{v}, n);
  }
#endif
  return fold_run<R, T>(v, n);
}

// any and all over bools, as bytes: any nonzero byte is true (a NumPy view of uint8 as
// bool may hold others than 1). Four batches at a time are ORed (any) or min'ed (all) and
// the scan stops once the answer is known, as NumPy's does. A byte at a time with
// `a || b` it ran 40-50x NumPy's time over 10^6 bools (2.4 GB/s), even when NumPy read
// them all. Over bools max is any and min is all; argmax and argmin find the first byte
// that decides them the same way (a scalar scan took 15-30x NumPy's time over 10^6).
// any's or all's fold of two batches of bytes: OR keeps a nonzero byte, min a zero one.
template <bool kAny, class B> B fold_bytes(const B& a, const B& b) { return kAny ? (a | b) : xsimd::min(a, b); }
// The fold that gives R over bools: any for any and max, all for all and min.
template <Reduction R> constexpr bool kAnyOfBools = R == Reduction::any || R == Reduction::max;
template <class T, Reduction R>
constexpr bool kBoolBytes = kIsBool<T> && (R == Reduction::any || R == Reduction::all || R == Reduction::max || R == Reduction::min);

// The index of the first nonzero byte (kAny) or zero byte (all) of n; n if there is none.
template <bool kAny> int64_t first_deciding(const bool* items, int64_t n) {
  using B = Batch<uint8_t>;
  constexpr int64_t width = B::size;
  const auto* x = reinterpret_cast<const uint8_t*>(items);
  auto decided = [](B v) { return kAny ? xsimd::any(v != B(0)) : xsimd::any(v == B(0)); };
  int64_t i = 0;
  for (; i + 4 * width <= n; i += 4 * width) {
    const B a = B::load_unaligned(x + i), b = B::load_unaligned(x + i + width);
    const B c = B::load_unaligned(x + i + 2 * width), d = B::load_unaligned(x + i + 3 * width);
    if (decided(fold_bytes<kAny>(fold_bytes<kAny>(a, b), fold_bytes<kAny>(c, d)))) break;
  }
  for (; i + width <= n; i += width)
    if (decided(B::load_unaligned(x + i))) break;
  for (; i < n; ++i)
    if ((x[i] != 0) == kAny) return i;
  return n;
}

template <Reduction R, class T> void fold_run_kernel(const void* src, int64_t n, int64_t, ReduceAcc* acc) {
  T r;
  if constexpr (kBoolBytes<T, R>) r = (first_deciding<kAnyOfBools<R>>(static_cast<const T*>(src), n) < n) == kAnyOfBools<R>;
  else r = fold_memory<R, T>(Values<T>{static_cast<const T*>(src)}, n);
  std::memcpy(acc->value, &r, sizeof r);
  acc->index = 0;
}

// The number of nonzero bytes of n: min(byte, 1) added in byte lanes for up to 63 rounds
// of four batches (at most 4 a round), then each 64-bit lane's eight bytes added into it.
inline int64_t count_nonzero_bytes(const uint8_t* x, int64_t n) {
  using B = Batch<uint8_t>;
  using W = Batch<uint64_t>;
  constexpr int64_t width = B::size;
  const B one(1);
  auto widen = [](const B& counts) {
    const W m8(0x00FF00FF00FF00FFull), m16(0x0000FFFF0000FFFFull), m32(0xFFFFFFFFull);
    W w = xsimd::bitwise_cast<W>(counts);
    w = (w & m8) + ((w >> 8) & m8);
    w = (w & m16) + ((w >> 16) & m16);
    return (w & m32) + (w >> 32);
  };
  int64_t i = 0, count = 0;
  if (n >= 4 * width) {  // short rows (sum(x, axis=1) over rows of 8) skip the batches' set-up
    W total(uint64_t(0));
    while (i + 4 * width <= n) {
      B counts(uint8_t(0));
      for (int round = 0; round < 63 && i + 4 * width <= n; ++round, i += 4 * width) {
        const B a = B::load_unaligned(x + i), b = B::load_unaligned(x + i + width);
        const B c = B::load_unaligned(x + i + 2 * width), d = B::load_unaligned(x + i + 3 * width);
        counts += (xsimd::min(a, one) + xsimd::min(b, one)) + (xsimd::min(c, one) + xsimd::min(d, one));
      }
      total += widen(counts);
    }
    count = static_cast<int64_t>(xsimd::hadd(total));
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, x + i, 8);
    count += static_cast<int64_t>(nonzero_bytes(w) * 0x0101010101010101ull >> 56);
  }
  for (; i < n; ++i) count += x[i] != 0;
  return count;
}

// sum (and mean) of bools cast to T, the bools read as bytes and their nonzero ones
// counted, without the cast: it wrote 8 bytes per bool to be read again (10^6 from
// Python: 1.4x NumPy's time, half of it the cast). run, run_segments and accumulate as
// ReduceFns has them, over a byte per item.
template <class T> void count_run_kernel(const void* bools, int64_t n, int64_t, ReduceAcc* acc) {
  const T r = static_cast<T>(count_nonzero_bytes(static_cast<const uint8_t*>(bools), n));
  std::memcpy(acc->value, &r, sizeof r);
  acc->index = 0;
}

// Along columns.
template <class T>
void count_accumulate_kernel(void* acc_v, int64_t*, const void* bools, const int64_t*, int64_t, int64_t n) {
  T* acc = static_cast<T*>(acc_v);
  bools_as<T>(static_cast<const uint8_t*>(bools), n, [acc](int64_t i, T v) { acc[i] += v; });
}

template <class T> void sum_products_kernel(const void* x, const void* y, int64_t n, ReduceAcc* acc) {
  const T *xs = static_cast<const T*>(x), *ys = static_cast<const T*>(y);
  T r = xs == ys ? fold_memory<Reduction::sum, T>(Squares<T>{xs}, n) : fold_memory<Reduction::sum, T>(Products<T>{xs, ys}, n);
  std::memcpy(acc->value, &r, sizeof r);
  acc->index = 0;
}

template <class T> void sum_deviations_kernel(const void* x, const void* c, int64_t n, ReduceAcc* acc) {
  T r = fold_memory<Reduction::sum, T>(Deviations<T>{static_cast<const T*>(x), *static_cast<const T*>(c)}, n);
  std::memcpy(acc->value, &r, sizeof r);
  acc->index = 0;
}

template <Reduction R, class T> void fold_combine(ReduceAcc* acc, const ReduceAcc* later) {
  T a, b;
  std::memcpy(&a, acc->value, sizeof a);
  std::memcpy(&b, later->value, sizeof b);
  a = Fold<R>::scalar(a, b);
  std::memcpy(acc->value, &a, sizeof a);
}

template <Reduction R, class T>
void fold_accumulate(void* acc_v, int64_t*, const void* src_v, const int64_t*, int64_t, int64_t n) {
  T* acc = static_cast<T*>(acc_v);
  const T* src = static_cast<const T*>(src_v);
  int64_t i = 0;
  // Rows of bools as bytes, each result 0 or 1 (as NumPy's, whatever nonzero bytes came
  // in): batches, then words of eight (rows of 8 a byte at a time ran 1.5x slower).
  if constexpr (kBoolBytes<T, R>) {
    using B = Batch<uint8_t>;
    auto* a = reinterpret_cast<uint8_t*>(acc);
    const auto* x = reinterpret_cast<const uint8_t*>(src);
    constexpr bool kAny = kAnyOfBools<R>;
    for (; i + static_cast<int64_t>(B::size) <= n; i += B::size) {
      const B u = B::load_unaligned(a + i), v = B::load_unaligned(x + i);
      xsimd::min(fold_bytes<kAny>(u, v), B(1)).store_unaligned(a + i);
    }
    for (; i + 8 <= n; i += 8) {
      uint64_t u, v;
      std::memcpy(&u, a + i, 8);
      std::memcpy(&v, x + i, 8);
      u = kAny ? nonzero_bytes(u | v) : nonzero_bytes(u) & nonzero_bytes(v);
      std::memcpy(a + i, &u, 8);
    }
    for (; i < n; ++i) a[i] = kAny ? (a[i] | x[i]) != 0 : (a[i] != 0) & (x[i] != 0);
    return;
  }
  if constexpr (kIsFloat<T> && requires(Batch<T> v) { Fold<R>::batch(v, v); }) {
    constexpr int64_t width = Batch<T>::size;
    for (; i + width <= n; i += width)
      Fold<R>::batch(Batch<T>::load_unaligned(acc + i), Batch<T>::load_unaligned(src + i)).store_unaligned(acc + i);
  }
  for (; i < n; ++i) acc[i] = Fold<R>::scalar(acc[i], item(src, i));
}

// acc[i] = acc[i] (first: row 0's value) folded with item i's value in each of `rows` rows
// in order, row r being src down r * stride items. Four batches of columns at a
// time, so each row's values go into four independent chains and each row is read a few
// lines at a time while the others' streams stay open.
template <Reduction R, class T, class Src>
void fold_rows(T* acc, Src src, int64_t stride, int64_t rows, int64_t n, bool first) {
  const int64_t r0 = first ? 1 : 0;
  constexpr int64_t width = Batch<T>::size;
  int64_t i = 0;
  if (rows == 1 && first) {
    for (; i + width <= n; i += width) src.batch(i).store_unaligned(acc + i);
    for (; i < n; ++i) acc[i] = src.scalar(i);
    return;
  }
  if (rows == 1) {  // one row a call (sums of products in rows under a page): 0.7-0.8x the time of the loop below
    for (; i + width <= n; i += width) Fold<R>::batch(Batch<T>::load_unaligned(acc + i), src.batch(i)).store_unaligned(acc + i);
    for (; i < n; ++i) acc[i] = Fold<R>::scalar(acc[i], src.scalar(i));
    return;
  }
  for (; i + 4 * width <= n; i += 4 * width) {
    Batch<T> v[4];
    for (int k = 0; k < 4; ++k) v[k] = first ? src.batch(i + k * width) : Batch<T>::load_unaligned(acc + i + k * width);
    for (int64_t r = r0; r < rows; ++r) {
      const Src row = down(src, r * stride);
      for (int k = 0; k < 4; ++k) v[k] = Fold<R>::batch(v[k], row.batch(i + k * width));
    }
    for (int k = 0; k < 4; ++k) v[k].store_unaligned(acc + i + k * width);
  }
  for (; i + width <= n; i += width) {
    Batch<T> v = first ? src.batch(i) : Batch<T>::load_unaligned(acc + i);
    for (int64_t r = r0; r < rows; ++r) v = Fold<R>::batch(v, down(src, r * stride).batch(i));
    v.store_unaligned(acc + i);
  }
  for (; i < n; ++i) {
    T v = first ? src.scalar(i) : acc[i];
    for (int64_t r = r0; r < rows; ++r) v = Fold<R>::scalar(v, down(src, r * stride).scalar(i));
    acc[i] = v;
  }
}

template <Reduction R, class T>
void fold_accumulate_rows(void* acc, const void* src, int64_t stride, int64_t rows, int64_t n, bool first) {
  fold_rows<R>(static_cast<T*>(acc), Values<T>{static_cast<const T*>(src)}, stride, rows, n, first);
}

// dst[i] = acc[i] / d, as NumPy's mean divides: in float64, then rounded to T. For float32
// the same bits come from a float32 division while d is a float32 exactly: the quotient
// rounded to float64 and then to float32 is rounded once (53 >= 2 * 24 + 2 bits).
template <class T>
void divide_kernel(const void* acc_v, double d, int64_t n, void* dst_v) {
  const T* acc = static_cast<const T*>(acc_v);
  T* dst = static_cast<T*>(dst_v);
  constexpr int64_t width = Batch<T>::size;
  int64_t i = 0;
  if (static_cast<double>(static_cast<T>(d)) == d) {
    const Batch<T> by(static_cast<T>(d));
    for (; i + width <= n; i += width) (Batch<T>::load_unaligned(acc + i) / by).store_unaligned(dst + i);
  }
  for (; i < n; ++i) dst[i] = static_cast<T>(static_cast<double>(acc[i]) / d);
}

template <class T>
void accumulate_deviations_kernel(void* acc, const void* x, const void* centre, int64_t stride, int64_t rows, int64_t n,
                                  bool first) {
  fold_rows<Reduction::sum>(static_cast<T*>(acc), ColumnDeviations<T>{static_cast<const T*>(x), static_cast<const T*>(centre)},
                            stride, rows, n, first);
}

template <class T>
void accumulate_products_kernel(void* acc_v, const void* x_v, const void* y_v, int64_t stride, int64_t rows, int64_t n,
                                bool first) {
  T* acc = static_cast<T*>(acc_v);
  const T *x = static_cast<const T*>(x_v), *y = static_cast<const T*>(y_v);
  if (x == y) fold_rows<Reduction::sum>(acc, Squares<T>{x}, stride, rows, n, first);
  else fold_rows<Reduction::sum>(acc, Products<T>{x, y}, stride, rows, n, first);
}

// argmin/argmax: whether a later value replaces the best so far. The first NaN wins and
// stays; among equal values the first stays (NumPy's rules).
template <bool Max, class T> inline bool replaces(T later, T best) {
  if constexpr (kIsFloat<T>) {
    if (std::isnan(best)) return false;
    if (std::isnan(later)) return true;
  }
  return Max ? later > best : later < best;
}

// The types whose argmin/argmax run a SIMD lane at a time (bool stays scalar).
template <class T> constexpr bool kArgBatches = kIsFloat<T> || std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t>;

// argmin/argmax of x[0, n), n a multiple of the width, below 2^24 batches (their numbers
// are kept as T). Each lane of four accumulators keeps its best value and the batch
// it came from; only a strictly better value replaces it, so a lane keeps its first. Then
// the best of all lanes and, of those that hold it, the lowest index. The first NaN ends
// the search: it wins (NumPy's rule). Returns the index; best is its value.
// Four accumulators, because one's compare-then-select chain took ~9 cycles a batch
// (float64 2^20: 2.5x NumPy's time, 2.7x kiln's max).
template <class T> struct ArgChain {
  Batch<T> value, batch;
  template <bool Max> void take(const Batch<T>& v, T k) {
    const auto better = Max ? v > value : v < value;
    value = xsimd::select(better, v, value);
    batch = xsimd::select(better, Batch<T>(k), batch);
  }
};
template <bool Max, class T> int64_t arg_batches(const T* x, int64_t n, T& best) {
  constexpr int64_t W = Batch<T>::size;
  auto first_nan = [&](int64_t from) {
    while (!std::isnan(x[from])) ++from;
    best = x[from];
    return from;
  };
  auto load = [x](int64_t k) { return Batch<T>::load_unaligned(x + k * W); };
  const Batch<T> first = load(0);
  if constexpr (kIsFloat<T>) if (xsimd::any(xsimd::isnan(first))) return first_nan(0);
  // Named, not an array: GCC kept an array of them on the stack.
  ArgChain<T> c0{first, Batch<T>(T(0))}, c1 = c0, c2 = c0, c3 = c0;
  const int64_t batches = n / W;
  int64_t k = 1;
  for (; k + 4 <= batches; k += 4) {
    const Batch<T> v0 = load(k), v1 = load(k + 1), v2 = load(k + 2), v3 = load(k + 3);
    if constexpr (kIsFloat<T>)
      if (xsimd::any(xsimd::isnan(v0) || xsimd::isnan(v1) || xsimd::isnan(v2) || xsimd::isnan(v3)))
        return first_nan(k * W);
    c0.template take<Max>(v0, static_cast<T>(k));
    c1.template take<Max>(v1, static_cast<T>(k + 1));
    c2.template take<Max>(v2, static_cast<T>(k + 2));
    c3.template take<Max>(v3, static_cast<T>(k + 3));
  }
  for (; k < batches; ++k) {
    const Batch<T> v = load(k);
    if constexpr (kIsFloat<T>) if (xsimd::any(xsimd::isnan(v))) return first_nan(k * W);
    c0.template take<Max>(v, static_cast<T>(k));
  }
  // Lane by lane, the better of two chains or, equal, the earlier batch; then the lanes
  // (a scalar pass over all four chains' lanes was most of the time of rows of 1000 int32s).
  const auto merge = [](ArgChain<T>& a, const ArgChain<T>& b) {
    const auto better = (Max ? b.value > a.value : b.value < a.value) || (b.value == a.value && b.batch < a.batch);
    a.value = xsimd::select(better, b.value, a.value);
    a.batch = xsimd::select(better, b.batch, a.batch);
  };
  merge(c0, c1), merge(c2, c3), merge(c0, c2);
  alignas(64) T value[W], batch[W];
  c0.value.store_aligned(value), c0.batch.store_aligned(batch);
  int64_t at = static_cast<int64_t>(batch[0]) * W;
  best = value[0];
  for (int64_t l = 1; l < W; ++l) {
    const int64_t i = static_cast<int64_t>(batch[l]) * W + l;
    if ((Max ? value[l] > best : value[l] < best) || (value[l] == best && i < at)) best = value[l], at = i;
  }
  return at;
}

// arg_batches over x[0, n) in pieces of 2^20 items (the batch numbers stay exact in
// float32), n at least two batches. Out of line, so that the scalar loop over short rows
// keeps its registers.
template <class T> struct ArgBest {
  T value;
  int64_t at;
};
template <bool Max, class T> [[gnu::noinline]] ArgBest<T> arg_pieces(const T* x, int64_t n) {
  constexpr int64_t W = Batch<T>::size, kPiece = int64_t{1} << 20;
  ArgBest<T> best{};
  for (int64_t i = 0; i + W <= n; i += kPiece) {
    T piece_best;
    const int64_t piece_at = i + arg_batches<Max, T>(x + i, std::min(kPiece, (n - i) / W * W), piece_best);
    if (i == 0 || replaces<Max>(piece_best, best.value)) best = {piece_best, piece_at};
    if constexpr (kIsFloat<T>) if (std::isnan(best.value)) break;
  }
  return best;
}

// The scalar scan, its choices written as selects (a new best is as likely as not in short
// rows) and NaNs only noted as it goes; if there was one, the first is the answer.
template <bool Max, class T> void arg_scan(const void* src, int64_t n, int64_t base, ReduceAcc* acc) {
  const T* x = static_cast<const T*>(src);
  T best = item(x, 0);
  int64_t at = 0;
  bool nan = false;
  for (int64_t i = 1; i < n; ++i) {
    const T v = item(x, i);
    const bool better = Max ? v > best : v < best;  // false for a NaN
    best = better ? v : best;
    at = better ? i : at;
    if constexpr (kIsFloat<T>) nan |= v != v;
  }
  if constexpr (kIsFloat<T>) {
    if (nan) {  // (a NaN first stays first: nothing compares better with it)
      for (at = 0; !std::isnan(x[at]);) ++at;
      best = x[at];
    }
  }
  std::memcpy(acc->value, &best, sizeof best);
  acc->index = base + at;
}

// From two batches on, a lane at a time; shorter runs by the scalar scan, whose loop is
// kept apart (sharing a function with the batches, it took 1.04-1.09x the time over rows
// of 3-10 float64s).
template <class T> constexpr int64_t kArgMinBatched = 2 * Batch<T>::size;
template <bool Max, class T> void arg_run_batched(const void* src, int64_t n, int64_t base, ReduceAcc* acc) {
  constexpr int64_t W = Batch<T>::size;
  const T* x = static_cast<const T*>(src);
  ArgBest<T> b = arg_pieces<Max, T>(x, n);
  for (int64_t i = n / W * W; i < n; ++i)
    if (replaces<Max>(x[i], b.value)) b = {x[i], i};
  std::memcpy(acc->value, &b.value, sizeof b.value);
  acc->index = base + b.at;
}
template <bool Max, class T> void arg_run(const void* src, int64_t n, int64_t base, ReduceAcc* acc) {
  if constexpr (kIsBool<T>) {  // the first true (argmax) or false (argmin) byte, else item 0
    const int64_t at = first_deciding<Max>(static_cast<const bool*>(src), n);
    const bool best = at < n ? Max : !Max;
    std::memcpy(acc->value, &best, sizeof best);
    acc->index = base + (at < n ? at : 0);
    return;
  }
  if constexpr (kArgBatches<T>)
    if (n >= kArgMinBatched<T>) return arg_run_batched<Max, T>(src, n, base, acc);
  arg_scan<Max, T>(src, n, base, acc);
}

template <bool Max, class T> void arg_combine(ReduceAcc* acc, const ReduceAcc* later) {
  T a, b;
  std::memcpy(&a, acc->value, sizeof a);
  std::memcpy(&b, later->value, sizeof b);
  if (replaces<Max>(b, a)) *acc = *later;
}

// Lanes [h * w, (h + 1) * w) of a comparison as a mask of int64 lanes, w = Batch<int64_t>::size.
template <class T> xsimd::batch_bool<int64_t, Arch> index_lanes(const xsimd::batch_bool<T, Arch>& m, int h) {
  using Mask = xsimd::batch_bool<int64_t, Arch>;
  using Bits = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;
  const Batch<T> set(std::bit_cast<T>(Bits{-1})), clear(T(0));
  const Batch<Bits> bits = xsimd::bitwise_cast<Batch<Bits>>(xsimd::select(m, set, clear));
  if constexpr (sizeof(T) == 8) {
    return bits != Batch<int64_t>(0);
  } else {
#if defined(__AVX512F__)
    return Mask(static_cast<__mmask8>(static_cast<__mmask16>(m) >> (8 * h)));
#elif defined(__AVX2__)
    return Mask(_mm256_cvtepi32_epi64(h ? _mm256_extracti128_si256(bits, 1) : _mm256_castsi256_si128(bits)));
#else
    return Mask(h ? _mm_unpackhi_epi32(bits, bits) : _mm_unpacklo_epi32(bits, bits));
#endif
  }
}

template <bool Max, class T>
void arg_accumulate(void* acc_v, int64_t* acc_index, const void* src_v, const int64_t* src_index, int64_t row,
                    int64_t n) {
  T* acc = static_cast<T*>(acc_v);
  const T* src = static_cast<const T*>(src_v);
  int64_t i = 0;
  if constexpr (kArgBatches<T>) {
    // A register of values at a time and their indices by selects, without a branch:
    // the scalar loop took 4-6x max's time over 1000 rows of 1000 float64s.
    constexpr int64_t W = Batch<T>::size;
    for (; i + W <= n; i += W) {
      const Batch<T> later = Batch<T>::load_unaligned(src + i), best = Batch<T>::load_unaligned(acc + i);
      auto better = Max ? later > best : later < best;
      if constexpr (kIsFloat<T>) better = better || (xsimd::isnan(later) && !xsimd::isnan(best));
      xsimd::select(better, later, best).store_unaligned(acc + i);
      // Branching past registers where nothing was replaced, or lane by lane, mispredicted
      // (each band of rows starts afresh, and its first rows replace as many lanes as not)
      // and ran 1.0-2.5x the scalar loop's time.
      using Index = Batch<int64_t>;
      for (int h = 0; h < static_cast<int>(W / Index::size); ++h) {
        const Index now = Index::load_unaligned(acc_index + i + h * Index::size);
        const Index later_index = src_index ? Index::load_unaligned(src_index + i + h * Index::size) : Index(row);
        xsimd::select(index_lanes(better, h), later_index, now).store_unaligned(acc_index + i + h * Index::size);
      }
    }
  }
  for (; i < n; ++i) {
    if (replaces<Max>(item(src, i), acc[i])) {
      acc[i] = item(src, i);
      acc_index[i] = src_index ? src_index[i] : row;
    }
  }
}

// Src: the operand's items, T's but for bools counted into T.
template <auto Run, class T, class Src = T>
void segments_kernel(const void* src, int64_t n, int64_t count, void* values, int64_t* index) {
  const Src* x = static_cast<const Src*>(src);
  for (int64_t s = 0; s < count; ++s) {
    ReduceAcc acc;
    Run(x + s * n, n, 0, &acc);
    std::memcpy(static_cast<T*>(values) + s, acc.value, sizeof(T));
    if (index) index[s] = acc.index;
  }
}

// Every segment of a call has the same length: one choice of loop for all.
template <bool Max, class T> void arg_segments_kernel(const void* src, int64_t n, int64_t count, void* values, int64_t* index) {
  if constexpr (kArgBatches<T>)
    if (n >= kArgMinBatched<T>) return segments_kernel<&arg_run_batched<Max, T>, T>(src, n, count, values, index);
  if constexpr (kIsBool<T>) return segments_kernel<&arg_run<Max, T>, T>(src, n, count, values, index);
  segments_kernel<&arg_scan<Max, T>, T>(src, n, count, values, index);
}

// Short segments (rows of a few items, one after another), a block of kShortBlock at a time:
// the block's rows are loaded as registers and transposed, so that one register holds an
// item of every row, and the fold runs down the columns. A segment apiece cost a fold
// across a register's lanes and its set-up: 3-7x the time of reading the items.
template <class T> using Bits = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
template <class T> using BlockBatch = xsimd::batch<T, typename ShortReg<Bits<T>>::arch>;
template <class T> constexpr int64_t kShortBlock = BlockBatch<T>::size;

// Segments of up to 128 bytes go by blocks. Longer ones read a segment at a time: over
// arrays in memory, blocks of 24-64 float64s took 1.2-1.5x the time (a block reads its
// rows side by side, several lines apart), though in cache they were as fast or faster.
template <class T> constexpr int64_t kShortSegment = 128 / sizeof(T);

// col[c] = the values of item c of each of the block's rows, row r starting at item at + r * n.
// Products are multiplied a row at a time, then transposed once. (Inlined, so that the
// columns stay in registers: called, they went through memory.)
template <class T> [[gnu::always_inline]] inline void block_columns(const Values<T>& v, int64_t at, int64_t n, BlockBatch<T>* col) {
  using Reg = typename ShortReg<Bits<T>>::type;
  Reg row[kShortBlock<T>], c[kShortBlock<T>];
  load_rows<Reg, kShortBlock<T>>(reinterpret_cast<const char*>(v.x + at), n * static_cast<int64_t>(sizeof(T)), row);
  transpose(row, c);
  for (int64_t k = 0; k < kShortBlock<T>; ++k) col[k] = c[k];
}
template <class T> [[gnu::always_inline]] inline void block_columns(const Products<T>& v, int64_t at, int64_t n, BlockBatch<T>* col) {
  using Reg = typename ShortReg<Bits<T>>::type;
  const auto stride = n * static_cast<int64_t>(sizeof(T));
  Reg x[kShortBlock<T>], y[kShortBlock<T>], c[kShortBlock<T>];
  load_rows<Reg, kShortBlock<T>>(reinterpret_cast<const char*>(v.x + at), stride, x);
  load_rows<Reg, kShortBlock<T>>(reinterpret_cast<const char*>(v.y + at), stride, y);
  for (int64_t k = 0; k < kShortBlock<T>; ++k) x[k] = rounded(BlockBatch<T>(x[k]) * BlockBatch<T>(y[k])).data;
  transpose(x, c);
  for (int64_t k = 0; k < kShortBlock<T>; ++k) col[k] = c[k];
}

// The fold of each of a block's rows (n items each, row r from item at + r * n), in the
// order of NumPy's pairwise sum of a short run: below 8 items one after another; from 8 on,
// item j into partial j % 8, the partials combined as a tree, the items past the last
// eight added after. Reads up to kShortBlock - 1 items past the last row where n is not a
// multiple of kShortBlock.
template <Reduction R, class T, class Src> [[gnu::always_inline]] inline BlockBatch<T> fold_block_rows(const Src& x, int64_t at, int64_t n) {
  using V = BlockBatch<T>;
  constexpr int64_t B = kShortBlock<T>;
  V col[B], r;
  int64_t j = 0;
  if (n >= 8) {
    V part[8];
    for (int64_t p = 0; p < 8; p += B) {
      block_columns(x, at + p, n, col);
      for (int64_t c = 0; c < B; ++c) part[p + c] = col[c];
    }
    for (j = 8; j + 8 <= n; j += 8)
      for (int64_t p = 0; p < 8; p += B) {
        block_columns(x, at + j + p, n, col);
        for (int64_t c = 0; c < B; ++c) part[p + c] = Fold<R>::batch(part[p + c], col[c]);
      }
    auto pair = [](V a, V b) { return Fold<R>::batch(a, b); };
    r = pair(pair(pair(part[0], part[1]), pair(part[2], part[3])), pair(pair(part[4], part[5]), pair(part[6], part[7])));
  }
  for (; j < n; j += B) {  // columns past n hold the next rows' items
    block_columns(x, at + j, n, col);
    for (int64_t c = 0; c < B; ++c)
      if (j + c < n) r = j + c == 0 ? col[c] : Fold<R>::batch(r, col[c]);
  }
  return r;
}

#if defined(__AVX512F__)
// Rows of 2-3 float64s or 2-4 float32s go a register's worth of rows at a time instead (4
// or 8): those rows are n whole registers of memory, and column j comes out of them by
// two-source permutes (AVX-512VL), one per pair of registers, blended. A transpose loads
// as many registers as rows, most crossing a cache line, and shuffles more: in cache it
// took 1.1-2x the time on these rows, and less on longer ones.
template <class T, int64_t N> constexpr bool kByPermutes = N >= 2 && N <= (sizeof(T) == 8 ? 3 : 4);

// Lane r of column j is item r * N + j of the rows' registers: in register (r * N + j) / W.
// Per column and pair of registers p (2p and 2p + 1; the last alone when N is odd): the
// permute's indices into the pair and the lanes it fills.
template <class T, int64_t N> struct ColumnPermutes {
  static constexpr int64_t W = kShortBlock<T>, Pairs = (N + 1) / 2;
  using Index = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;
  struct Table {
    alignas(32) Index index[N][Pairs][W];
    uint32_t lanes[N][Pairs];
  };
  static constexpr Table table = [] {
    Table t{};
    for (int64_t j = 0; j < N; ++j)
      for (int64_t r = 0; r < W; ++r) {
        const int64_t item = r * N + j, p = item / (2 * W);
        t.index[j][p][r] = static_cast<Index>(item - 2 * W * p);
        t.lanes[j][p] |= uint32_t{1} << r;
      }
    return t;
  }();
};

inline __m256d permute_pair(__m256d a, const int64_t* index, __m256d b) {
  return _mm256_permutex2var_pd(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(index)), b);
}
inline __m256 permute_pair(__m256 a, const int32_t* index, __m256 b) {
  return _mm256_permutex2var_ps(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(index)), b);
}
inline __m256d blend_lanes(uint32_t lanes, __m256d a, __m256d b) { return _mm256_mask_blend_pd(static_cast<__mmask8>(lanes), a, b); }
inline __m256 blend_lanes(uint32_t lanes, __m256 a, __m256 b) { return _mm256_mask_blend_ps(static_cast<__mmask8>(lanes), a, b); }

template <class T> BlockBatch<T> short_batch(const Values<T>& v, int64_t i) { return BlockBatch<T>::load_unaligned(v.x + i); }
template <class T> BlockBatch<T> short_batch(const Products<T>& v, int64_t i) {
  return rounded(BlockBatch<T>::load_unaligned(v.x + i) * BlockBatch<T>::load_unaligned(v.y + i));
}

// The fold of each of W rows of N items from item `at` on, in the order fold_block_rows keeps.
template <Reduction R, class T, int64_t N, class Src>
[[gnu::always_inline]] inline BlockBatch<T> fold_rows_by_permutes(const Src& x, int64_t at) {
  using P = ColumnPermutes<T, N>;
  constexpr int64_t W = P::W;
  BlockBatch<T> reg[N], r;
  for (int64_t k = 0; k < N; ++k) reg[k] = short_batch(x, at + k * W);
  for (int64_t j = 0; j < N; ++j) {
    auto col = permute_pair(reg[0].data, P::table.index[j][0], reg[std::min<int64_t>(1, N - 1)].data);
    for (int64_t p = 1; p < P::Pairs; ++p)
      col = blend_lanes(P::table.lanes[j][p], col,
                        permute_pair(reg[2 * p].data, P::table.index[j][p], reg[std::min(2 * p + 1, N - 1)].data));
    r = j == 0 ? BlockBatch<T>(col) : Fold<R>::batch(r, BlockBatch<T>(col));
  }
  return r;
}
#else
template <class T, int64_t N> constexpr bool kByPermutes = false;
#endif

// out[s] = the fold of segment s, for `count` segments of n items, Rows at a time by
// fold(x, at): Rows results for the segments from item `at` on, reading up to `past`
// items beyond them. The blocks whose reads would pass the last segment's end are copied,
// padded, first.
template <int64_t Rows, class T, class Src, class FoldBlock>
[[gnu::always_inline]] inline void fold_segments_by(const Src& x, int64_t n, int64_t past, int64_t count, T* out, FoldBlock fold) {
  int64_t s = 0;
  for (; (s + Rows) * n + past <= count * n; s += Rows) fold(x, s * n).store_unaligned(out + s);
  for (; s < count; s += Rows) {
    const int64_t rows = std::min(Rows, count - s), items = rows * n;
    alignas(64) T copy[2][Rows * kShortSegment<T> + Rows];
    auto padded = [&](T* to, const T* from) {  // the rows past `rows` are zeros, not garbage
      std::memcpy(to, from + s * n, items * sizeof(T));
      std::fill(to + items, to + Rows * n + past, T(0));
      return to;
    };
    alignas(64) T v[Rows];
    if constexpr (std::is_same_v<Src, Products<T>>) fold(Products<T>{padded(copy[0], x.x), padded(copy[1], x.y)}, 0).store_aligned(v);
    else fold(Values<T>{padded(copy[0], x.x)}, 0).store_aligned(v);
    std::memcpy(out + s, v, rows * sizeof(T));
  }
}

// out[s] = the fold of segment s, for `count` segments of 1 <= n <= kShortSegment<T> items
// (N: n as a constant, or 0).
template <Reduction R, class T, int64_t N, class Src> void fold_segments_of(const Src& x, int64_t n_given, int64_t count, T* out) {
  if constexpr (kByPermutes<T, N>) {
    fold_segments_by<kShortBlock<T>>(x, N, 0, count, out,
                                     [](const auto& src, int64_t at) { return fold_rows_by_permutes<R, T, N>(src, at); });
  } else {
    constexpr int64_t B = kShortBlock<T>;
    const int64_t n = N ? N : n_given;
    fold_segments_by<B>(x, n, (n + B - 1) / B * B - n, count, out,
                        [n](const auto& src, int64_t at) { return fold_block_rows<R, T>(src, at, n); });
  }
}

// Rows of up to 16 items fold with their length a constant: the loops over columns unroll
// and the shuffles of the columns past it drop out (1.2-1.6x the speed in cache for 2-12
// float64s). Kept out of line, so that its bulk leaves the longer segments' loop beside it
// as the compiler inlines it alone.
template <Reduction R, class T, class Src> [[gnu::noinline]] void fold_short_segments(const Src& x, int64_t n, int64_t count, T* out) {
  [&]<int64_t... N>(std::integer_sequence<int64_t, N...>) {
    if (!((n == N + 1 && (fold_segments_of<R, T, N + 1>(x, n, count, out), true)) || ...))
      fold_segments_of<R, T, 0>(x, n, count, out);
  }(std::make_integer_sequence<int64_t, 16>{});
}

// out[s] = the fold of segment s of x, for `count` segments of n items one after another.
// Flattened: with fold_batches called out of line per segment, float64 rows of 32 and 64
// items took 1.2x the time in cache and 1.35x over arrays in memory (10^7 items).
template <Reduction R, class T, class Src> [[gnu::flatten]] void fold_long_segments(const Src& x, int64_t n, int64_t count, T* out) {
  for (int64_t s = 0; s < count; ++s) out[s] = fold_memory<R, T>(shifted(x, s * n), n);
}
template <Reduction R, class T, class Src> void fold_segments(const Src& x, int64_t n, int64_t count, T* out) {
  if (n <= kShortSegment<T>) return fold_short_segments<R, T>(x, n, count, out);
  fold_long_segments<R, T>(x, n, count, out);
}

template <Reduction R, class T> void fold_segments_kernel(const void* src, int64_t n, int64_t count, void* values, int64_t*) {
  fold_segments<R, T>(Values<T>{static_cast<const T*>(src)}, n, count, static_cast<T*>(values));
}

template <class T> void products_segments_kernel(const void* x, const void* y, int64_t n, int64_t count, void* values) {
  const T *xs = static_cast<const T*>(x), *ys = static_cast<const T*>(y);
  T* out = static_cast<T*>(values);
  // Rows of x*x read x once; short rows go a block at a time as any products do.
  if (xs == ys && n > kShortSegment<T>) return fold_long_segments<Reduction::sum, T>(Squares<T>{xs}, n, count, out);
  fold_segments<Reduction::sum, T>(Products<T>{xs, ys}, n, count, out);
}

template <Reduction R, DType D> constexpr void fill_reduction(KernelTable& t) {
  using T = typename CType<D>::type;
  ReduceFns& f = t.reduce[static_cast<int>(R)][static_cast<int>(D)];
  if constexpr (R == Reduction::argmin || R == Reduction::argmax) {
    constexpr bool kMax = R == Reduction::argmax;
    f = {&arg_run<kMax, T>, &arg_combine<kMax, T>, &arg_accumulate<kMax, T>};
    f.run_segments = &arg_segments_kernel<kMax, T>;
  } else if constexpr (R == Reduction::any || R == Reduction::all) {
    if constexpr (D == DType::Bool) {
      f = {&fold_run_kernel<R, T>, &fold_combine<R, T>, &fold_accumulate<R, T>};
      f.run_segments = &segments_kernel<&fold_run_kernel<R, T>, T>;
    }
  } else if constexpr (R == Reduction::min || R == Reduction::max || D != DType::Bool) {
    f = {&fold_run_kernel<R, T>, &fold_combine<R, T>, &fold_accumulate<R, T>};
    if constexpr (kIsFloat<T>) {
      f.run_segments = &fold_segments_kernel<R, T>;
      f.blocks_short_segments = true;
      // min and max stay row by row: NaN's select lengthens each chain, and a check beside a
      // plain max chain cost more than grouping saved (rows of 1000 and of 20000, float64).
      if constexpr (R == Reduction::sum || R == Reduction::prod) f.accumulate_rows = &fold_accumulate_rows<R, T>;
    } else f.run_segments = &segments_kernel<&fold_run_kernel<R, T>, T>;
    if constexpr (R == Reduction::sum && (D == DType::Int64 || D == DType::Float64)) {
      ReduceFns& c = t.count_bools[static_cast<int>(D)];
      c = {&count_run_kernel<T>, f.combine, &count_accumulate_kernel<T>};
      c.run_segments = &segments_kernel<&count_run_kernel<T>, T, uint8_t>;
      c.blocks_short_segments = f.blocks_short_segments;
    }
    if constexpr (R == Reduction::sum && kIsFloat<T>) {
      f.run_products = &sum_products_kernel<T>;
      f.run_products_segments = &products_segments_kernel<T>;
      f.accumulate_products = &accumulate_products_kernel<T>;
      f.accumulate_deviations = &accumulate_deviations_kernel<T>;
      f.divide = &divide_kernel<T>;
      f.run_deviations = &sum_deviations_kernel<T>;
    }
  }
}

template <Reduction R, size_t... D> constexpr void fill_reduction_dtypes(KernelTable& t, std::index_sequence<D...>) {
  if constexpr (reduction_info(R).kernel) (fill_reduction<R, static_cast<DType>(D)>(t), ...);
}

// With Sqrt, the chain's result's square root (chain_sqrt).
template <Op First, Op Second, int Position, bool Sqrt> struct Chain {
  template <class T> static T scalar(T x, T y, T z) {
    T t = rounded(Impl<First>::scalar(x, y));
    T r = Position == 0 ? Impl<Second>::scalar(t, z) : Impl<Second>::scalar(z, t);
    if constexpr (Sqrt) return Impl<Op::sqrt>::scalar(rounded(r));
    else return r;
  }
  template <class V> static V batch(V x, V y, V z) {
    V t = rounded(Impl<First>::batch(x, y));
    V r = Position == 0 ? Impl<Second>::batch(t, z) : Impl<Second>::batch(z, t);
    if constexpr (Sqrt) return Impl<Op::sqrt>::batch(rounded(r));
    else return r;
  }
};

template <Op A, Op Second, Op B, bool Sqrt> struct Tree {
  template <class T> static T scalar(T w, T x, T y, T z) {
    T t = Impl<Second>::scalar(rounded(Impl<A>::scalar(w, x)), rounded(Impl<B>::scalar(y, z)));
    if constexpr (Sqrt) return Impl<Op::sqrt>::scalar(rounded(t));
    else return t;
  }
  template <class V> static V batch(V w, V x, V y, V z) {
    V t = Impl<Second>::batch(rounded(Impl<A>::batch(w, x)), rounded(Impl<B>::batch(y, z)));
    if constexpr (Sqrt) return Impl<Op::sqrt>::batch(rounded(t));
    else return t;
  }
};

// xsimd's != is ordered (false for NaN); NumPy's is true for NaN, hence !(x == y).
template <Op Compare> struct WhereCompare {
  template <class T> static T scalar(T x, T y, T a, T b) { return Impl<Compare>::scalar(x, y) ? a : b; }
  template <class V> static V batch(V x, V y, V a, V b) {
    if constexpr (Compare == Op::less) return xsimd::select(x < y, a, b);
    else if constexpr (Compare == Op::less_equal) return xsimd::select(x <= y, a, b);
    else if constexpr (Compare == Op::greater) return xsimd::select(x > y, a, b);
    else if constexpr (Compare == Op::greater_equal) return xsimd::select(x >= y, a, b);
    else if constexpr (Compare == Op::equal) return xsimd::select(x == y, a, b);
    else return xsimd::select(x == y, b, a);
  }
};

template <size_t... I> void fill_where_compare(KernelTable& t, std::index_sequence<I...>) {
  constexpr auto masks = std::make_index_sequence<kNumWhereMasks>{};
  ((t.where_compare[I][0] = &kernel<WhereCompare<kCompareOps[I]>, float, 4>,
    t.where_compare[I][1] = &kernel<WhereCompare<kCompareOps[I]>, double, 4>,
    fill_scalar_variants<WhereCompare<kCompareOps[I]>, float, 4, kWhereMasks>(t.where_compare_scalar[I][0], masks),
    fill_scalar_variants<WhereCompare<kCompareOps[I]>, double, 4, kWhereMasks>(t.where_compare_scalar[I][1], masks)),
   ...);
}

// where(compare(x, y), op(p, q), r) (Branch 0) or where(compare(x, y), p, op(q, r)).
template <Op Compare, Op Arith, int Branch> struct WhereCompareOp {
  template <class T> static T scalar(T x, T y, T p, T q, T r) {
    if constexpr (Branch == 0) return WhereCompare<Compare>::scalar(x, y, Impl<Arith>::scalar(p, q), r);
    else return WhereCompare<Compare>::scalar(x, y, p, Impl<Arith>::scalar(q, r));
  }
  template <class V> static V batch(V x, V y, V p, V q, V r) {
    if constexpr (Branch == 0) return WhereCompare<Compare>::batch(x, y, Impl<Arith>::batch(p, q), r);
    else return WhereCompare<Compare>::batch(x, y, p, Impl<Arith>::batch(q, r));
  }
};

template <size_t... I> void fill_where_compare_op(KernelTable& t, std::index_sequence<I...>) {
  // I = ((compare * 4) + op) * 2 + branch
  constexpr auto masks = std::make_index_sequence<kNumWhereOpMasks>{};
  ((t.where_compare_op[I / 8][I / 2 % 4][I % 2][0] =
        &kernel<WhereCompareOp<kCompareOps[I / 8], kChainOps[I / 2 % 4], I % 2>, float, 5>,
    t.where_compare_op[I / 8][I / 2 % 4][I % 2][1] =
        &kernel<WhereCompareOp<kCompareOps[I / 8], kChainOps[I / 2 % 4], I % 2>, double, 5>,
    fill_scalar_variants<WhereCompareOp<kCompareOps[I / 8], kChainOps[I / 2 % 4], I % 2>, float, 5, kWhereOpMasks>(
        t.where_compare_op_scalar[I / 8][I / 2 % 4][I % 2][0], masks),
    fill_scalar_variants<WhereCompareOp<kCompareOps[I / 8], kChainOps[I / 2 % 4], I % 2>, double, 5, kWhereOpMasks>(
        t.where_compare_op_scalar[I / 8][I / 2 % 4][I % 2][1], masks)),
   ...);
}

// The chains' scalar-operand variants (chain_scalar); I as in fill_chains.
template <size_t... I> void fill_chain_scalars(KernelTable& t, std::index_sequence<I...>) {
  constexpr auto masks = std::make_index_sequence<kNumChainMasks>{};
  (fill_scalar_variants<Chain<kChainOps[I / 8], kChainOps[I / 2 % 4], I % 2, false>, float, 3, kChainMasks>(
       t.chain_scalar[I / 8][I / 2 % 4][I % 2][0], masks),
   ...);
  (fill_scalar_variants<Chain<kChainOps[I / 8], kChainOps[I / 2 % 4], I % 2, false>, double, 3, kChainMasks>(
       t.chain_scalar[I / 8][I / 2 % 4][I % 2][1], masks),
   ...);
}

template <bool Sqrt, size_t... I> void fill_chains(KernelFn (&t)[4][4][2][2], std::index_sequence<I...>) {
  // I = ((first * 4) + second) * 2 + position
  ((t[I / 8][I / 2 % 4][I % 2][0] = &kernel<Chain<kChainOps[I / 8], kChainOps[I / 2 % 4], I % 2, Sqrt>, float, 3>,
    t[I / 8][I / 2 % 4][I % 2][1] = &kernel<Chain<kChainOps[I / 8], kChainOps[I / 2 % 4], I % 2, Sqrt>, double, 3>),
   ...);
}

template <bool Sqrt, size_t... I> void fill_trees(KernelFn (&t)[4][4][4][2], std::index_sequence<I...>) {
  // I = (a * 4 + second) * 4 + b
  ((t[I / 16][I / 4 % 4][I % 4][0] = &kernel<Tree<kChainOps[I / 16], kChainOps[I / 4 % 4], kChainOps[I % 4], Sqrt>, float, 4>,
    t[I / 16][I / 4 % 4][I % 4][1] = &kernel<Tree<kChainOps[I / 16], kChainOps[I / 4 % 4], kChainOps[I % 4], Sqrt>, double, 4>),
   ...);
}

// The generators: creation (fill_creation_kernels) and random (backends/random,
// fill_random_kernels).
#include "creation_impl.hpp"
#include "random_impl.hpp"

inline KernelTable make_table(const char* isa) {
  KernelTable t{};
  t.isa = isa;
  fill_chains<false>(t.chain, std::make_index_sequence<32>{});
  fill_chains<true>(t.chain_sqrt, std::make_index_sequence<32>{});
  fill_chain_scalars(t, std::make_index_sequence<32>{});
  fill_trees<false>(t.tree, std::make_index_sequence<64>{});
  fill_trees<true>(t.tree_sqrt, std::make_index_sequence<64>{});
  fill_where_compare(t, std::make_index_sequence<6>{});
  fill_where_compare_op(t, std::make_index_sequence<48>{});
#define KILN_OP(id, name, symbol, arity, rule) fill_all_dtypes<Op::id>(t, AllDTypes{});
#include "ops.def"
#undef KILN_OP
  fill_all_casts(t, AllDTypes{});
  fill_creation_kernels(t);
#define KILN_REDUCTION(id, name, kernel, ddof) fill_reduction_dtypes<Reduction::id>(t, AllDTypes{});
#include "reductions.def"
#undef KILN_REDUCTION
  fill_random_kernels(t);
  return t;
}

}  // namespace kiln::simd::KILN_SIMD_NS

// The accessor dispatch.cpp calls: kernels_<isa>().
namespace kiln::simd {
const KernelTable& KILN_PASTE(kernels, KILN_SIMD_NAME)() {
  static const KernelTable table = KILN_SIMD_NS::make_table(KILN_SIMD_NAME_STRING);
  return table;
}
}  // namespace kiln::simd
