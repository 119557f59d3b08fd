// Tests for the random generators' kernels (backends/random): the scalar Philox4x32-10
// against published answers and Random123; every instruction set's kernels against a
// scalar reference of the formulas in kernels.hpp built on Random123 (bit for bit, except
// normal's libm functions: a tight tolerance there); the same bits however a range is cut
// into calls; and statistical checks that a broken generator fails.
//
// The statistical checks use fixed seeds, so they pass or fail the same way every run.
// Each threshold is where a correct generator's statistic would land with probability
// about 1e-6 or less (two-sided z of 5: 5.7e-7; chi-square p-values below 1e-6), so a
// change of the stream has a chance of that order to trip one by bad luck.
#include <catch2/catch.hpp>

#include <Random123/philox.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "philox.hpp"

using namespace kiln;
using namespace kiln::simd;

namespace {

// --- the reference: kernels.hpp's formulas, one element at a time, on Random123 ---------

// The value as computed: keeps the compiler from contracting a * b + c into one fused
// multiply-add, which would round once where the formula rounds twice.
double as_rounded(double v) {
  asm("" : "+x"(v));
  return v;
}

r123::Philox4x32::ctr_type ref_block(uint64_t seed, uint64_t block, uint32_t attempt = 0) {
  r123::Philox4x32 philox;
  r123::Philox4x32::ctr_type ctr = {{uint32_t(block), uint32_t(block >> 32), attempt, 0}};
  r123::Philox4x32::key_type key = {{uint32_t(seed), uint32_t(seed >> 32)}};
  return philox(ctr, key);
}
uint32_t ref_word(uint64_t seed, uint64_t w) { return ref_block(seed, w / 4)[w % 4]; }
uint64_t ref_draw(uint64_t seed, uint64_t j, uint32_t attempt = 0) {
  auto b = ref_block(seed, j / 2, attempt);
  return uint64_t(b[2 * (j % 2)]) | uint64_t(b[2 * (j % 2) + 1]) << 32;
}
double ref_u53(uint64_t seed, uint64_t j) { return double(ref_draw(seed, j) >> 11) * 0x1p-53; }

double ref_uniform_f64(const GenParams& p, uint64_t i) {
  double v = p.f[0] + as_rounded(p.f[1] * ref_u53(p.seed, i));
  return std::min(v, p.f[2]);
}
float ref_uniform_f32(const GenParams& p, uint64_t i) {
  double u24 = double(ref_word(p.seed, i) >> 8) * 0x1p-24;
  float v = float(p.f[0] + as_rounded(p.f[1] * u24));
  return std::min(v, float(p.f[2]));
}
double ref_normal(const GenParams& p, uint64_t i, double* scale = nullptr) {
  uint64_t j = i / 2;
  double u1 = 1 - ref_u53(p.seed, 2 * j), u2 = ref_u53(p.seed, 2 * j + 1);
  double r = std::sqrt(-2 * std::log(u1)), t = 2 * M_PI * u2;
  if (scale) *scale = std::fabs(p.f[0]) + std::fabs(p.f[1]) * r;
  double a = as_rounded(p.f[1] * r);
  return p.f[0] + as_rounded(a * (i % 2 == 0 ? std::cos(t) : std::sin(t)));
}
// Also counts the draws refused (attempts beyond the first).
int64_t ref_integer(const GenParams& p, uint64_t i, int64_t* refused = nullptr) {
  uint64_t range = uint64_t(p.i[1]);
  uint64_t threshold = (0 - range) % range;
  unsigned __int128 m = (unsigned __int128)ref_draw(p.seed, i) * range;
  for (uint32_t attempt = 1; uint64_t(m) < threshold; ++attempt) {
    m = (unsigned __int128)ref_draw(p.seed, i, attempt) * range;
    if (refused) ++*refused;
  }
  return int64_t(uint64_t(p.i[0]) + uint64_t(m >> 64));
}
bool ref_bernoulli(const GenParams& p, uint64_t i) { return ref_u53(p.seed, i) < p.f[0]; }

// --- parameters, as the planner prepares them ------------------------------------------

GenParams uniform_params(uint64_t seed, double lo, double hi, bool f32) {
  GenParams p{};
  p.seed = seed;
  p.f[0] = lo;
  p.f[1] = hi - lo;
  p.f[2] = f32 ? double(std::nextafter(float(hi), -std::numeric_limits<float>::infinity()))
               : std::nextafter(hi, -std::numeric_limits<double>::infinity());
  return p;
}
GenParams normal_params(uint64_t seed, double mean, double sd) {
  GenParams p{};
  p.seed = seed;
  p.f[0] = mean;
  p.f[1] = sd;
  return p;
}
GenParams integer_params(uint64_t seed, int64_t lo, uint64_t range) {
  GenParams p{};
  p.seed = seed;
  p.i[0] = lo;
  p.i[1] = int64_t(range);
  return p;
}
GenParams bernoulli_params(uint64_t seed, double prob) {
  GenParams p{};
  p.seed = seed;
  p.f[0] = prob;
  return p;
}

// --- running a kernel --------------------------------------------------------------------

template <class T> std::vector<T> generate(GenFn f, const GenParams& p, int64_t first, int64_t step, int64_t n) {
  // One element of slack on each side, which the kernel must leave alone.
  std::vector<T> buf(size_t(n) + 2);
  std::memset(static_cast<void*>(buf.data()), 0x5A, buf.size() * sizeof(T));
  f(p, first, step, n, buf.data() + 1);
  std::vector<T> guard(1);
  std::memset(static_cast<void*>(guard.data()), 0x5A, sizeof(T));
  REQUIRE(std::memcmp(&buf[0], &guard[0], sizeof(T)) == 0);
  REQUIRE(std::memcmp(&buf[size_t(n) + 1], &guard[0], sizeof(T)) == 0);
  return std::vector<T>(buf.begin() + 1, buf.end() - 1);
}

// The same elements 0 .. n - 1 made by calls of pseudo-random sizes (1 to ~700, some single
// elements), each starting where the last ended.
template <class T> std::vector<T> generate_in_pieces(GenFn f, const GenParams& p, int64_t n, uint64_t salt) {
  std::vector<T> out(static_cast<size_t>(n));
  uint64_t s = salt;
  for (int64_t k = 0; k < n;) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    int64_t len = (s >> 33) % 4 == 0 ? 1 : int64_t((s >> 40) % 700) + 1;
    len = std::min(len, n - k);
    f(p, k, 1, len, out.data() + k);
    k += len;
  }
  return out;
}

template <class T> bool same_bits(const T& a, const T& b) { return std::memcmp(&a, &b, sizeof(T)) == 0; }

// Index of the first element whose bits differ, or -1.
template <class T> int64_t first_difference(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (!same_bits(a[i], b[i])) return int64_t(i);
  return -1;
}

const KernelTable& table(const std::string& isa) {
  const KernelTable* t = table_for(isa);
  REQUIRE(t != nullptr);
  return *t;
}
GenFn kernel_of(const std::string& isa, Gen g, DType d) {
  GenFn f = table(isa).generate[int(g)][int(d)];
  REQUIRE(f != nullptr);
  return f;
}

// A few call shapes checked against the reference: from 0, from an odd and an even offset
// (one past 2^33, so block numbers use their high word), and strided from odd and even.
struct Shape {
  int64_t first, step, n;
};
const Shape kShapes[] = {{0, 1, 3000}, {1, 1, 1001}, {0x200000001ll, 1, 517}, {0x200000002ll, 1, 130},
                         {7, 2, 400},  {4, 3, 400},  {3, 7, 301},          {1000000, 1, 1}};

template <class T, class Ref> void check_against_reference(GenFn f, const GenParams& p, Ref ref) {
  for (const Shape& s : kShapes) {
    INFO("first " << s.first << " step " << s.step << " n " << s.n);
    std::vector<T> got = generate<T>(f, p, s.first, s.step, s.n);
    int64_t bad = -1;
    for (int64_t k = 0; k < s.n && bad < 0; ++k)
      if (!same_bits(got[size_t(k)], T(ref(p, uint64_t(s.first + k * s.step))))) bad = k;
    INFO("first differing element: k = " << bad);
    CHECK(bad == -1);
  }
}

// One call of n versus calls of random sizes, offsets and strides, all bit for bit.
template <class T> void check_cuts(GenFn f, const GenParams& p) {
  const int64_t n = 20000;
  std::vector<T> whole = generate<T>(f, p, 0, 1, n);
  CHECK(first_difference(generate_in_pieces<T>(f, p, n, 1), whole) == -1);
  CHECK(first_difference(generate_in_pieces<T>(f, p, n, 2), whole) == -1);
  for (int64_t first : {1, 2, 3, 64, 127, 4097}) {
    for (int64_t step : {1, 2, 3, 7}) {
      INFO("first " << first << " step " << step);
      const int64_t count = (n - first + step - 1) / step;
      std::vector<T> got = generate<T>(f, p, first, step, count);
      int64_t bad = -1;
      for (int64_t k = 0; k < count && bad < 0; ++k)
        if (!same_bits(got[size_t(k)], whole[size_t(first + k * step)])) bad = k;
      CHECK(bad == -1);
    }
  }
}

// --- statistics ----------------------------------------------------------------------------

// The regularized upper incomplete gamma function Q(a, x): a series below a + 1, a
// continued fraction (modified Lentz) above. Chi-square with k degrees: p = Q(k/2, x/2).
double upper_gamma_q(double a, double x) {
  if (x <= 0) return 1;
  const double log_front = a * std::log(x) - x - std::lgamma(a);
  if (x < a + 1) {
    double term = 1 / a, sum = term;
    for (int n = 1; n < 1000 && std::fabs(term) > sum * 1e-16; ++n) sum += term *= x / (a + n);
    return 1 - sum * std::exp(log_front);
  }
  const double tiny = 1e-300;
  double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (int i = 1; i < 1000; ++i) {
    double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < tiny) d = tiny;
    c = b + an / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1) < 1e-16) break;
  }
  return std::exp(log_front) * h;
}

// Chi-square's p-values for counts against equal expectations: {upper tail, lower tail}.
// A generator can fail either way: clumped (upper) or too even (lower).
std::pair<double, double> chi_square_p(const std::vector<int64_t>& counts, int64_t total) {
  const double expected = double(total) / double(counts.size());
  double x = 0;
  for (int64_t c : counts) x += (double(c) - expected) * (double(c) - expected) / expected;
  double upper = upper_gamma_q((double(counts.size()) - 1) / 2, x / 2);
  return {upper, 1 - upper};
}

constexpr double kZ = 5;       // |z| < 5: a correct generator fails with p = 5.7e-7
constexpr double kP = 1e-6;    // chi-square tails
constexpr int64_t kStatN = 1000000;

}  // namespace

// --- the scalar Philox ----------------------------------------------------------------------

// The known-answer vectors of Random123's kat_vectors (philox4x32_10), at compile time.
static_assert(random::philox4x32_10({{0, 0, 0, 0}}, {{0, 0}}).w[0] == 0x6627e8d5u);

TEST_CASE("scalar Philox4x32-10 gives the published known answers", "[random]") {
  struct Kat {
    random::PhiloxBlock counter;
    random::PhiloxKey key;
    uint32_t expect[4];
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, {{0, 0}}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, {{0xffffffff, 0xffffffff}},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, {{0xa4093822, 0x299f31d0}},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& k : kats) {
    random::PhiloxBlock out = random::philox4x32_10(k.counter, k.key);
    for (int i = 0; i < 4; ++i) CHECK(out.w[i] == k.expect[i]);
  }
}

TEST_CASE("scalar Philox4x32-10 agrees with Random123 on pseudo-random counters and keys", "[random]") {
  uint64_t s = 0x9E3779B97F4A7C15ull;
  auto next = [&] {  // splitmix64
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  r123::Philox4x32 philox;
  int mismatches = 0;
  for (int n = 0; n < 5000; ++n) {
    uint64_t a = next(), b = next(), c = next();
    random::PhiloxBlock ctr = {{uint32_t(a), uint32_t(a >> 32), uint32_t(b), uint32_t(b >> 32)}};
    random::PhiloxKey key = {{uint32_t(c), uint32_t(c >> 32)}};
    random::PhiloxBlock mine = random::philox4x32_10(ctr, key);
    auto ref = philox(r123::Philox4x32::ctr_type{{ctr.w[0], ctr.w[1], ctr.w[2], ctr.w[3]}},
                      r123::Philox4x32::key_type{{key.k[0], key.k[1]}});
    for (int i = 0; i < 4; ++i) mismatches += mine.w[i] != ref[i];
  }
  CHECK(mismatches == 0);
  // The stream helpers: draw j is words 2j, 2j+1 of the stream.
  for (uint64_t j : {0ull, 1ull, 2ull, 3ull, 12345ull, 0x3ffffffffull}) {
    CHECK(random::philox_draw(random::philox_key(0x0123456789abcdefull), j) == ref_draw(0x0123456789abcdefull, j));
    CHECK(random::philox_draw(random::philox_key(42), j, 3) == ref_draw(42, j, 3));
  }
}

// --- every instruction set's kernels against the reference --------------------------------

TEST_CASE("every random kernel is set, and only for the dtypes its generator makes", "[random]") {
  for (const std::string& isa : available_isas()) {
    INFO(isa);
    for (Gen g : {Gen::uniform, Gen::normal, Gen::integers, Gen::bernoulli})
      for (int d = 0; d < kNumDTypes; ++d) CHECK((table(isa).generate[int(g)][d] != nullptr) == gen_makes(g, DType(d)));
  }
}

TEST_CASE("uniform kernels equal the formula bit for bit", "[random]") {
  struct Range {
    double lo, hi;
  };
  // [0, 1); a negative span; ranges where lo + (hi - lo) u rounds up to hi for a share of
  // the draws (float64: at 2^52 the spacing is 1; float32: at 1e6 it is 1/16).
  const Range f64_ranges[] = {{0, 1}, {-3.5, 1e-3}, {0x1p52, 0x1p52 + 1}, {1, 2}, {-1e300, 1e300}};
  const Range f32_ranges[] = {{0, 1}, {-3.5, 1e-3}, {1e6, 1e6 + 1}, {1, 2}, {-1e30, 1e30}};
  for (const std::string& isa : available_isas()) {
    INFO(isa);
    for (const Range& r : f64_ranges) {
      INFO("float64 [" << r.lo << ", " << r.hi << ")");
      check_against_reference<double>(kernel_of(isa, Gen::uniform, DType::Float64),
                                      uniform_params(0x5eed, r.lo, r.hi, false), ref_uniform_f64);
    }
    for (const Range& r : f32_ranges) {
      INFO("float32 [" << r.lo << ", " << r.hi << ")");
      check_against_reference<float>(kernel_of(isa, Gen::uniform, DType::Float32),
                                     uniform_params(0xfeedbeefcafe, r.lo, r.hi, true), ref_uniform_f32);
    }
  }
}

TEST_CASE("integers kernels equal Lemire's method bit for bit, rejections included", "[random]") {
  struct Range {
    int64_t lo;
    uint64_t range;
  };
  const Range ranges64[] = {
      {0, 1},                                          // one value
      {-5, 11},                                        // small and odd
      {1000, 6},                                       // small and even
      {0, 1000000007},                                 // a large prime
      {std::numeric_limits<int64_t>::min(), ~0ull},    // the whole int64 span but one value
      {-(1ll << 62), (1ull << 63) + 1},                // near 2^63: about half the draws refused
      {7, (1ull << 63) + (1ull << 62) + 12345},        // huge
  };
  const Range ranges32[] = {{0, 1}, {-5, 11}, {std::numeric_limits<int32_t>::min(), 0xffffffffull}, {-100, 1u << 31}};
  // The near-2^63 range must really exercise rejections, repeated ones too.
  {
    int64_t refused = 0;
    for (uint64_t i = 0; i < 3000; ++i) ref_integer(integer_params(0x1234, ranges64[5].lo, ranges64[5].range), i, &refused);
    CHECK(refused > 1000);
  }
  for (const std::string& isa : available_isas()) {
    INFO(isa);
    for (const Range& r : ranges64) {
      INFO("int64 lo " << r.lo << " range " << r.range);
      check_against_reference<int64_t>(kernel_of(isa, Gen::integers, DType::Int64), integer_params(0x1234, r.lo, r.range),
                                       [](const GenParams& p, uint64_t i) { return ref_integer(p, i); });
    }
    for (const Range& r : ranges32) {
      INFO("int32 lo " << r.lo << " range " << r.range);
      check_against_reference<int32_t>(kernel_of(isa, Gen::integers, DType::Int32), integer_params(99, r.lo, r.range),
                                       [](const GenParams& p, uint64_t i) { return int32_t(ref_integer(p, i)); });
    }
  }
}

TEST_CASE("bernoulli kernels equal u53 < p bit for bit", "[random]") {
  for (const std::string& isa : available_isas()) {
    INFO(isa);
    for (double prob : {0.0, 1.0, 0.3, 1e-9, 0.999999, -1.0, 2.0}) {
      INFO("p = " << prob);
      GenFn f = kernel_of(isa, Gen::bernoulli, DType::Bool);
      // Bytes, not std::vector<bool>: each must be a valid bool, 0 or 1.
      check_against_reference<uint8_t>(f, bernoulli_params(77, prob), ref_bernoulli);
    }
  }
}

TEST_CASE("bernoulli is exact where p is an element's own u53 or the next double up", "[random]") {
  // u53 < p decides at p = u53 (false) and one double above it (true), where p 2^53 is
  // no longer a whole number: what an integer comparison must round the right way.
  for (const std::string& isa : available_isas()) {
    INFO(isa);
    GenFn f = kernel_of(isa, Gen::bernoulli, DType::Bool);
    for (uint64_t e : {0ull, 5ull, 1234ull, 99999ull}) {
      const double u = ref_u53(77, e);
      INFO("element " << e << " u53 " << u);
      CHECK(generate<uint8_t>(f, bernoulli_params(77, u), int64_t(e), 1, 1)[0] == 0);
      CHECK(generate<uint8_t>(f, bernoulli_params(77, std::nextafter(u, 2.0)), int64_t(e), 1, 1)[0] == 1);
      CHECK(generate<uint8_t>(f, bernoulli_params(77, std::nextafter(u, 2.0)), int64_t(e), 3, 1)[0] == 1);
    }
  }
}

TEST_CASE("normal kernels are Box-Muller within a tight tolerance of libm's", "[random]") {
  for (const std::string& isa : available_isas()) {
    INFO(isa);
    GenFn f64 = kernel_of(isa, Gen::normal, DType::Float64);
    GenFn f32 = kernel_of(isa, Gen::normal, DType::Float32);
    struct Dist {
      double mean, sd;
    };
    for (Dist d : {Dist{0, 1}, Dist{10, 0.5}, Dist{-3, 1e5}}) {
      INFO("mean " << d.mean << " std " << d.sd);
      GenParams p = normal_params(0xabcdef, d.mean, d.sd);
      for (const Shape& s : kShapes) {
        INFO("first " << s.first << " step " << s.step);
        std::vector<double> got = generate<double>(f64, p, s.first, s.step, s.n);
        double worst = 0;  // error in units of the result's scale, |mean| + |std| r
        for (int64_t k = 0; k < s.n; ++k) {
          double scale;
          double ref = ref_normal(p, uint64_t(s.first + k * s.step), &scale);
          worst = std::max(worst, std::fabs(got[size_t(k)] - ref) / scale);
        }
        CHECK(worst < 1e-15);  // 4.5 ulp of the scale; measured: 1.3 ulp
        // float32 is the float64 value rounded, bit for bit.
        std::vector<float> got32 = generate<float>(f32, p, s.first, s.step, s.n);
        int64_t bad = -1;
        for (int64_t k = 0; k < s.n && bad < 0; ++k)
          if (!same_bits(got32[size_t(k)], float(got[size_t(k)]))) bad = k;
        CHECK(bad == -1);
      }
    }
    // With mean 0 and std 1 the error is small relative to each value, even near cos t = 0.
    std::vector<double> got = generate<double>(f64, normal_params(5, 0, 1), 0, 1, 100000);
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      double ref = ref_normal(normal_params(5, 0, 1), i);
      if (ref != 0) worst = std::max(worst, std::fabs(got[i] - ref) / std::fabs(ref));
    }
    CHECK(worst < 2e-15);  // 9 ulp; measured: 2.7 ulp
  }
}

TEST_CASE("random kernels give the same bits however a range is cut into calls", "[random]") {
  for (const std::string& isa : available_isas()) {
    INFO(isa);
    {
      check_cuts<double>(kernel_of(isa, Gen::uniform, DType::Float64), uniform_params(1, -2, 3, false));
      check_cuts<float>(kernel_of(isa, Gen::uniform, DType::Float32), uniform_params(1, -2, 3, true));
    }
    {
      check_cuts<double>(kernel_of(isa, Gen::normal, DType::Float64), normal_params(2, 1, 2));
      check_cuts<float>(kernel_of(isa, Gen::normal, DType::Float32), normal_params(2, 1, 2));
    }
    {
      check_cuts<int64_t>(kernel_of(isa, Gen::integers, DType::Int64), integer_params(3, -7, (1ull << 63) + 1));
      check_cuts<int32_t>(kernel_of(isa, Gen::integers, DType::Int32), integer_params(3, -7, 1000));
    }
    check_cuts<uint8_t>(kernel_of(isa, Gen::bernoulli, DType::Bool), bernoulli_params(4, 0.3));
    {  // n = 0 writes nothing
      for (Gen g : {Gen::uniform, Gen::normal, Gen::integers, Gen::bernoulli})
        for (int d = 0; d < kNumDTypes; ++d)
          if (GenFn f = table(isa).generate[int(g)][d]) {
            unsigned char byte = 0xA5;
            f(normal_params(1, 0, 1), 5, 1, 0, &byte);
            f(normal_params(1, 0, 1), 5, 3, 0, &byte);
            CHECK(byte == 0xA5);
          }
    }
  }
}

// --- statistics ----------------------------------------------------------------------------

TEST_CASE("uniform draws are uniform: mean and chi-square on 100 bins", "[random]") {
  for (const std::string& isa : available_isas()) {
    INFO(isa);
    std::vector<double> u = generate<double>(kernel_of(isa, Gen::uniform, DType::Float64), uniform_params(2024, 0, 1, false),
                                             0, 1, kStatN);
    double sum = 0;
    std::vector<int64_t> bins(100);
    int64_t outside = 0;  // draws outside [0, 1), checked once below
    for (double x : u) {
      if (!(x >= 0 && x < 1)) {
        ++outside;
        continue;
      }
      sum += x;
      ++bins[size_t(x * 100)];
    }
    REQUIRE(outside == 0);
    const double mean = sum / kStatN, sd = std::sqrt(1.0 / 12 / kStatN);
    CHECK(std::fabs(mean - 0.5) < kZ * sd);
    auto [upper, lower] = chi_square_p(bins, kStatN);
    CHECK(upper > kP);
    CHECK(lower > kP);
    // float32 too (its own 24-bit draws from single words).
    std::vector<float> f = generate<float>(kernel_of(isa, Gen::uniform, DType::Float32), uniform_params(2024, 0, 1, true), 0,
                                           1, kStatN);
    std::fill(bins.begin(), bins.end(), 0);
    for (float x : f) {
      if (x >= 0 && x < 1) ++bins[size_t(double(x) * 100)];
      else ++outside;
    }
    REQUIRE(outside == 0);
    auto [upper32, lower32] = chi_square_p(bins, kStatN);
    CHECK(upper32 > kP);
    CHECK(lower32 > kP);
  }
}

TEST_CASE("normal draws have mean 0, std 1 and the normal tail mass beyond 3 sigma", "[random]") {
  for (const std::string& isa : available_isas()) {
    INFO(isa);
    std::vector<double> z = generate<double>(kernel_of(isa, Gen::normal, DType::Float64), normal_params(31337, 0, 1), 0, 1,
                                             kStatN);
    double sum = 0, sum2 = 0;
    int64_t tail = 0;
    for (double x : z) {
      sum += x;
      sum2 += x * x;
      tail += std::fabs(x) > 3;
    }
    const double n = kStatN, mean = sum / n, sd = std::sqrt(sum2 / n - mean * mean);
    CHECK(std::fabs(mean) < kZ / std::sqrt(n));
    CHECK(std::fabs(sd - 1) < kZ * std::sqrt(0.5 / n));  // the sample std's own std: 1/sqrt(2n)
    const double p3 = 0.0026997960632601866;             // P(|Z| > 3) = erfc(3 / sqrt 2)
    CHECK(std::fabs(double(tail) - n * p3) < kZ * std::sqrt(n * p3 * (1 - p3)));
    // The sin half alone (odd elements) and the cos half alone are each standard normal.
    double odd = 0, odd2 = 0;
    for (size_t i = 1; i < z.size(); i += 2) {
      odd += z[i];
      odd2 += z[i] * z[i];
    }
    CHECK(std::fabs(odd / (n / 2)) < kZ / std::sqrt(n / 2));
    CHECK(std::fabs(std::sqrt(odd2 / (n / 2)) - 1) < kZ * std::sqrt(0.5 / (n / 2)));
  }
}

TEST_CASE("integers in a small range hit every value, counts within chi-square bounds", "[random]") {
  for (const std::string& isa : available_isas()) {
    INFO(isa);
    for (uint64_t range : {7ull, 10ull}) {
      INFO("range " << range);
      std::vector<int64_t> v = generate<int64_t>(kernel_of(isa, Gen::integers, DType::Int64), integer_params(8, -3, range),
                                                 0, 1, kStatN);
      std::vector<int64_t> counts(range);
      int64_t outside = 0;  // draws outside the range, checked once below
      for (int64_t x : v) {
        if (x >= -3 && x < -3 + int64_t(range)) ++counts[size_t(x + 3)];
        else ++outside;
      }
      REQUIRE(outside == 0);
      for (int64_t c : counts) CHECK(c > 0);
      auto [upper, lower] = chi_square_p(counts, kStatN);
      CHECK(upper > kP);
      CHECK(lower > kP);
    }
  }
}

TEST_CASE("streams of different seeds, and neighbouring elements, are uncorrelated", "[random]") {
  for (const std::string& isa : available_isas()) {
    INFO(isa);
    GenFn f = kernel_of(isa, Gen::uniform, DType::Float64);
    auto correlation = [](const std::vector<double>& a, const std::vector<double>& b) {
      const size_t n = std::min(a.size(), b.size());
      double ma = 0, mb = 0;
      for (size_t i = 0; i < n; ++i) ma += a[i], mb += b[i];
      ma /= double(n), mb /= double(n);
      double sab = 0, saa = 0, sbb = 0;
      for (size_t i = 0; i < n; ++i) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
      }
      return sab / std::sqrt(saa * sbb);
    };
    // Seeds one bit apart (one key word differs by one) and the two key words swapped.
    std::vector<double> a = generate<double>(f, uniform_params(1000, 0, 1, false), 0, 1, kStatN);
    std::vector<double> b = generate<double>(f, uniform_params(1001, 0, 1, false), 0, 1, kStatN);
    std::vector<double> c = generate<double>(f, uniform_params(1000ull << 32, 0, 1, false), 0, 1, kStatN);
    const double bound = kZ / std::sqrt(double(kStatN));  // the coefficient's std is 1/sqrt(n)
    CHECK(std::fabs(correlation(a, b)) < bound);
    CHECK(std::fabs(correlation(a, c)) < bound);
    CHECK(first_difference(a, b) == 0);
    // Lag 1 (the two halves of a block) and lag 2 (neighbouring blocks) within one stream.
    std::vector<double> a1(a.begin() + 1, a.end()), a2(a.begin() + 2, a.end());
    CHECK(std::fabs(correlation(a, a1)) < bound);
    CHECK(std::fabs(correlation(a, a2)) < bound);
  }
}

TEST_CASE("float32 uniform never returns hi, even where rounding reaches it", "[random]") {
  for (const std::string& isa : available_isas()) {
    INFO(isa);
    // At 1e6 float32's spacing is 1/16: lo + u rounds to hi for u > 1 - 1/32, about 3%.
    const float hi = 1e6f + 1, below = std::nextafter(hi, 0.0f);
    std::vector<float> v = generate<float>(kernel_of(isa, Gen::uniform, DType::Float32),
                                           uniform_params(55, 1e6, 1e6 + 1, true), 0, 1, kStatN);
    int64_t at_hi = 0, at_below = 0;
    for (float x : v) {
      at_hi += !(x < hi);
      at_below += x == below;
    }
    CHECK(at_hi == 0);
    // The ones rounded there (u within 1/32 of 15/16) and the clamped ones (u > 31/32): 9.4%.
    CHECK(at_below > kStatN / 12);
    // And [0, 1): the largest u24 is 1 - 2^-24, below 1.
    std::vector<float> w = generate<float>(kernel_of(isa, Gen::uniform, DType::Float32), uniform_params(56, 0, 1, true), 0, 1,
                                           kStatN);
    CHECK(*std::max_element(w.begin(), w.end()) < 1.0f);
  }
}
