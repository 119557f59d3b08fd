// Reductions, the simplifier and multi-step plans: every reduction against a scalar
// reference over every dtype and axis choice; accuracy on data where naive summation
// fails; the same bits for any thread count; plans that fuse producers into reductions,
// share subexpressions and rewrite powers; multi-output evaluation; errors that leave
// `out` alone.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <thread>

#include "isa_loop.hpp"
#include "kiln/kiln.hpp"
#include "plan_cache.hpp"
#include "runtime.hpp"

using kiln::Array;
using kiln::Axes;
using kiln::DType;
using kiln::Expr;
using kiln::Reduction;
using kiln::Shape;

namespace {

double get(const Array& a, int64_t i) {
  switch (a.dtype()) {
    case DType::Bool: return a.data_as<bool>()[i];
    case DType::Int32: return a.data_as<int32_t>()[i];
    case DType::Int64: return static_cast<double>(a.data_as<int64_t>()[i]);
    case DType::Float32: return a.data_as<float>()[i];
    case DType::Float64: return a.data_as<double>()[i];
  }
  return 0;
}

// Small integers (exact in every dtype and in every sum or product below) and, for
// floats, fractions.
Array sample(DType d, const Shape& shape, unsigned seed) {
  Array a = Array::empty(d, shape);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-6, 6);
  for (int64_t i = 0; i < a.size(); ++i) {
    int v = dist(rng);
    switch (d) {
      case DType::Bool: a.data_as<bool>()[i] = v > 0; break;
      case DType::Int32: a.data_as<int32_t>()[i] = v; break;
      case DType::Int64: a.data_as<int64_t>()[i] = v; break;
      case DType::Float32: a.data_as<float>()[i] = static_cast<float>(v) * 0.25f; break;
      case DType::Float64: a.data_as<double>()[i] = v * 0.125; break;
    }
  }
  return a;
}

// The reference: a plain loop over a C-contiguous 3-D array, in long double.
struct Reference {
  Shape shape;        // of the result
  std::vector<long double> values;
};

Reference reduce_ref(Reduction r, const Array& x, const std::vector<bool>& reduced, bool keepdims, int ddof) {
  const Shape& s = x.shape();
  Reference out;
  for (int d = 0; d < 3; ++d)
    if (!reduced[d] || keepdims) out.shape.push_back(reduced[d] ? 1 : s[d]);
  int64_t kept[3];
  for (int d = 0; d < 3; ++d) kept[d] = reduced[d] ? 1 : s[d];
  for (int64_t i = 0; i < kept[0]; ++i)
    for (int64_t j = 0; j < kept[1]; ++j)
      for (int64_t k = 0; k < kept[2]; ++k) {
        std::vector<long double> vals;
        for (int64_t a = 0; a < (reduced[0] ? s[0] : 1); ++a)
          for (int64_t b = 0; b < (reduced[1] ? s[1] : 1); ++b)
            for (int64_t c = 0; c < (reduced[2] ? s[2] : 1); ++c) {
              int64_t ii = reduced[0] ? a : i, jj = reduced[1] ? b : j, kk = reduced[2] ? c : k;
              vals.push_back(get(x, (ii * s[1] + jj) * s[2] + kk));
            }
        long double v = 0;
        switch (r) {
          case Reduction::sum: for (long double e : vals) v += e; break;
          case Reduction::prod: v = 1; for (long double e : vals) v *= e; break;
          case Reduction::mean: for (long double e : vals) v += e; v /= vals.size(); break;
          case Reduction::var: case Reduction::std: {
            long double m = 0;
            for (long double e : vals) m += e;
            m /= vals.size();
            for (long double e : vals) v += (e - m) * (e - m);
            v /= static_cast<long double>(vals.size()) - ddof;
            if (r == Reduction::std) v = std::sqrt(v);
            break;
          }
          case Reduction::min: v = vals[0]; for (long double e : vals) v = std::min(v, e); break;
          case Reduction::max: v = vals[0]; for (long double e : vals) v = std::max(v, e); break;
          case Reduction::any: for (long double e : vals) v = v || e != 0; break;
          case Reduction::all: v = 1; for (long double e : vals) v = v && e != 0; break;
          case Reduction::argmin: case Reduction::argmax: {
            size_t best = 0;
            for (size_t q = 1; q < vals.size(); ++q)
              if (r == Reduction::argmin ? vals[q] < vals[best] : vals[q] > vals[best]) best = q;
            v = static_cast<long double>(best);
            break;
          }
        }
        out.values.push_back(v);
      }
  return out;
}

DType expected_dtype(Reduction r, DType x) {
  bool f = x == DType::Float32 || x == DType::Float64;
  switch (r) {
    case Reduction::sum: case Reduction::prod: return f ? x : DType::Int64;
    case Reduction::mean: case Reduction::var: case Reduction::std: return f ? x : DType::Float64;
    case Reduction::min: case Reduction::max: return x;
    case Reduction::any: case Reduction::all: return DType::Bool;
    case Reduction::argmin: case Reduction::argmax: return DType::Int64;
  }
  return x;
}

std::vector<uint8_t> bytes_of(const Array& a) {
  REQUIRE(a.is_c_contiguous());
  return std::vector<uint8_t>(a.data(), a.data() + a.size() * a.itemsize());
}

struct ThreadsGuard {
  ~ThreadsGuard() { kiln::set_num_threads(0); }
};

}  // namespace

TEST_CASE("every reduction, dtype and axis choice matches a scalar reference", "[reduce]") {
  const Shape shape{4, 5, 6};
  const std::vector<std::vector<int>> axis_sets{{}, {0}, {1}, {2}, {-1}, {0, 1}, {0, 2}, {1, 2}, {0, 1, 2}};
  kiln::test::for_each_isa([&](const std::string&) {
    for (int di = 0; di < kiln::kNumDTypes; ++di) {
      DType d = static_cast<DType>(di);
      Array x = sample(d, shape, 7 + di);
      for (int ri = 0; ri < kiln::kNumReductions; ++ri) {
        Reduction r = static_cast<Reduction>(ri);
        bool arg = r == Reduction::argmin || r == Reduction::argmax;
        for (const auto& axes : axis_sets) {
          if (arg && axes.size() > 1) continue;
          for (bool keepdims : {false, true}) {
            int ddof = (r == Reduction::var || r == Reduction::std) ? 1 : 0;
            std::vector<bool> reduced(3, axes.empty());
            for (int a : axes) reduced[a < 0 ? a + 3 : a] = true;
            Axes spec = axes.empty() ? Axes() : Axes();
            if (!axes.empty()) {
              spec.all = false;
              spec.list = axes;
            }
            INFO(kiln::dtype_name(d) << ", " << kiln::reduction_info(r).name << ", "
                        << axes.size() << " axes starting " << (axes.empty() ? 99 : axes[0]) << ", keepdims "
                        << keepdims);
            Array got = kiln::eval(Expr::reduce(r, x, spec, keepdims, ddof));
            Reference want = reduce_ref(r, x, reduced, keepdims, ddof);
            CHECK(got.dtype() == expected_dtype(r, d));
            REQUIRE(got.shape() == want.shape);
            for (int64_t i = 0; i < got.size(); ++i) {
              long double w = want.values[i];
              double g = get(got, i);
              if (got.dtype() == DType::Float32) CHECK(std::fabs(g - static_cast<double>(w)) <= 1e-5 * (1 + std::fabs(static_cast<double>(w))));
              else if (got.dtype() == DType::Float64) CHECK(std::fabs(g - static_cast<double>(w)) <= 1e-13 * (1 + std::fabs(static_cast<double>(w))));
              else CHECK(g == static_cast<double>(w));
            }
          }
        }
      }
    }
  });
}

// Long and many: the work is cut into blocks of a segment (40000 elements), into bands of
// rows and of columns (12 rows of 20000), or into many short segments (20000 of 3 or 8,
// many to a call, or folded as rows), and the results are written a whole row at a time.
// The operand is x itself (folded from memory), x*y (products) or x*x + x (computed in
// chunks first). prod is left out: 40000 factors overflow.
TEST_CASE("reductions cut into blocks and bands match the scalar reference", "[reduce]") {
  struct Case {
    Shape shape;
    int axis;
  };
  const Case cases[] = {{{1, 2, 40000}, 2}, {{1, 12, 20000}, 1}, {{1, 20000, 3}, 2}, {{1, 5000, 8}, 2}, {{3, 2, 20000}, 0}};
  auto check = [](const Case& c, const Expr& e, const Array& values, Reduction r) {
    int ddof = (r == Reduction::var || r == Reduction::std) ? 1 : 0;
    std::vector<bool> reduced(3, false);
    reduced[c.axis] = true;
    Axes spec;
    spec.all = false;
    spec.list = {c.axis};
    Array got = kiln::eval(Expr::reduce(r, e, spec, false, ddof));
    Reference want = reduce_ref(r, values, reduced, false, ddof);
    REQUIRE(got.shape() == want.shape);
    int64_t wrong = 0;
    for (int64_t i = 0; i < got.size(); ++i) {
      double w = static_cast<double>(want.values[i]), g = get(got, i);
      double tol = got.dtype() == DType::Float32 ? 1e-5 : got.dtype() == DType::Float64 ? 1e-13 : 0;
      if (!(std::fabs(g - w) <= tol * (1 + std::fabs(w)))) ++wrong;
    }
    CHECK(wrong == 0);
  };
  kiln::test::for_each_isa([&](const std::string&) {
    for (DType d : {DType::Bool, DType::Int32, DType::Float32, DType::Float64})
      for (const Case& c : cases)
        for (int operand = 0; operand < (d == DType::Bool ? 1 : 3); ++operand) {
          Array x = sample(d, c.shape, 11), y = sample(d, c.shape, 12);
          // Small integers and quarters: x*y and x*x + x are exact, and so are their sums.
          Expr e = operand == 0 ? Expr(x) : operand == 1 ? Expr(x) * y : Expr(x) * x + x;
          Array values = kiln::eval(e);
          for (int ri = 0; ri < kiln::kNumReductions; ++ri) {
            Reduction r = static_cast<Reduction>(ri);
            if (r == Reduction::prod) continue;
            INFO(kiln::dtype_name(d) << ", " << kiln::reduction_info(r).name << ", operand "
                        << operand << ", shape " << kiln::shape_str(c.shape) << ", axis " << c.axis);
            check(c, e, values, r);
          }
        }
  });
}

// Floats over short segments (up to 128 bytes) fold a block of rows at a time, the rows
// transposed in registers, in the order of NumPy's pairwise sum: below 8 items one after
// another; from 8 on, item j into partial j % 8, the partials as a tree, then the rest.
// The same bits as that loop for every length, every count (blocks cut short at the end
// of a call and of the array) and every instruction set; the operand read from memory
// (x), as products (x*y) or computed first (x + y).
template <class T, class F> T pairwise_order(const T* v, int64_t n, F f) {
  int64_t j = 1;
  T r = v[0];
  if (n >= 8) {
    T p[8];
    std::copy(v, v + 8, p);
    for (j = 8; j + 8 <= n; j += 8)
      for (int k = 0; k < 8; ++k) p[k] = f(p[k], v[j + k]);
    r = f(f(f(p[0], p[1]), f(p[2], p[3])), f(f(p[4], p[5]), f(p[6], p[7])));
  }
  for (; j < n; ++j) r = f(r, v[j]);
  return r;
}

template <class T> void check_short_segments(DType d) {
  kiln::test::for_each_isa([&](const std::string&) {
    for (int64_t L : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 23, 24, 31, 32}) {
      if (L * static_cast<int64_t>(sizeof(T)) > 128) continue;
      const int64_t M = 517 + L;  // more than one call's 256 segments; blocks cut short
      std::mt19937 rng(static_cast<unsigned>(L));
      std::uniform_real_distribution<T> dist(T(0.5), T(1.5));  // products of 64 stay normal
      Array x = Array::empty(d, {M, L}), y = Array::empty(d, {M, L}), nans = Array::empty(d, {M, L});
      for (int64_t i = 0; i < M * L; ++i) {
        x.data_as<T>()[i] = rng() % 2 ? dist(rng) : -dist(rng);
        y.data_as<T>()[i] = dist(rng);
        nans.data_as<T>()[i] = rng() % 97 == 0 ? std::numeric_limits<T>::quiet_NaN() : x.data_as<T>()[i];
      }
      struct Operand {
        const char* name;
        Expr e;
        Array values;
      };
      const Operand operands[] = {{"x", Expr(x), x},
                                  {"x*y", Expr(x) * y, kiln::eval(Expr(x) * y)},
                                  {"x + y", Expr(x) + y, kiln::eval(Expr(x) + y)},
                                  {"x with NaNs", Expr(nans), nans}};
      auto add = [](T a, T b) { return a + b; };
      auto mul = [](T a, T b) { return a * b; };
      auto low = [](T a, T b) { return std::isnan(a) || a < b ? a : b; };
      auto high = [](T a, T b) { return std::isnan(a) || a > b ? a : b; };
      for (const Operand& op : operands) {
        Array sum = kiln::eval(kiln::sum(op.e, Axes(1))), prod = kiln::eval(kiln::prod(op.e, Axes(1)));
        Array mean = kiln::eval(kiln::mean(op.e, Axes(1)));
        Array min = kiln::eval(kiln::min(op.e, Axes(1))), max = kiln::eval(kiln::max(op.e, Axes(1)));
        int64_t wrong = 0;
        for (int64_t s = 0; s < M; ++s) {
          const T* v = op.values.template data_as<T>() + s * L;
          T want_sum = pairwise_order(v, L, add);
          T want[] = {want_sum, pairwise_order(v, L, mul), static_cast<T>(static_cast<double>(want_sum) / L),
                      pairwise_order(v, L, low), pairwise_order(v, L, high)};
          const Array* got[] = {&sum, &prod, &mean, &min, &max};
          for (int k = 0; k < 5; ++k) {
            T g = got[k]->data_as<T>()[s];
            if (std::memcmp(&g, &want[k], sizeof(T)) != 0 && !(std::isnan(g) && std::isnan(want[k]))) ++wrong;
          }
        }
        INFO(kiln::dtype_name(d) << ", rows of " << L << ", operand " << op.name);
        CHECK(wrong == 0);
      }
    }
  });
}

TEST_CASE("short float segments fold in NumPy's pairwise order: the same bits at every length and count", "[reduce]") {
  check_short_segments<float>(DType::Float32);
  check_short_segments<double>(DType::Float64);
}

// NumPy's argmin/argmax of n values: the first NaN, else the first of the best.
template <bool Max, class T> int64_t arg_ref(const T* v, int64_t n) {
  int64_t at = 0;
  for (int64_t i = 1; i < n; ++i) {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(v[at])) break;
      if (std::isnan(v[i])) {
        at = i;
        continue;
      }
    }
    if (Max ? v[i] > v[at] : v[i] < v[at]) at = i;
  }
  return at;
}

// Rows of every length around the SIMD widths, each of one kind: few distinct values (ties
// in every lane), NaNs or the type's extremes somewhere, infinities, all equal (+0 and -0),
// rising, falling.
template <class T> void check_arg_runs(DType d) {
  kiln::test::for_each_isa([&](const std::string&) {
    for (int64_t L : {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 257, 3001}) {
      const int64_t M = 36;
      std::mt19937 rng(static_cast<unsigned>(L));
      Array x = Array::empty(d, {M, L});
      T* p = x.data_as<T>();
      constexpr bool kFloat = std::is_floating_point_v<T>;
      const T special = kFloat ? std::numeric_limits<T>::quiet_NaN() : std::numeric_limits<T>::max();
      for (int64_t r = 0; r < M; ++r) {
        T* row = p + r * L;
        for (int64_t i = 0; i < L; ++i) {
          const T small = static_cast<T>(static_cast<int>(rng() % 7) - 3);
          switch (r % 6) {
            case 0: case 1: row[i] = small; break;  // rows 1, 7, ...: specials added below
            case 2: row[i] = rng() % 5 == 0 ? (rng() % 2 ? std::numeric_limits<T>::max() : std::numeric_limits<T>::lowest()) : small; break;
            case 3: row[i] = kFloat && rng() % 2 ? -T(0) : T(0); break;
            case 4: row[i] = static_cast<T>(i); break;
            default: row[i] = static_cast<T>(L - i); break;
          }
          if (kFloat && r % 6 == 2 && rng() % 7 == 0) row[i] = rng() % 2 ? std::numeric_limits<T>::infinity() : -std::numeric_limits<T>::infinity();
        }
        if (r % 6 == 1) {  // one or two specials (NaN; for integers the largest and smallest)
          row[(r * 7 + 3) % L] = special;
          row[(r * 13 + 5) % L] = kFloat ? special : std::numeric_limits<T>::lowest();
        }
      }
      const Array amax = kiln::eval(kiln::argmax(x, Axes(1))), amin = kiln::eval(kiln::argmin(x, Axes(1)));
      int64_t wrong = 0;
      for (int64_t r = 0; r < M; ++r) {
        wrong += amax.data_as<int64_t>()[r] != arg_ref<true>(p + r * L, L);
        wrong += amin.data_as<int64_t>()[r] != arg_ref<false>(p + r * L, L);
      }
      // Along columns (axis 0): rows of accumulators, a register of columns at a time.
      const Array cmax = kiln::eval(kiln::argmax(x, Axes(0))), cmin = kiln::eval(kiln::argmin(x, Axes(0)));
      std::vector<T> column(M);
      int64_t wrong_columns = 0;
      for (int64_t c = 0; c < L; ++c) {
        for (int64_t r = 0; r < M; ++r) column[r] = p[r * L + c];
        wrong_columns += cmax.data_as<int64_t>()[c] != arg_ref<true>(column.data(), M);
        wrong_columns += cmin.data_as<int64_t>()[c] != arg_ref<false>(column.data(), M);
      }
      INFO(kiln::dtype_name(d) << ", rows of " << L);
      CHECK(wrong == 0);
      CHECK(wrong_columns == 0);
      CHECK(get(kiln::eval(kiln::argmax(x)), 0) == arg_ref<true>(p, M * L));
      CHECK(get(kiln::eval(kiln::argmin(x)), 0) == arg_ref<false>(p, M * L));
    }
  });
}

TEST_CASE("argmin/argmax a SIMD lane at a time: the first NaN, the first of ties, at every length", "[reduce][arg]") {
  check_arg_runs<float>(DType::Float32);
  check_arg_runs<double>(DType::Float64);
  check_arg_runs<int32_t>(DType::Int32);
  check_arg_runs<int64_t>(DType::Int64);
}

TEST_CASE("argmax's kernel over more than one piece of 2^20 items", "[reduce][arg]") {
  const int64_t n = (int64_t{1} << 21) + 5;
  std::vector<float> v(n, 0.0f);
  kiln::test::for_each_isa([&](const std::string&) {
    const kiln::simd::ReduceFns& fns =
        kiln::Runtime::instance().kernels().reduce[static_cast<int>(Reduction::argmax)][static_cast<int>(DType::Float32)];
    auto argmax = [&] {
      kiln::simd::ReduceAcc acc{};
      fns.run(v.data(), n, 100, &acc);
      return acc.index - 100;
    };
    std::fill(v.begin(), v.end(), 0.0f);
    v[3] = v[(1 << 20) + 9] = 5.0f;  // a tie across pieces: the first
    CHECK(argmax() == 3);
    v[(1 << 20) + 9] = 6.0f;  // better in the second piece
    CHECK(argmax() == (1 << 20) + 9);
    v[(1 << 21) + 2] = std::nanf("");  // a NaN in the tail after the pieces
    CHECK(argmax() == (1 << 21) + 2);
    v[(1 << 20) + 17] = std::nanf("");
    CHECK(argmax() == (1 << 20) + 17);
  });
}

// any and all scan bools as bytes, whole batches at a time, and stop at the byte that
// decides: that byte anywhere (first, in a block of four batches, in a single batch, in
// the tail), none at all, and bytes other than 1 (a NumPy view of uint8 as bool) true.
// Whole arrays, rows (axis=1), columns of long rows (axis=0: the result 0 or 1), and the
// bools a comparison computes in chunks.
TEST_CASE("any, all, max, min, argmax and argmin over bools: the deciding byte anywhere, bytes other than 1 true, every path; ~ of such bytes", "[reduce]") {
  auto eval_bool = [](const char* expr, const Array& x) { return kiln::eval(expr, {{"x", x}}); };
  kiln::test::for_each_isa([&](const std::string&) {
    for (int64_t n : {1, 5, 31, 32, 33, 64, 127, 128, 129, 200, 257, 1000, 4099, 70001}) {
      std::vector<int64_t> places = {0, n / 2, n - 1};
      for (int64_t p = 97; p < n; p *= 3) places.push_back(p);
      // Every byte true, with values from 1 to 255: any and all true, and 1 in every column.
      Array t = Array::empty(DType::Bool, {n});
      for (int64_t i = 0; i < n; ++i) reinterpret_cast<uint8_t*>(t.data())[i] = static_cast<uint8_t>(1 + (i * 37) % 255);
      CHECK(eval_bool("any(x)", t).data_as<bool>()[0]);
      CHECK(eval_bool("all(x)", t).data_as<bool>()[0]);
      {  // ~ is NumPy's logical not: 0 for every such byte, 1 for zeros
        Array zeros = Array::empty(DType::Bool, {n});
        std::memset(zeros.data(), 0, static_cast<size_t>(n));
        Array nots = eval_bool("~x", t);
        zeros = eval_bool("~x", zeros);
        const auto *a = reinterpret_cast<const uint8_t*>(nots.data()), *z = reinterpret_cast<const uint8_t*>(zeros.data());
        CHECK(std::all_of(a, a + n, [](uint8_t b) { return b == 0; }));
        CHECK(std::all_of(z, z + n, [](uint8_t b) { return b == 1; }));
      }
      if (n % 2 == 0) {
        for (const char* e : {"any(x, axis=0)", "all(x, axis=0)", "any(x, axis=1)", "all(x, axis=1)"}) {
          Array got = eval_bool(e, t.reshape({2, n / 2}));
          INFO(e << " over 2 rows of " << n / 2);
          const auto* bytes = reinterpret_cast<const uint8_t*>(got.data());
          CHECK(std::all_of(bytes, bytes + got.size(), [](uint8_t b) { return b == 1; }));
        }
      }
      for (uint8_t fill : {0, 1}) {
        for (uint8_t mark : {uint8_t(1 - fill), uint8_t(fill ? 0 : 2), uint8_t(fill ? 0 : 0x80)}) {
          for (int64_t at : places) {
            INFO("n " << n << ", bytes " << int(fill) << " but " << int(mark) << " at " << at);
            Array x = Array::empty(DType::Bool, {n});
            auto* bytes = reinterpret_cast<uint8_t*>(x.data());
            std::memset(bytes, fill, n);
            bytes[at] = mark;
            const bool others = n > 1;  // bytes other than `mark`, all `fill`
            const bool any = mark || (others && fill), all = mark && (!others || fill);
            CHECK(eval_bool("any(x)", x).data_as<bool>()[0] == any);
            CHECK(eval_bool("all(x)", x).data_as<bool>()[0] == all);
            // max and min over bools are any and all; argmax and argmin the first deciding byte.
            CHECK(eval_bool("max(x)", x).data_as<bool>()[0] == any);
            CHECK(eval_bool("min(x)", x).data_as<bool>()[0] == all);
            const int64_t first_true = std::find_if(bytes, bytes + n, [](uint8_t b) { return b != 0; }) - bytes;
            const int64_t first_false = std::find(bytes, bytes + n, uint8_t{0}) - bytes;
            CHECK(eval_bool("argmax(x)", x).data_as<int64_t>()[0] == (first_true < n ? first_true : 0));
            CHECK(eval_bool("argmin(x)", x).data_as<int64_t>()[0] == (first_false < n ? first_false : 0));
            // The same bytes as floats, compared in chunks: the fused path.
            Array f = Array::empty(DType::Float64, {n});
            for (int64_t i = 0; i < n; ++i) f.data_as<double>()[i] = bytes[i] ? 1.5 : -1.5;
            CHECK(kiln::eval("any(f > 0)", {{"f", f}}).data_as<bool>()[0] == any);
            CHECK(kiln::eval("all(f > 0)", {{"f", f}}).data_as<bool>()[0] == all);
            if (n % 2 == 0 && n >= 64) {  // two rows: along each, and down the columns
              Array m = x.reshape({2, n / 2});
              for (int axis : {0, 1}) {
                Array got_any = eval_bool(axis ? "any(x, axis=1)" : "any(x, axis=0)", m);
                Array got_all = eval_bool(axis ? "all(x, axis=1)" : "all(x, axis=0)", m);
                const int64_t outs = axis ? 2 : n / 2;
                int64_t wrong = 0;
                for (int64_t k = 0; k < outs; ++k) {
                  bool want_any = false, want_all = true;
                  for (int64_t j = 0; j < (axis ? n / 2 : 2); ++j) {
                    const uint8_t b = axis ? bytes[k * (n / 2) + j] : bytes[j * (n / 2) + k];
                    want_any = want_any || b;
                    want_all = want_all && b;
                  }
                  const uint8_t a = reinterpret_cast<const uint8_t*>(got_any.data())[k];
                  const uint8_t l = reinterpret_cast<const uint8_t*>(got_all.data())[k];
                  wrong += (a != uint8_t(want_any)) + (l != uint8_t(want_all));
                }
                CHECK(wrong == 0);
              }
            }
          }
        }
      }
    }
  });
}

TEST_CASE("sum and mean over bools count their nonzero bytes: row lengths around the batches, long runs of 255, views, every set", "[reduce]") {
  kiln::test::for_each_isa([&](const std::string&) {
    // Lengths around the count's four batches (128 or 256 bytes) and its byte lanes' widening
    // after 63 rounds: 8064 or 16128 bytes of 255 would carry a lane over were it late.
    for (int64_t len : {1, 3, 7, 8, 9, 16, 31, 64, 127, 128, 129, 255, 256, 300, 4096, 8063, 8064, 8065, 16128, 16129, 70001}) {
      for (int64_t rows : {1, 3, 70}) {  // 70: bands of rows along the columns, combined
        if (rows == 70 && len > 300) continue;
        for (bool all_255 : {true, false}) {
          INFO(rows << " rows of " << len << (all_255 ? ", every byte 255" : ", mixed bytes"));
          Array x = Array::empty(DType::Bool, {rows, len});
          auto* bytes = reinterpret_cast<uint8_t*>(x.data());
          for (int64_t i = 0; i < rows * len; ++i)
            bytes[i] = all_255 ? 255 : (i * 7919 + i / 13) % 5 ? static_cast<uint8_t>(1 + i % 255) : 0;
          // The references: each row's and each column's count of nonzero bytes.
          std::vector<int64_t> per_row(rows), per_column(len);
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < len; ++c) {
              per_row[r] += bytes[r * len + c] != 0;
              per_column[c] += bytes[r * len + c] != 0;
            }
          const int64_t total = std::accumulate(per_row.begin(), per_row.end(), int64_t{0});
          auto eval_x = [&](const char* e, const Array& v) { return kiln::eval(e, {{"x", v}}); };
          Array sum = eval_x("sum(x)", x), mean = eval_x("mean(x)", x);
          REQUIRE(sum.dtype() == DType::Int64);
          REQUIRE(mean.dtype() == DType::Float64);
          CHECK(sum.data_as<int64_t>()[0] == total);
          CHECK(mean.data_as<double>()[0] == static_cast<double>(total) / static_cast<double>(rows * len));
          Array row_sums = eval_x("sum(x, axis=1)", x), row_means = eval_x("mean(x, axis=1)", x);
          Array column_sums = eval_x("sum(x, axis=0)", x), column_means = eval_x("mean(x, axis=0)", x);
          int64_t wrong = 0;
          for (int64_t r = 0; r < rows; ++r)
            wrong += (row_sums.data_as<int64_t>()[r] != per_row[r]) +
                     (row_means.data_as<double>()[r] != static_cast<double>(per_row[r]) / static_cast<double>(len));
          for (int64_t c = 0; c < len; ++c)
            wrong += (column_sums.data_as<int64_t>()[c] != per_column[c]) +
                     (column_means.data_as<double>()[c] != static_cast<double>(per_column[c]) / static_cast<double>(rows));
          CHECK(wrong == 0);
          // Every other byte, and the float64 sum of a cast (counted too), as their copies.
          if (len > 1) {
            Array odd = x.slice(1, 1, len, 2);
            CHECK(bytes_of(eval_x("sum(x, axis=1)", odd)) == bytes_of(eval_x("sum(x, axis=1)", odd.copy())));
          }
          CHECK(eval_x("sum(float64(x))", x).data_as<double>()[0] == static_cast<double>(total));
          // Casts of bools to another dtype are counted too (any cast of a bool is 0 or 1).
          CHECK(eval_x("sum(int32(x))", x).data_as<int64_t>()[0] == total);
          CHECK(bytes_of(eval_x("mean(int32(x), axis=0)", x)) == bytes_of(column_means));
          CHECK(bytes_of(eval_x("sum(float32(x), axis=1)", x)) == bytes_of(eval_x("float32(sum(x, axis=1))", x)));
          // Bools computed in the pass (counted through a register): the same bytes as floats.
          Array f = Array::empty(DType::Float64, {rows, len});
          for (int64_t i = 0; i < rows * len; ++i) f.data_as<double>()[i] = bytes[i] ? 1.5 : -1.5;
          CHECK(eval_x("sum(x > 0)", f).data_as<int64_t>()[0] == total);
          CHECK(eval_x("mean(x > 0)", f).data_as<double>()[0] == static_cast<double>(total) / static_cast<double>(rows * len));
          CHECK(bytes_of(eval_x("sum(x > 0, axis=1)", f)) == bytes_of(row_sums));
          CHECK(bytes_of(eval_x("mean(x > 0, axis=1)", f)) == bytes_of(row_means));
          CHECK(bytes_of(eval_x("sum(x > 0, axis=0)", f)) == bytes_of(column_sums));
          CHECK(bytes_of(eval_x("mean(x > 0, axis=0)", f)) == bytes_of(column_means));
          // A row broadcast down 3 rows (read with stride 0 along them).
          Array first_row = x.slice(0, 0, 1).broadcast_to({3, len});
          Array broadcast_sums = eval_x("sum(x, axis=1)", first_row);
          for (int64_t r = 0; r < 3; ++r) CHECK(broadcast_sums.data_as<int64_t>()[r] == per_row[0]);
        }
      }
    }
  });
}

TEST_CASE("the planner counts bools for a single sum or mean of bools or of their casts, not of a literal", "[reduce]") {
  Array b = Array::empty(DType::Bool, {4, 5});
  Array f = Array::empty(DType::Float64, {4, 5});
  auto counted = [](const Expr& e) { return kiln::explain(e).find("counted as bools") != std::string::npos; };
  CHECK(counted(kiln::sum(b)));
  CHECK(counted(kiln::mean(b, Axes(0))));
  CHECK(counted(kiln::sum(Expr(f) > 0.0, Axes(1))));
  CHECK(counted(kiln::sum(kiln::astype(b, DType::Int32))));
  CHECK(counted(kiln::mean(kiln::astype(b, DType::Int32), Axes(1))));
  CHECK(counted(kiln::sum(kiln::astype(kiln::astype(Expr(f) > 0.0, DType::Float32), DType::Int64))));
  // float32 sums have no counting kernels; two folds of a step read one register each
  CHECK_FALSE(counted(kiln::sum(kiln::astype(b, DType::Float32))));
  CHECK_FALSE(counted(kiln::sum(b) + kiln::max(f)));
  CHECK_FALSE(counted(kiln::sum(f)));
  CHECK_FALSE(counted(kiln::sum(Expr(true))));
}

TEST_CASE("views reduce like their contiguous copies", "[reduce]") {
  Array base = sample(DType::Float64, {30, 40}, 3);
  Array views[] = {base.transpose(), base.slice(0, 28, 1, -3), base.slice(1, 1, 40, 2), base.index(1, 5)};
  for (const Array& v : views) {
    for (const Axes& axes : {Axes(), Axes(0), Axes(-1)}) {
      if (v.ndim() == 1 && !axes.all && axes.list[0] == 0) continue;
      Array got = kiln::eval(kiln::sum(v * 2.0, axes));
      Array want = kiln::eval(kiln::sum(v.copy() * 2.0, axes));
      CHECK(bytes_of(got) == bytes_of(want));
      CHECK(bytes_of(kiln::eval(kiln::argmax(v, axes))) == bytes_of(kiln::eval(kiln::argmax(v.copy(), axes))));
    }
  }
}

TEST_CASE("operands walked in memory order: transposed, reversed and broadcast 3-D views over every axis set", "[reduce]") {
  // Eighths of small integers: every sum is exact, in whatever order memory is walked.
  Array base = sample(DType::Float64, {6, 7, 300}, 5);
  Array row = sample(DType::Float64, {6}, 6);
  const Array views[] = {base.transpose(), base.transpose({1, 2, 0}), base.slice(2, 299, -301, -1).transpose({2, 0, 1})};
  const std::vector<Axes> axis_sets = {Axes(), Axes(0), Axes(1), Axes(2), Axes({0, 1}), Axes({1, 2}), Axes({0, 2})};
  for (const Array& v : views) {
    for (const Axes& axes : axis_sets) {
      INFO("view of shape " << kiln::shape_str(v.shape()) << ", " << (axes.all ? 99 : axes.list.size()) << " axes from "
                            << (axes.all ? -1 : axes.list[0]));
      CHECK(bytes_of(kiln::eval(kiln::sum(v, axes))) == bytes_of(kiln::eval(kiln::sum(v.copy(), axes))));
      CHECK(bytes_of(kiln::eval(kiln::max(v, axes))) == bytes_of(kiln::eval(kiln::max(v.copy(), axes))));
      CHECK(bytes_of(kiln::eval(kiln::mean(v * v, axes))) == bytes_of(kiln::eval(kiln::mean(v.copy() * v.copy(), axes))));
      if (v.shape()[2] == 6) {  // a broadcast operand along the last axis beside the view
        CHECK(bytes_of(kiln::eval(kiln::sum(Expr(v) + row, axes))) == bytes_of(kiln::eval(kiln::sum(Expr(v.copy()) + row, axes))));
      }
      if (axes.all || axes.list.size() == 1) {
        CHECK(bytes_of(kiln::eval(kiln::argmax(v, axes))) == bytes_of(kiln::eval(kiln::argmax(v.copy(), axes))));
        CHECK(bytes_of(kiln::eval(kiln::argmin(v, axes))) == bytes_of(kiln::eval(kiln::argmin(v.copy(), axes))));
      }
    }
  }
}

TEST_CASE("NaN propagates through min/max/sum; argmin/argmax find the first NaN and the first tie", "[reduce]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int64_t n : {5, 70, 20000}) {
    Array x = Array::zeros(DType::Float64, {n});
    double* p = x.data_as<double>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<double>((i * 7) % 11);
    CHECK(get(kiln::eval(kiln::argmax(x)), 0) == 3);   // first 10 (i*7 % 11 == 10 at i = 3)
    CHECK(get(kiln::eval(kiln::argmin(x)), 0) == 0);
    p[n - 2] = nan;
    p[n - 1] = nan;
    CHECK(std::isnan(get(kiln::eval(kiln::min(x)), 0)));
    CHECK(std::isnan(get(kiln::eval(kiln::max(x)), 0)));
    CHECK(std::isnan(get(kiln::eval(kiln::sum(x)), 0)));
    CHECK(get(kiln::eval(kiln::argmin(x)), 0) == n - 2);
    CHECK(get(kiln::eval(kiln::argmax(x)), 0) == n - 2);
  }
  // Along an outer axis: per column.
  Array m = Array::zeros(DType::Float32, {3, 2});
  float* q = m.data_as<float>();
  q[0] = 1; q[1] = 2; q[2] = std::nanf(""); q[3] = 5; q[4] = 0; q[5] = std::nanf("");
  Array am = kiln::eval(kiln::argmax(m, 0));
  CHECK(get(am, 0) == 1);
  CHECK(get(am, 1) == 2);
}

TEST_CASE("float sums are pairwise-accurate where a running sum fails", "[reduce][accuracy]") {
  // 10^8 float32 copies of 0.1 (a broadcast view: no memory). A running float32 sum
  // stalls near 2^21 (an error of 98%); NumPy's pairwise sum is off by ~1e-7.
  Array tenth32 = Array::scalar(0.1f).broadcast_to({100000000});
  double want32 = 1e8 * static_cast<double>(0.1f);
  double got32 = get(kiln::eval(kiln::sum(tenth32)), 0);
  CHECK(std::fabs(got32 - want32) / want32 < 2e-6);
  CHECK(std::fabs(get(kiln::eval(kiln::mean(tenth32)), 0) - 0.1f) / 0.1f < 2e-6);
  // 10^7 float64 copies of 0.1 from memory (the in-place path): a running sum is off by
  // ~1.6e-10 relative, pairwise by ~1e-16.
  Array tenth = kiln::eval(kiln::Expr(Array::scalar(0.1).broadcast_to({10000000})) * 1.0);
  double got = get(kiln::eval(kiln::sum(tenth)), 0);
  long double exact = 1e7L * 0.1L;
  CHECK(std::fabs(static_cast<long double>(got) - exact) / exact < 1e-14L);
  // The same through a fused producer (the chunked path; x * 1.0 would be x, read in place).
  double fused = get(kiln::eval(kiln::sum(kiln::Expr(tenth) + 0.0)), 0);
  CHECK(std::fabs(static_cast<long double>(fused) - exact) / exact < 1e-14L);
  // Large cancellation: values of ~1e8 that sum to ~1; compare with a long double sum.
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal(0.0, 1e8);
  const int64_t n = 1 << 20;
  Array c = Array::empty(DType::Float64, {n});
  long double ref = 0, abs_sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    double v = i % 2 ? -c.data_as<double>()[i - 1] + 1e-3 : normal(rng);
    c.data_as<double>()[i] = v;
    ref += v;
    abs_sum += std::fabs(v);
  }
  double gc = get(kiln::eval(kiln::sum(c)), 0);
  // Pairwise's bound: eps * log2(n) * sum|x|; a running sum's is eps * n * sum|x|.
  CHECK(std::fabs(static_cast<long double>(gc) - ref) <= 2.2e-16L * 21 * abs_sum);
}

TEST_CASE("reductions give the same bits for 1, 2 and 7 threads", "[reduce][threads]") {
  ThreadsGuard restore;
  Array a = sample(DType::Float64, {3000, 1000}, 11);
  Array b = sample(DType::Float64, {3000, 1000}, 12);
  Array f = sample(DType::Float32, {3000, 1000}, 13);
  // Few rows, many columns: bands of columns split by the thread count (rows never are).
  Array w = sample(DType::Float64, {60, 6000}, 14);
  std::vector<Expr> exprs{kiln::sum(a * b),        kiln::mean(a),          kiln::std(a),
                          kiln::argmax(a + b),     kiln::sum(a * b, 0),    kiln::sum(kiln::square(a), 1),
                          kiln::var(f, 0, false, 1), kiln::prod(f * 0.001f + 1.0f), kiln::max(kiln::abs(a - b), -1),
                          (a - kiln::mean(a)) / kiln::std(a), kiln::sum(w, 0),         kiln::var(w, 0),
                          kiln::argmin(w * 2.0, 0)};
  std::vector<std::vector<uint8_t>> first;
  for (int threads : {1, 2, 7}) {
    kiln::set_num_threads(threads);
    for (size_t i = 0; i < exprs.size(); ++i) {
      INFO("threads " << threads << ", expression " << i);
      auto bytes = bytes_of(kiln::eval(exprs[i]));
      if (threads == 1) first.push_back(bytes);
      else CHECK(bytes == first[i]);
    }
  }
}

TEST_CASE("reduced values feed the following fused loop, broadcasting like NumPy", "[reduce]") {
  Array a = sample(DType::Float64, {50, 40}, 21);
  Array centred = kiln::eval(kiln::Expr(a) - kiln::mean(a, 0));
  Array col_means = kiln::eval(kiln::mean(a, 0));
  for (int64_t i = 0; i < 50; ++i)
    for (int64_t j = 0; j < 40; ++j)
      CHECK(centred.data_as<double>()[i * 40 + j] == a.data_as<double>()[i * 40 + j] - col_means.data_as<double>()[j]);
  Array rows = kiln::eval(kiln::Expr(a) / kiln::sum(a, 1, true));
  Array row_sums = kiln::eval(kiln::sum(a, 1));
  CHECK(rows.shape() == Shape{50, 40});
  CHECK(rows.data_as<double>()[41] == a.data_as<double>()[41] / row_sums.data_as<double>()[1]);
  // a (50, 40) minus a row-reduced (50,) does not broadcast: NumPy's error too.
  CHECK_THROWS_WITH(kiln::eval(kiln::Expr(a) - kiln::sum(a, 1)), Catch::Contains("do not broadcast"));
}

TEST_CASE("plans: producers fuse into reductions, subexpressions are shared, powers rewritten", "[reduce][plan]") {
  Array a = sample(DType::Float64, {100}, 1), b = sample(DType::Float64, {100}, 2);
  auto count = [](const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
    return n;
  };
  // sum(a*b): one step, the product folded chunk by chunk (no loop writing a temporary).
  std::string p = kiln::explain(kiln::sum(a * b));
  CHECK(count(p, "reduce ") == 1);
  CHECK(count(p, "fused loop, chunk") == 1);  // the reduction's own loop
  CHECK(count(p, "multiply<") == 1);
  CHECK(count(p, "out0 = %0") == 1);
  // A shared subexpression is computed once per chunk, in reductions too.
  p = kiln::explain(kiln::sum(kiln::sin(a) * kiln::sin(a) + kiln::sin(a)));
  CHECK(count(p, "sin<") == 1);
  // (a - mean(a)) / std(a): the mean is computed once, for both uses.
  p = kiln::explain((a - kiln::mean(a)) / kiln::std(a));
  CHECK(count(p, "reduce ") == 2);
  // Powers: x**3 and x**4 by multiplication, power(x, 2.5) stays pow; literals fold.
  p = kiln::explain(kiln::power(a, 3) + kiln::power(b, 4.0) + kiln::power(a, 2.5) + Expr(2) * 3);
  CHECK(count(p, "power<") == 1);
  // x**3 = square(x) * x and x**4 = square(square(x)): four multiplications (a square fused
  // into the op after it shows as multiply(x, x)).
  CHECK(count(p, "square<") + count(p, "multiply<") == 4);
  // An int power keeps the int dtype and the exact value.
  Array i = kiln::eval(kiln::astype(a * 8.0, DType::Int64));
  Array cube = kiln::eval(kiln::power(i, 3));
  for (int64_t k = 0; k < 100; ++k) CHECK(cube.data_as<int64_t>()[k] == i.data_as<int64_t>()[k] * i.data_as<int64_t>()[k] * i.data_as<int64_t>()[k]);
  // power(int32, 3.0) computes in float64: not rewritten to an int multiply.
  CHECK(count(kiln::explain(kiln::power(kiln::as_int32(a), 3.0)), "power<float64>") == 1);
}

TEST_CASE("several expressions in one pass: kiln::eval({...})", "[reduce][multi]") {
  Array a = sample(DType::Float64, {2000}, 5), b = sample(DType::Float64, {2000}, 6);
  std::vector<Expr> exprs{a + b, kiln::sum(a * b), (a + b) * 2.0, kiln::max(a)};
  std::vector<Array> r = kiln::eval(exprs);
  REQUIRE(r.size() == 4);
  double dot = 0;
  for (int64_t i = 0; i < 2000; ++i) {
    double x = a.data_as<double>()[i], y = b.data_as<double>()[i];
    CHECK(r[0].data_as<double>()[i] == x + y);
    CHECK(r[2].data_as<double>()[i] == (x + y) * 2.0);
    dot += x * y;
  }
  CHECK(r[1].data_as<double>()[0] == Approx(dot).epsilon(1e-14));
  CHECK(get(r[3], 0) == get(kiln::eval(kiln::max(a)), 0));
  // One loop writes both element-wise outputs, computing a + b once.
  std::string p = kiln::explain(exprs);
  CHECK(p.find("2 outputs") != std::string::npos);
  size_t adds = 0;
  for (size_t q = p.find("add<"); q != std::string::npos; q = p.find("add<", q + 1)) ++adds;
  CHECK(adds == 1);
  // Outputs of different shapes still work (run one by one).
  Array m = sample(DType::Float64, {3, 4}, 9);
  std::vector<Array> mixed = kiln::eval({m * 2.0, a * 2.0});
  CHECK(mixed[0].shape() == Shape{3, 4});
  CHECK(mixed[1].shape() == Shape{2000});
  CHECK(mixed[1].data_as<double>()[7] == a.data_as<double>()[7] * 2.0);
}

TEST_CASE("programs of assignments through the C++ string API", "[reduce][program]") {
  Array a = sample(DType::Float64, {10, 3}, 1), b = sample(DType::Float64, {10, 3}, 2);
  std::vector<Array> r = kiln::eval_many("t = a*b; s = sum(t); r = t - s", {{"a", a}, {"b", b}}, {"r", "s"});
  REQUIRE(r.size() == 2);
  double s = 0;
  for (int i = 0; i < 30; ++i) s += a.data_as<double>()[i] * b.data_as<double>()[i];
  CHECK(get(r[1], 0) == Approx(s).epsilon(1e-14));
  CHECK(r[0].data_as<double>()[4] == a.data_as<double>()[4] * b.data_as<double>()[4] - get(r[1], 0));
  std::vector<Array> all = kiln::eval_many("a + 1; sum(b, axis=0)", {{"a", a}, {"b", b}});
  REQUIRE(all.size() == 2);
  CHECK(all[1].shape() == Shape{3});
  CHECK_THROWS_WITH(kiln::eval_many("t = a", {{"a", a}}, {"u"}), Catch::Contains("'u' is not assigned"));
  // kiln::eval of a program is its last statement.
  Array last = kiln::eval("t = a * 2; t + 1", {{"a", a}});
  CHECK(last.data_as<double>()[3] == a.data_as<double>()[3] * 2 + 1);
}

TEST_CASE("bad reductions are refused, naming what is wrong, and leave out alone", "[reduce][errors]") {
  Array x = sample(DType::Float64, {3, 4}, 1);
  Array out = Array::zeros(DType::Float64, {4});
  CHECK_THROWS_WITH(kiln::eval(kiln::sum(x, 2), out), Catch::Contains("sum") && Catch::Contains("axis 2 is out of bounds") &&
                                                          Catch::Contains("(3, 4)"));
  CHECK_THROWS_WITH(kiln::eval(kiln::sum(x, {1, -1})), Catch::Contains("axis 1 is given twice"));
  CHECK_THROWS_WITH(kiln::eval(kiln::sum(Array::scalar(1.0), {}, true)), Catch::Contains("keepdims=True on a 0-d operand"));
  Array empty = Array::zeros(DType::Float64, {0, 4});
  CHECK_THROWS_WITH(kiln::eval(kiln::min(empty, 0), out), Catch::Contains("min") && Catch::Contains("empty"));
  CHECK_THROWS_WITH(kiln::eval(kiln::argmax(empty)), Catch::Contains("argmax"));
  for (int k = 0; k < 4; ++k) CHECK(out.data_as<double>()[k] == 0.0);
  CHECK_THROWS_WITH(kiln::argmin(x, {0, 1}), Catch::Contains("one axis or None"));
  CHECK_THROWS_WITH(kiln::Expr::reduce(Reduction::sum, x, Axes(), false, 1), Catch::Contains("takes no ddof"));
  CHECK_THROWS_WITH(kiln::sum(x, 40), Catch::Contains("out of range"));
  // Reductions of nothing that have a value: NumPy's.
  CHECK(get(kiln::eval(kiln::sum(empty)), 0) == 0.0);
  CHECK(get(kiln::eval(kiln::prod(empty)), 0) == 1.0);
  CHECK(std::isnan(get(kiln::eval(kiln::mean(empty)), 0)));
  Array col = kiln::eval(kiln::all(empty, 0));
  CHECK(col.shape() == Shape{4});
  CHECK(get(col, 3) == 1.0);
  CHECK(kiln::eval(kiln::max(empty, 1)).shape() == Shape{0});  // nothing to reduce into
  // A reduction written into out casts same_kind.
  kiln::eval(kiln::sum(x, 0), out);
  CHECK(out.data_as<double>()[1] == get(kiln::eval(kiln::sum(x, 0)), 1));
}

TEST_CASE("a reduction into out: written there directly when it fits, copied when out overlaps, is strided or broadcast",
          "[reduce][out]") {
  // Each case against the same reduction evaluated into a fresh array (small integers and
  // eighths: every sum is exact, in any order).
  const int64_t M = 3000, L = 4;
  Array a = sample(DType::Float64, {M, L}, 7);
  const Array want = kiln::eval(kiln::sum(a, 1));
  auto check_sums = [&](const Array& got) {
    REQUIRE(got.shape() == Shape{M});
    for (int64_t i = 0; i < M; ++i)
      if (get(got, i) != get(want, i)) FAIL("sum of row " << i << ": " << get(got, i) << ", want " << get(want, i));
  };
  SECTION("a contiguous out of the result's dtype and shape, and with keepdims") {
    Array out = Array::zeros(DType::Float64, {M});
    kiln::eval(kiln::sum(a, 1), out);
    check_sums(out);
    Array kept = Array::zeros(DType::Float64, {M, 1});
    kiln::eval(kiln::sum(a, 1, true), kept);
    check_sums(kept.reshape({M}));
  }
  SECTION("out over the operand's own last items: the rows are read before they are overwritten") {
    Array b = a.copy();
    Array flat = b.reshape({M * L});
    REQUIRE(flat.data() == b.data());  // a view, so out overlaps the operand
    kiln::eval(kiln::sum(b, 1), flat.slice(0, M * L - M, M * L));
    check_sums(flat.slice(0, M * L - M, M * L));
  }
  SECTION("a strided out (a column) leaves its neighbours alone") {
    Array grid = Array::zeros(DType::Float64, {M, 2});
    kiln::eval(kiln::sum(a, 1), grid.index(1, 0));
    check_sums(grid.index(1, 0).copy());
    for (int64_t i = 0; i < M; ++i)
      if (grid.data_as<double>()[2 * i + 1] != 0.0) FAIL("neighbour " << i << " written");
  }
  SECTION("an out the result broadcasts into, or of another dtype") {
    Array twice = Array::zeros(DType::Float64, {2, M});
    kiln::eval(kiln::sum(a, 1), twice);
    check_sums(twice.index(0, 0));
    check_sums(twice.index(0, 1));
    Array narrow = Array::zeros(DType::Float32, {M});
    kiln::eval(kiln::sum(a, 1), narrow);
    check_sums(narrow);
  }
  SECTION("the last of two reduction steps, over a fused operand") {
    Array out = Array::zeros(DType::Float64, {M});
    kiln::eval(kiln::sum(kiln::square(a - kiln::mean(a, 1, true)), 1), out);
    const Array fresh = kiln::eval(kiln::sum(kiln::square(a - kiln::mean(a, 1, true)), 1));
    CHECK(bytes_of(out) == bytes_of(fresh));
    Array m = kiln::eval(kiln::mean(a, 1));
    for (int64_t i = 0; i < M; i += 97) {
      double ss = 0;
      for (int64_t j = 0; j < L; ++j) ss += (get(a, i * L + j) - get(m, i)) * (get(a, i * L + j) - get(m, i));
      CHECK(get(out, i) == Approx(ss));
    }
  }
}

TEST_CASE("the plan cache evicts the least recently used plan", "[plan][cache]") {
  kiln::PlanCache cache(2);
  int builds = 0;
  auto build = [&] {
    ++builds;
    return std::make_shared<const kiln::Plan>();
  };
  cache.get("a", build);
  cache.get("b", build);
  cache.get("a", build);  // hit: a is now the most recent
  cache.get("c", build);  // evicts b
  CHECK(builds == 3);
  CHECK(cache.size() == 2);
  cache.get("a", build);
  CHECK(builds == 3);
  cache.get("b", build);  // rebuilt
  CHECK(builds == 4);
  CHECK(cache.hits() == 2);
  CHECK(cache.misses() == 4);
}

TEST_CASE("reductions from 8 user threads at once", "[reduce][threads]") {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  Array a = sample(DType::Float64, {400, 500}, 31);
  const std::vector<uint8_t> want_sum = bytes_of(kiln::eval(kiln::sum(kiln::square(a), 1)));
  const std::vector<uint8_t> want_std = bytes_of(kiln::eval((a - kiln::mean(a, 0)) / kiln::std(a, 0)));
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int rep = 0; rep < 20; ++rep) {
        if (bytes_of(kiln::eval(kiln::sum(kiln::square(a), 1))) != want_sum) ++failures;
        if (bytes_of(kiln::eval((a - kiln::mean(a, 0)) / kiln::std(a, 0))) != want_std) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
}

TEST_CASE("reductions over the same operands and axes share one pass", "[reduce][multi]") {
  for (const Shape& shape : {Shape{5000}, Shape{300, 70}, Shape{70, 300}}) {
    Array x = sample(DType::Float64, shape, 41), y = sample(DType::Float64, shape, 42);
    for (const Axes& axes : {Axes(), Axes(0), Axes(-1)}) {
      if (shape.size() == 1 && !axes.all && axes.list[0] == -1) continue;
      std::vector<Expr> exprs{kiln::sum(x * y, axes), kiln::max(x * y, axes), kiln::argmin(x, axes),
                              kiln::mean(x, axes, true), kiln::any(Expr(x) > 0.5, axes), kiln::prod(kiln::abs(y) + 1.0, axes)};
      std::string p = kiln::explain(exprs);
      size_t steps = 0;
      for (size_t q = p.find("reduce over"); q != std::string::npos; q = p.find("reduce over", q + 1)) ++steps;
      CHECK(steps == 1);
      std::vector<Array> together = kiln::eval(exprs);
      for (size_t i = 0; i < exprs.size(); ++i) {
        INFO("shape rank " << shape.size() << ", expression " << i);
        Array alone = kiln::eval(exprs[i]);
        CHECK(together[i].shape() == alone.shape());
        CHECK(bytes_of(together[i]) == bytes_of(alone));
      }
    }
  }
  // Operands of different shapes in one step run one by one, each over its own shape.
  Array m = sample(DType::Float64, {3, 4}, 44), v = sample(DType::Float64, {5}, 45);
  std::vector<Array> both = kiln::eval({kiln::sum(m), kiln::sum(v), kiln::argmax(m * 2.0)});
  CHECK(bytes_of(both[0]) == bytes_of(kiln::eval(kiln::sum(m))));
  CHECK(bytes_of(both[1]) == bytes_of(kiln::eval(kiln::sum(v))));
  CHECK(bytes_of(both[2]) == bytes_of(kiln::eval(kiln::argmax(m))));
  // A reduction of another's result is a later step; different axes are another step.
  Array x = sample(DType::Float64, {40, 30}, 43);
  std::string p = kiln::explain(std::vector<Expr>{kiln::sum(x), kiln::sum(x - kiln::mean(x)), kiln::sum(x, 0)});
  size_t steps = 0;
  for (size_t q = p.find("reduce over"); q != std::string::npos; q = p.find("reduce over", q + 1)) ++steps;
  CHECK(steps == 3);
}

TEST_CASE("regressions: shared passes keep each operand; wide temporaries; keys of axes and ddof", "[reduce][regression]") {
  // Two folds of one step: the first fold's operand register must survive the second's
  // instructions (it was reused, and both sums read the second operand).
  std::vector<double> av{0, 1, 2, 3};
  Array a = Array::wrap(av.data(), DType::Float64, {4}, {}, nullptr);
  Array ones = Array::scalar(1.0).broadcast_to({4});
  CHECK(get(kiln::eval(kiln::sum(a * ones) + kiln::sum(a * ones * 2.0 + 1.0)), 0) == 22.0);
  Array m = sample(DType::Float64, {6, 5}, 3), w = sample(DType::Float64, {6, 5}, 4);
  Array both = kiln::eval(kiln::sum(m * w, 0) + kiln::max(kiln::sqrt(kiln::abs(m * w)) * 2.0 - 1.0, 0));
  Array s0 = kiln::eval(kiln::sum(m * w, 0)), m0 = kiln::eval(kiln::max(kiln::sqrt(kiln::abs(m * w)) * 2.0 - 1.0, 0));
  for (int k = 0; k < 5; ++k) CHECK(get(both, k) == get(s0, k) + get(m0, k));
  // A narrow operand (bool, float32) computed from 8-byte temporaries in one register.
  Array i = kiln::eval(kiln::astype(Expr(sample(DType::Float64, {4096}, 5)) * 8.0, DType::Int64));
  int64_t big = 0;
  double f32sum = 0;
  for (int64_t k = 0; k < 4096; ++k) {
    int64_t v = i.data_as<int64_t>()[k];
    big += v * v + 1 > 100;
    f32sum += static_cast<float>(v * v + 1);
  }
  CHECK(get(kiln::eval(kiln::any(i * i + 1 > 100)), 0) == (big > 0));
  CHECK(get(kiln::eval(kiln::sum(kiln::as_bool(i * i + 1 > 100))), 0) == big);
  CHECK(get(kiln::eval(kiln::sum(kiln::as_float32(i * i + 1))), 0) == Approx(f32sum).epsilon(1e-6));
  // axis=0 with ddof=1 and axis=(0, 4, 6, 7, 8): different reductions, different plans.
  Array x = sample(DType::Float64, {2, 1, 1, 2, 1, 2, 1, 1, 1}, 6);
  std::vector<Array> r = kiln::eval({kiln::var(x, 0, false, 1), kiln::var(x, {0, 4, 6, 7, 8})});
  CHECK(r[0].shape() == Shape{1, 1, 2, 1, 2, 1, 1, 1});
  CHECK(r[1].shape() == Shape{1, 1, 2, 2});
  // The same value asked for twice: two arrays, not one buffer.
  std::vector<Array> twice = kiln::eval_many("s = sum(x); s; s", {{"x", x}});
  CHECK(twice[0].data() != twice[1].data());
  CHECK(twice[1].data() != twice[2].data());
  CHECK(get(twice[0], 0) == get(twice[2], 0));
}

namespace {
// Along axis 0 of a few rows longer than a task (16384 items), each column adds its rows
// one after another, as NumPy does: one band of up to 64 rows, folded into the result.
// Products (x*y, x**2) are added as they are made. Many shorter rows go in bands.
template <class T> void check_outer_axis() {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> dist(-1, 1);
  const std::pair<int64_t, int64_t> shapes[] = {{2, 16421}, {8, 16421}, {64, 16421}, {66, 16421}, {300, 1000}};
  for (auto [L, M] : shapes) {
    Array x = Array::empty(kiln::dtype_of<T>(), {L, M}), y = Array::empty(kiln::dtype_of<T>(), {L, M});
    T* v = x.data_as<T>();
    T* w = y.data_as<T>();
    for (int64_t i = 0; i < L * M; ++i) v[i] = static_cast<T>(dist(rng)), w[i] = static_cast<T>(dist(rng));
    // Each on its own (evaluated together they would share one pass, computed first).
    std::vector<Array> got;
    for (const Expr& e : {kiln::sum(x, 0), kiln::sum(kiln::square(x), 0), kiln::sum(Expr(x) * y, 0), kiln::max(x, 0),
                          kiln::mean(x, 0)})
      got.push_back(kiln::eval(e));
    // And together, in one pass.
    std::vector<Array> shared = kiln::eval({kiln::sum(kiln::square(x), 0), kiln::sum(Expr(x) * y, 0)});
    const bool in_order = L <= 64 && M > 16384;
    int64_t wrong = 0;
    for (int64_t c = 0; c < M; ++c) {
      T want[5] = {v[c], v[c] * v[c], v[c] * w[c], v[c], 0};
      double magnitude[5] = {std::fabs(v[c]), v[c] * v[c], std::fabs(v[c] * w[c]), 0, 0};
      for (int64_t r = 1; r < L; ++r) {
        const T item = v[r * M + c];
        want[0] += item;
        want[1] += item * item;
        want[2] += item * w[r * M + c];
        want[3] = std::max(want[3], item);
        magnitude[0] += std::fabs(item);
        magnitude[1] += item * item;
        magnitude[2] += std::fabs(item * w[r * M + c]);
      }
      want[4] = static_cast<T>(static_cast<double>(want[0]) / static_cast<double>(L));
      magnitude[4] = magnitude[0] / static_cast<double>(L);
      for (int k = 0; k < 5; ++k) {
        const T g = got[k].data_as<T>()[c];
        // In bands: both orders within the running sum's bound, L ulp of the magnitudes.
        if (in_order || k == 3) wrong += g != want[k];
        else wrong += std::fabs(g - want[k]) > 2 * std::numeric_limits<T>::epsilon() * L * magnitude[k];
      }
      wrong += shared[0].data_as<T>()[c] != got[1].data_as<T>()[c] || shared[1].data_as<T>()[c] != got[2].data_as<T>()[c];
    }
    INFO(L << " rows of " << M);
    CHECK(wrong == 0);
  }
}

template <class T> void check_sum_of_products(int64_t n) {
  std::mt19937_64 rng(n);
  std::uniform_real_distribution<double> dist(-1, 1);
  Array x = Array::empty(kiln::dtype_of<T>(), {n}), y = Array::empty(kiln::dtype_of<T>(), {n});
  long double exact = 0, magnitude = 0, exact_squares = 0;
  for (int64_t i = 0; i < n; ++i) {
    x.data_as<T>()[i] = static_cast<T>(dist(rng));
    y.data_as<T>()[i] = static_cast<T>(dist(rng));
    T product = x.data_as<T>()[i] * y.data_as<T>()[i];  // rounded as kiln rounds it
    exact += product;
    magnitude += std::fabs(static_cast<long double>(product));
    exact_squares += x.data_as<T>()[i] * x.data_as<T>()[i];
  }
  long double mean = 0, exact_var = 0;
  for (int64_t i = 0; i < n; ++i) mean += x.data_as<T>()[i];
  mean /= n;
  for (int64_t i = 0; i < n; ++i) exact_var += (x.data_as<T>()[i] - mean) * (x.data_as<T>()[i] - mean);
  exact_var /= n;
  std::vector<T> results, variances;
  for (int threads : {1, 2, 7}) {
    kiln::set_num_threads(threads);
    results.push_back(kiln::eval(kiln::sum(Expr(x) * y)).data_as<T>()[0]);
    // var's second pass folds (x - mean)**2 as it makes it: within the pairwise bound of
    // the two-pass variance, and the same bits for any thread count (checked below).
    const T var = kiln::eval(kiln::var(x)).data_as<T>()[0];
    variances.push_back(var);
    CHECK(std::fabs(static_cast<double>(var) - static_cast<double>(exact_var)) <=
          8 * std::numeric_limits<T>::epsilon() * std::log2(static_cast<double>(n) + 2) * static_cast<double>(exact_var) +
              std::numeric_limits<T>::min());
    // sum(x**2) is folded as sum(x*x): the same rounded products, the same bits.
    const T squares = kiln::eval(kiln::sum(kiln::square(x))).data_as<T>()[0];
    CHECK(squares == kiln::eval(kiln::sum(Expr(x) * x)).data_as<T>()[0]);
    CHECK(std::fabs(static_cast<double>(squares - exact_squares)) <=
          8 * std::numeric_limits<T>::epsilon() * std::log2(static_cast<double>(n) + 2) * static_cast<double>(exact_squares));
    // Sliced, so that x is not read in place: the general fused path, the same sum.
    Array x2 = Array::empty(kiln::dtype_of<T>(), {2 * n});
    for (int64_t i = 0; i < n; ++i) x2.data_as<T>()[2 * i] = x.data_as<T>()[i];
    T strided = kiln::eval(kiln::sum(Expr(x2.slice(0, 0, 2 * n, 2)) * y)).data_as<T>()[0];
    // Pairwise error bound: a few ulp times log2(n), relative to the sum of magnitudes.
    double tol = 8 * std::numeric_limits<T>::epsilon() * std::log2(static_cast<double>(n) + 2) * static_cast<double>(magnitude);
    CHECK(std::fabs(static_cast<double>(results.back() - exact)) <= tol);
    CHECK(std::fabs(static_cast<double>(strided - exact)) <= tol);
  }
  kiln::set_num_threads(0);
  CHECK(results[0] == results[1]);
  CHECK(results[0] == results[2]);
  CHECK(variances[0] == variances[1]);
  CHECK(variances[0] == variances[2]);
}
}  // namespace

// Sums and products of an array along axis 0, sums of products and var's deviations from
// column means read up to 8 rows a call (accumulate_rows, _products, _deviations), and
// the means, each rounded once from the float64 quotient as NumPy's:
// row counts around and past a group of 8, columns with a tail after the SIMD batches, rows
// longer and shorter than a page, a result made or written into out=, infinities and NaNs
// in a few columns. Where one band takes every row, each column's rows still go in order,
// so the result is the running loop's to the bit.
template <class T> void check_outer_axis_groups() {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> dist(-1, 1);
  const DType d = kiln::dtype_of<T>();
  const std::pair<int64_t, int64_t> shapes[] = {{1, 16421}, {7, 16421}, {8, 16421}, {9, 16421}, {13, 16421},
                                                {64, 16421}, {9, 1027},  {16, 1027}, {16, 1000},  {5, 37}};
  for (auto [L, M] : shapes) {
    INFO(L << " rows of " << M);
    Array x = Array::empty(d, {L, M}), z = Array::empty(d, {L, M});
    T* v = x.data_as<T>();
    T* w = z.data_as<T>();
    for (int64_t i = 0; i < L * M; ++i) v[i] = static_cast<T>(dist(rng)), w[i] = static_cast<T>(1 + dist(rng) / 8);
    const T inf = std::numeric_limits<T>::infinity();
    v[(L - 1) * M + M - 1] = std::numeric_limits<T>::quiet_NaN();  // the tail's last column
    v[M / 2] = inf;                                                // inf alone
    v[(L / 2) * M + 3] = inf;                                      // inf - inf where L > 1
    if (L > 1) v[(L - 1) * M + 3] = -inf;
    w[(L - 1) * M + 5] = 0;
    w[5] = inf;  // 0 * inf
    std::vector<T> sums(M), prods(M), dots(M), squares(M);
    for (int64_t c = 0; c < M; ++c) {
      sums[c] = v[c];
      prods[c] = w[c];
      dots[c] = v[c] * w[c];
      squares[c] = v[c] * v[c];
      for (int64_t r = 1; r < L; ++r) {
        sums[c] += v[r * M + c];
        prods[c] *= w[r * M + c];
        dots[c] += v[r * M + c] * w[r * M + c];
        squares[c] += v[r * M + c] * v[r * M + c];
      }
    }
    // var's second pass: each column's squared deviations from its mean, as the two-pass
    // loop makes them (the mean divided in double, as kiln's means are).
    // A ddof that makes the divisor 2^24 + 1, which no float32 holds: the float64 quotient.
    const int wide_ddof = static_cast<int>(L - (int64_t{1} << 24) - 1);
    std::vector<T> vars(M), wide_vars(M);
    for (int64_t c = 0; c < M; ++c) {
      const T mean = static_cast<T>(static_cast<double>(sums[c]) / static_cast<double>(L));
      T squared = 0;
      for (int64_t r = 0; r < L; ++r) {
        const T d = v[r * M + c] - mean;
        squared = r == 0 ? d * d : squared + d * d;
      }
      vars[c] = static_cast<T>(static_cast<double>(squared) / static_cast<double>(L));
      wide_vars[c] = static_cast<T>(static_cast<double>(squared) / 16777217.0);
    }
    // Sums of products along axis 0 take rows a group at a time too, the products made as
    // they are read (x*x reads x once), and so do var's deviations from the column means.
    Array made_dot = kiln::eval(kiln::sum(Expr(x) * z, 0)), made_square = kiln::eval(kiln::sum(kiln::square(x), 0));
    Array made_var = kiln::eval(kiln::var(x, 0)), made_std = kiln::eval(kiln::std(x, 0));
    Array made_sum = kiln::eval(kiln::sum(x, 0)), made_prod = kiln::eval(kiln::prod(z, 0));
    Array made_mean = kiln::eval(kiln::mean(x, 0));  // divided many at a time (divide_kernel)
    Array made_wide_var = kiln::eval(kiln::var(x, 0, false, wide_ddof));
    Array into_sum = Array::zeros(d, {M}), into_prod = Array::zeros(d, {M});
    kiln::eval(kiln::sum(x, 0), into_sum);
    kiln::eval(kiln::prod(z, 0), into_prod);
    auto same = [](T a, T b) { return a == b || (std::isnan(a) && std::isnan(b)); };
    int64_t wrong = 0;
    for (int64_t c = 0; c < M; ++c) {
      wrong += !same(made_sum.data_as<T>()[c], sums[c]) + !same(into_sum.data_as<T>()[c], sums[c]);
      wrong += !same(made_prod.data_as<T>()[c], prods[c]) + !same(into_prod.data_as<T>()[c], prods[c]);
      wrong += !same(made_dot.data_as<T>()[c], dots[c]) + !same(made_square.data_as<T>()[c], squares[c]);
      wrong += !same(made_var.data_as<T>()[c], vars[c]) + !same(made_std.data_as<T>()[c], std::sqrt(vars[c]));
      wrong += !same(made_mean.data_as<T>()[c], static_cast<T>(static_cast<double>(sums[c]) / static_cast<double>(L)));
      wrong += !same(made_wide_var.data_as<T>()[c], wide_vars[c]);
    }
    CHECK(wrong == 0);
    CHECK(std::isnan(sums[M - 1]));
    CHECK(std::isnan(prods[5]) == (L > 1));
  }
}

TEST_CASE("sums along axis 0 of a few long rows add each column's rows in order, as NumPy does; products as made",
          "[reduce]") {
  kiln::test::for_each_isa([&](const std::string&) {
    check_outer_axis<double>();
    check_outer_axis<float>();
    check_outer_axis_groups<double>();
    check_outer_axis_groups<float>();
  });
}

TEST_CASE("sum(x*y), sum(x**2) and var(x) fold the products as they make them: accurate, the same for any thread count",
          "[reduce]") {
  CHECK(kiln::explain(kiln::sum(Expr(Array::zeros(DType::Float64, {10})) * Array::zeros(DType::Float64, {10})))
            .find("multiply<float64>") != std::string::npos);
  CHECK(kiln::explain(kiln::sum(kiln::square(Array::zeros(DType::Float64, {10})))).find("square<float64>") !=
        std::string::npos);
  kiln::test::for_each_isa([&](const std::string&) {
    for (int64_t n : {1, 7, 100, 16384, 16385, 100003}) {
      check_sum_of_products<double>(n);
      check_sum_of_products<float>(n);
    }
  });
}

namespace {

// AVX-512 folds read operands that start past a cache line a line at a time (LineReader in
// kernel_impl.hpp): the same items in the same lanes, so every offset must give the bits
// the aligned operand gives. Whole arrays (several 16384-item pieces and a tail; var's
// squared deviations from the mean too), rows of
// an odd length (each row starts at another offset), products of operands at the same or
// different offsets; general values, so that any change in the order of the additions
// shows.
template <class T> void check_line_offsets() {
  constexpr int64_t kPerLine = 64 / static_cast<int64_t>(sizeof(T));
  constexpr int64_t n = 3 * 16384 + 5, rows = 40, cols = 1003;
  const DType d = kiln::dtype_of<T>();
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<T> xv(n), yv(n), zv(n);
  for (int64_t i = 0; i < n; ++i) {
    xv[i] = static_cast<T>(u(rng));
    yv[i] = static_cast<T>(u(rng));
    zv[i] = static_cast<T>(1 + u(rng) / 4096);  // a product that neither vanishes nor overflows
  }
  Array xs = Array::empty(d, {n + kPerLine}), ys = Array::empty(d, {n + kPerLine}), zs = Array::empty(d, {n + kPerLine});
  const char* exprs[] = {"sum(x)", "max(x)", "min(x)", "mean(x)", "prod(z)", "sum(x*y)", "sum(x*x)",
                         "var(x)", "sum(m, axis=1)", "max(m, axis=1)", "sum(m*w, axis=1)"};
  std::vector<Array> want;
  for (int64_t offset = 0; offset < kPerLine; ++offset) {
    const int64_t y_offset = (offset * 3) % kPerLine;  // y elsewhere in its line
    auto placed = [&](Array& base, int64_t at, const std::vector<T>& values) {
      Array v = base.slice(0, at, at + n);
      std::memcpy(v.data_as<T>(), values.data(), values.size() * sizeof(T));
      return v;
    };
    Array x = placed(xs, offset, xv), y = placed(ys, y_offset, yv), z = placed(zs, offset, zv);
    kiln::Bindings in = {{"x", x}, {"y", y}, {"z", z},
                         {"m", x.slice(0, 0, rows * cols).reshape({rows, cols})},
                         {"w", y.slice(0, 0, rows * cols).reshape({rows, cols})}};
    for (size_t e = 0; e < std::size(exprs); ++e) {
      INFO(exprs[e] << " at offset " << offset << " (y at " << y_offset << ") items");
      Array got = kiln::eval(exprs[e], in);
      if (offset == 0) {
        want.push_back(got);
        continue;
      }
      REQUIRE(got.size() == want[e].size());
      CHECK(std::memcmp(got.data_as<T>(), want[e].data_as<T>(), got.size() * sizeof(T)) == 0);
    }
  }
  // The aligned results themselves: max and min exactly, the sum within the pairwise bound.
  CHECK(want[1].data_as<T>()[0] == *std::max_element(xv.begin(), xv.end()));
  CHECK(want[2].data_as<T>()[0] == *std::min_element(xv.begin(), xv.end()));
  long double exact = 0;
  for (T v : xv) exact += v;
  CHECK(std::fabs(static_cast<double>(want[0].data_as<T>()[0] - exact)) <=
        64 * std::numeric_limits<T>::epsilon() * std::log2(static_cast<double>(n)) * n);
}

}  // namespace

TEST_CASE("folds over operands past a cache line give the aligned operand's bits, on every set", "[reduce]") {
  kiln::test::for_each_isa([&](const std::string&) {
    check_line_offsets<double>();
    check_line_offsets<float>();
  });
}

namespace {

// var(x, axis=1)'s second pass reads rows of a page or more straight from memory, each
// row's deviations from its own mean (shorter rows go through a register): within the
// pairwise bound of a two-pass long double variance, row by row, and the bits of var over
// the row alone. A row with an infinity is NaN; the other rows are untouched by it.
template <class T> void check_row_variances() {
  std::mt19937_64 rng(13);
  std::uniform_real_distribution<double> dist(-1, 1);
  const DType d = kiln::dtype_of<T>();
  const std::pair<int64_t, int64_t> shapes[] = {{3, 511}, {5, 512}, {7, 1000}, {3, 1024}, {2, 16389}};
  for (auto [R, L] : shapes) {
    INFO(R << " rows of " << L);
    Array x = Array::empty(d, {R, L});
    T* v = x.data_as<T>();
    for (int64_t i = 0; i < R * L; ++i) v[i] = static_cast<T>(3 + dist(rng));  // off zero: the mean matters
    v[L + 7] = std::numeric_limits<T>::infinity();                                // row 1
    Array var = kiln::eval(kiln::var(x, 1)), sd = kiln::eval(kiln::std(x, 1));
    for (int64_t r = 0; r < R; ++r) {
      const T got = var.data_as<T>()[r];
      if (r == 1) {
        CHECK(std::isnan(got));
        continue;
      }
      long double mean = 0, squared = 0;
      for (int64_t i = 0; i < L; ++i) mean += v[r * L + i];
      mean /= L;
      for (int64_t i = 0; i < L; ++i) squared += (v[r * L + i] - mean) * (v[r * L + i] - mean);
      const double want = static_cast<double>(squared / L);
      CHECK(std::fabs(static_cast<double>(got) - want) <=
            8 * std::numeric_limits<T>::epsilon() * std::log2(static_cast<double>(L) + 2) * want);
      CHECK(sd.data_as<T>()[r] == std::sqrt(got));
      CHECK(got == kiln::eval(kiln::var(x.slice(0, r, r + 1).reshape({L}))).template data_as<T>()[0]);
    }
  }
}

}  // namespace

TEST_CASE("var and std along rows: each row's deviations from its own mean, accurate, as the row alone", "[reduce]") {
  kiln::test::for_each_isa([&](const std::string&) {
    check_row_variances<double>();
    check_row_variances<float>();
  });
}
