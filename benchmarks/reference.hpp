// The expressions of `kiln bench --suite`, and the references kiln is measured against:
// a hand-written fused loop (compiler-vectorised; sin, cos, exp, log1p from glibc's
// vector math library, libmvec) and xtensor's lazy evaluation (xsimd). Both are
// single-threaded and compiled for AVX2 + FMA: call them only where the CPU has AVX2.
#pragma once
#include <cstdint>

namespace kiln::bench {

// Operands by case: a, b, c are n elements (Strided: `a` has 2n, read at stride 2;
// Broadcast: a is (n/1000, 1000) and b is its (1000,) row; Transposed: a is (1000, n/1000)
// read as its transpose, b is (n/1000, 1000)); `o` gets n elements (Dot: 1).
enum class Case { Fma, Poly, Hypot, Where, SinCos, ExpLog, Dot, Strided, Broadcast, Transposed };

struct CaseInfo {
  Case id;
  const char* name;     // as the table shows it
  const char* expr;     // as kiln reads it, over a, b, c bound as described above
  int streams;          // arrays of n elements read and written: the bytes a loop must move
  bool compute_bound;   // transcendental functions: measured against the hand loop, not memory
};

inline constexpr CaseInfo kCases[] = {
    {Case::Fma, "a*b + c", "a*b + c", 4, false},
    {Case::Poly, "2*a + 3*b*c - 1.5", "2*a + 3*b*c - 1.5", 4, false},
    {Case::Hypot, "sqrt(a*a + b*b)", "sqrt(a*a + b*b)", 3, false},
    {Case::Where, "where(a > 0, a, 0.1*a)", "where(a > 0, a, 0.1*a)", 2, false},
    {Case::SinCos, "sin(a)**2 + cos(b)**2", "sin(a)**2 + cos(b)**2", 3, true},
    {Case::ExpLog, "exp(-a) * log1p(b)", "exp(-a) * log1p(b)", 3, true},
    {Case::Dot, "sum(a*b)", "sum(a*b)", 2, false},
    {Case::Strided, "a[::2]*2 + b", "a*2 + b", 4, false},  // a's lines are read whole
    {Case::Broadcast, "m + row (n/1000 x 1000)", "a + b", 2, false},
    {Case::Transposed, "a.T + b (n/1000 x 1000)", "a + b", 3, false},
};

void hand_loop(Case c, const double* a, const double* b, const double* cc, double* o, int64_t n);
void hand_loop(Case c, const float* a, const float* b, const float* cc, float* o, int64_t n);
void xtensor_eval(Case c, const double* a, const double* b, const double* cc, double* o, int64_t n);
void xtensor_eval(Case c, const float* a, const float* b, const float* cc, float* o, int64_t n);

// The core's AVX2 FMA throughput: float64 (or float32) flops of `iterations` rounds of 12
// independent 256-bit FMA chains, all in registers. Run on every core at once it is the
// machine's measured peak, at the clock the cores really hold under FMA load (the one
// /proc/cpuinfo reports is the base clock, not the boost a busy core runs at).
double fma_flops(bool f32, int64_t iterations);

}  // namespace kiln::bench
