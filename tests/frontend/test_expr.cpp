// The C++ API (kiln.hpp, xtensor.hpp): operators and named functions build exactly what
// the same expression string builds; literals follow NumPy 1.24's value-based casting;
// eval() writes into strided views and aliased inputs; explain() names the ops; xtensor
// containers and views are adopted zero-copy as inputs and outputs; misuse throws
// kiln::Error with the right status.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>
#include <xtensor/xstrided_view.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include "kiln/kiln.hpp"
#include "kiln/xtensor.hpp"
#include "plan_cache.hpp"

using Catch::Matchers::Contains;
using kiln::Array;
using kiln::DType;
using kiln::Expr;
using kiln::Status;

namespace {

template <class T>
Array make_array(const std::vector<T>& values, kiln::Shape shape = {}) {
  if (shape.empty()) shape = {static_cast<int64_t>(values.size())};
  Array a = Array::empty(kiln::dtype_of<T>(), shape);
  std::memcpy(a.data(), values.data(), values.size() * sizeof(T));
  return a;
}

Array make_bools(const std::vector<int>& values) {
  Array a = Array::empty(DType::Bool, {static_cast<int64_t>(values.size())});
  for (size_t k = 0; k < values.size(); ++k) a.data_as<bool>()[k] = values[k] != 0;
  return a;
}

// Elements in C order, whatever the strides.
template <class T>
std::vector<T> values_of(const Array& a) {
  REQUIRE(a.dtype() == kiln::dtype_of<T>());
  Array c = a.copy();
  return std::vector<T>(c.data_as<T>(), c.data_as<T>() + c.size());
}

// Same dtype, shape and bytes (NaNs included, bit for bit).
void require_identical(const Array& got, const Array& want) {
  REQUIRE(got.dtype() == want.dtype());
  REQUIRE(got.shape() == want.shape());
  Array g = got.copy(), w = want.copy();
  CHECK(std::memcmp(g.data(), w.data(), static_cast<size_t>(g.size()) * g.itemsize()) == 0);
}

std::vector<double> doubles(size_t n, int seed) {
  std::vector<double> v(n);
  for (size_t k = 0; k < n; ++k)
    v[k] = (static_cast<double>((k * 37 + static_cast<size_t>(seed) * 11) % 201) - 100) / 16.0;
  v[0] = 0.0;
  if (n > 3) v[3] = -0.0;
  return v;
}

template <class T>
kiln::Error error_of(T&& f) {
  try {
    f();
  } catch (const kiln::Error& e) {
    return e;
  }
  FAIL("no kiln::Error was thrown");
  return kiln::Error(Status::Ok, "");
}

}  // namespace

TEST_CASE("C++ operators and functions build what the same expression string builds", "[expr]") {
  const size_t n = 1031;
  std::vector<double> av = doubles(n, 1), bv = doubles(n, 2);
  std::vector<float> fv(n);
  std::vector<int32_t> iv(n);
  std::vector<int64_t> lv(n);
  std::vector<int> mv(n);
  for (size_t k = 0; k < n; ++k) {
    fv[k] = static_cast<float>(av[k] * 0.75);
    iv[k] = static_cast<int32_t>(k % 19) - 9;
    lv[k] = static_cast<int64_t>(k * 7919 % 1000) - 500;
    mv[k] = (k % 3) == 0;
  }
  bv[5] = std::numeric_limits<double>::quiet_NaN();
  bv[6] = std::numeric_limits<double>::infinity();
  Array a = make_array(av), b = make_array(bv), f = make_array(fv), i = make_array(iv), l = make_array(lv),
        m = make_bools(mv);
  kiln::Bindings bind{{"a", a}, {"b", b}, {"f", f}, {"i", i}, {"l", l}, {"m", m}};

  struct Case {
    Expr expr;
    const char* text;
  };
  const Case cases[] = {
      {a + b * 2, "a + b * 2"},
      {-a / (b + 1.5), "-a / (b + 1.5)"},
      {kiln::sqrt(a * a + b * b), "sqrt(a * a + b * b)"},
      {kiln::where(a > b, a, b), "where(a > b, a, b)"},
      {kiln::where(m, i, l), "where(m, i, l)"},
      {kiln::clip(a, -1, 1), "clip(a, -1, 1)"},
      {kiln::relu(a - 0.5), "relu(a - 0.5)"},
      {kiln::sigmoid(a), "sigmoid(a)"},
      {kiln::exp(kiln::sin(a)) - kiln::log1p(kiln::abs(b)), "exp(sin(a)) - log1p(abs(b))"},
      {i % 4 + kiln::floor_divide(l, 7), "i % 4 + l // 7"},
      {kiln::power(i, 3) - kiln::power(a, 2), "i ** 3 - a ** 2"},
      {(i & 6) | (~l ^ i), "(i & 6) | (~l ^ i)"},
      {(a < b) | (a == b) | m, "(a < b) | (a == b) | m"},
      {(a != b) & ~m, "(a != b) & ~m"},
      // Casts of computed values only: see "explicit casts convert their operand" below.
      {kiln::as_float32(a * b) * 2.5, "float32(a * b) * 2.5"},
      {kiln::astype(i * 2, DType::Float64) / 3, "float64(i * 2) / 3"},
      {kiln::as_int32(f * 2) + kiln::as_int64(a > b), "int32(f * 2) + int64(a > b)"},
      {kiln::as_bool(i - 1) & m, "bool(i - 1) & m"},
      {kiln::minimum(a, b) + kiln::maximum(f, b) + kiln::fmin(a, b) + kiln::fmax(b, f),
       "minimum(a, b) + maximum(f, b) + fmin(a, b) + fmax(b, f)"},
      {f * 3 - i, "f * 3 - i"},
      {kiln::floor(a) + kiln::ceil(f) - kiln::trunc(b) + kiln::sign(a), "floor(a) + ceil(f) - trunc(b) + sign(a)"},
      {kiln::copysign(a, b) + kiln::hypot(f, a), "copysign(a, b) + hypot(f, a)"},
      {kiln::isnan(b) | kiln::isinf(b) | ~kiln::isfinite(a), "isnan(b) | isinf(b) | ~isfinite(a)"},
      {+a - -a, "+a - -a"},
      {a >= 0, "a >= 0"},
      {2 <= a, "2 <= a"},
      {1 - a * a, "1 - a * a"},
      {m + m, "m + m"},
      {m * true, "m * True"},
      {kiln::square(l) + kiln::negative(i), "square(l) + negative(i)"},
      {kiln::arctan2(a, f) * kiln::tanh(b), "arctan2(a, f) * tanh(b)"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    Array from_expr = kiln::eval(c.expr);
    Array from_text = kiln::eval(std::string_view(c.text), bind);
    require_identical(from_expr, from_text);
  }
}

TEST_CASE("literals follow NumPy 1.24 value-based casting instead of upcasting", "[expr]") {
  Array f32 = make_array(std::vector<float>{1.5f, -2.0f, 4.0f});
  Array f64 = make_array(std::vector<double>{1.5, -2.0, 4.0});
  Array i32 = make_array(std::vector<int32_t>{1, -2, 4});
  Array i64 = make_array(std::vector<int64_t>{1, -2, 4});
  Array b = make_bools({1, 0, 1});

  CHECK(kiln::eval(f32 * 2.5).dtype() == DType::Float32);
  CHECK(values_of<float>(kiln::eval(f32 * 2.5)) == std::vector<float>{3.75f, -5.0f, 10.0f});
  CHECK(kiln::eval(f32 * 2.5f).dtype() == DType::Float32);
  CHECK(kiln::eval(f32 + 3).dtype() == DType::Float32);
  CHECK(kiln::eval(f32 + 1e300).dtype() == DType::Float64);  // does not fit float32
  CHECK(kiln::eval(f64 * 2.5f).dtype() == DType::Float64);
  CHECK(kiln::eval(i32 + 3).dtype() == DType::Int32);
  CHECK(values_of<int32_t>(kiln::eval(i32 + 3)) == std::vector<int32_t>{4, 1, 7});
  CHECK(kiln::eval(i32 + int64_t{3}).dtype() == DType::Int32);
  CHECK(kiln::eval(i32 + 3000000000LL).dtype() == DType::Int64);  // does not fit int32
  CHECK(values_of<int64_t>(kiln::eval(i32 + 3000000000LL)) ==
        std::vector<int64_t>{3000000001LL, 2999999998LL, 3000000004LL});
  CHECK(kiln::eval(i32 + 1.5).dtype() == DType::Float64);
  CHECK(values_of<double>(kiln::eval(i32 + 1.5)) == std::vector<double>{2.5, -0.5, 5.5});
  CHECK(kiln::eval(i64 * 2).dtype() == DType::Int64);
  CHECK(kiln::eval(b + 1).dtype() == DType::Int64);
  CHECK(kiln::eval(b * 2.5).dtype() == DType::Float64);
  CHECK(kiln::eval(b & true).dtype() == DType::Bool);
  CHECK(kiln::eval(kiln::where(b, f32, 0)).dtype() == DType::Float32);
  CHECK(kiln::eval(kiln::clip(i32, 0, 2)).dtype() == DType::Int32);
  // Two arrays still promote as arrays.
  CHECK(kiln::eval(f32 * f64).dtype() == DType::Float64);
  CHECK(kiln::eval(i32 + f32).dtype() == DType::Float64);

  kiln::Bindings bind{{"f", f32}, {"i", i32}};
  CHECK(kiln::eval("f * 2.5", bind).dtype() == DType::Float32);
  CHECK(kiln::eval("i + 3", bind).dtype() == DType::Int32);
  CHECK(kiln::eval("i + 1.5", bind).dtype() == DType::Float64);
  CHECK(kiln::eval("i - -2147483648", bind).dtype() == DType::Int32);
  CHECK(kiln::eval("i - 2147483648", bind).dtype() == DType::Int64);
  CHECK(kiln::eval("i * 2 + f", bind).dtype() == DType::Float64);
  // A literal-only subexpression is still a literal: f * (2 * 3.5) stays float32.
  CHECK(kiln::eval("f * (2 * 3.5)", bind).dtype() == DType::Float32);
}

// The string API lists up to 16 bindings on the stack and more on the heap: both sides.
TEST_CASE("the string API takes any number of bindings, a few or many", "[expr]") {
  for (int count : {1, 16, 17, 40}) {
    CAPTURE(count);
    kiln::Bindings bind;
    std::string expr;
    std::vector<double> expected(4, 0);
    for (int i = 0; i < count; ++i) {
      Array x = Array::empty(DType::Float64, {4});
      for (int j = 0; j < 4; ++j) x.data_as<double>()[j] = i - 1.5 * j;
      bind.push_back({"x" + std::to_string(i), x});
      expr += (i ? " - " : "") + std::string("x") + std::to_string(i);
      for (int j = 0; j < 4; ++j) expected[j] += (i ? -1 : 1) * (i - 1.5 * j);
    }
    Array r = kiln::eval(expr, bind);
    Array o = Array::empty(DType::Float64, {4});
    kiln::eval(expr, bind, o);
    for (int j = 0; j < 4; ++j) {
      CHECK(r.data_as<double>()[j] == expected[j]);
      CHECK(o.data_as<double>()[j] == expected[j]);
    }
  }
}

TEST_CASE("eval writes into strided views and into aliased inputs", "[expr]") {
  std::vector<double> av = doubles(40, 3);
  Array a = make_array(av);
  Array big = Array::zeros(DType::Float64, {80});
  Array every_other = big.slice(0, 0, 80, 2);  // 40 elements, stride 16 bytes
  kiln::eval(a * 2 + 1, every_other);
  std::vector<double> got = values_of<double>(big);
  for (size_t k = 0; k < 40; ++k) {
    CHECK(got[2 * k] == av[k] * 2 + 1);
    CHECK(got[2 * k + 1] == 0.0);
  }

  // A reversed view as out, through the string API.
  Array backwards = big.slice(0, 79, -81, -2);  // elements 79, 77, ..., 1
  REQUIRE(backwards.shape() == kiln::Shape{40});
  kiln::eval("a - 7", {{"a", a}}, backwards);
  got = values_of<double>(big);
  for (size_t k = 0; k < 40; ++k) {
    CHECK(got[79 - 2 * k] == av[k] - 7);
    CHECK(got[2 * k] == av[k] * 2 + 1);
  }

  // A transposed 2-D out, with a broadcast row input and a float32 out (same_kind).
  Array m = make_array(doubles(12, 4), {3, 4});
  Array row = make_array(std::vector<double>{1, 2, 3});
  Array out32 = Array::zeros(DType::Float32, {3, 4}).transpose();  // shape (4, 3)
  kiln::eval(m.transpose() * row, out32);
  std::vector<double> mv = values_of<double>(m);
  std::vector<float> ov = values_of<float>(out32);
  for (size_t r = 0; r < 4; ++r)
    for (size_t c = 0; c < 3; ++c) CHECK(ov[r * 3 + c] == static_cast<float>(mv[c * 4 + r] * (c + 1.0)));

  // Aliased: a = 2 * a + 1 in place, in one pass.
  Array x = make_array(av);
  kiln::eval(2 * x + 1, x);
  std::vector<double> xv = values_of<double>(x);
  for (size_t k = 0; k < av.size(); ++k) CHECK(xv[k] == 2 * av[k] + 1);

  // Partially overlapping: out is x[1:], input x[:-1]; NumPy reads the input first.
  Array y = make_array(av);
  kiln::eval(y.slice(0, 0, 39) * 10, y.slice(0, 1, 40));
  std::vector<double> yv = values_of<double>(y);
  CHECK(yv[0] == av[0]);
  for (size_t k = 1; k < av.size(); ++k) CHECK(yv[k] == av[k - 1] * 10);
}

TEST_CASE("one Expr evaluated again reads its inputs' current values, into any out dtype, from any thread", "[expr]") {
  // eval keeps an Expr's lowering and plan on its root (evaluation() in expr.cpp): a
  // repeated eval must still compute afresh, and plan again for another out dtype or set.
  std::vector<double> av = doubles(100, 5);
  Array a = make_array(av);
  Expr e = kiln::where(Expr(a) > 0, Expr(a), 0.5 * Expr(a)) + 1;
  auto want = [&](size_t k) {
    const double v = a.data_as<double>()[k];
    return (v > 0 ? v : 0.5 * v) + 1;
  };
  for (int round = 0; round < 3; ++round) {
    for (size_t k = 0; k < av.size(); ++k) a.data_as<double>()[k] = av[k] * (round % 2 ? -1.0 : 1.0) + round;
    Array r = kiln::eval(e);
    Array o64 = Array::zeros(DType::Float64, {100}), o32 = Array::zeros(DType::Float32, {100});
    kiln::eval(e, o32);
    kiln::eval(e, o64);
    std::vector<double> rv = values_of<double>(r), v64 = values_of<double>(o64);
    std::vector<float> v32 = values_of<float>(o32);
    for (size_t k = 0; k < av.size(); ++k) {
      INFO("round " << round << " element " << k);
      CHECK(rv[k] == want(k));
      CHECK(v64[k] == want(k));
      CHECK(v32[k] == static_cast<float>(want(k)));
    }
  }
  // Evaluated again for the same out dtype, it skips the plan cache (the root holds its
  // plan); for another, it looks the plan up there again.
  Array o64 = Array::empty(DType::Float64, {100}), o32 = Array::empty(DType::Float32, {100});
  kiln::eval(e, o64);
  const uint64_t hits = kiln::PlanCache::global().hits(), misses = kiln::PlanCache::global().misses();
  for (int i = 0; i < 5; ++i) kiln::eval(e, o64);
  CHECK(kiln::PlanCache::global().hits() == hits);
  CHECK(kiln::PlanCache::global().misses() == misses);
  kiln::eval(e, o32);
  CHECK(kiln::PlanCache::global().hits() == hits + 1);
  CHECK(kiln::PlanCache::global().misses() == misses);
  const std::string original = kiln::simd_isa();
  for (const std::string& isa : kiln::available_simd_isas()) {
    kiln::set_simd_isa(isa);
    std::vector<double> rv = values_of<double>(kiln::eval(e));
    for (size_t k = 0; k < av.size(); ++k) CHECK(rv[k] == want(k));
  }
  kiln::set_simd_isa(original);
  // Threads evaluating the same Expr at once (each into its own out, or a new result).
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      Array o = Array::empty(t % 2 ? DType::Float32 : DType::Float64, {100});
      for (int i = 0; i < 200; ++i) {
        Array r = t == 3 ? kiln::eval(e) : (kiln::eval(e, o), o);
        for (size_t k = 0; k < av.size(); ++k)
          wrong[t] += (r.dtype() == DType::Float32 ? double(r.data_as<float>()[k]) : r.data_as<double>()[k]) !=
                      (r.dtype() == DType::Float32 ? double(float(want(k))) : want(k));
      }
    });
  for (std::thread& t : threads) t.join();
  CHECK(wrong == std::vector<int>(4, 0));
}

TEST_CASE("explain shows the fused plan with the ops it runs", "[expr]") {
  Array a = make_array(doubles(100, 5)), b = make_array(doubles(100, 6));
  std::string from_expr = kiln::explain(kiln::sqrt(a * a + b * b) - kiln::maximum(a, 0.5));
  INFO(from_expr);
  CHECK_THAT(from_expr, Contains("fused loop") && Contains("sqrt") && Contains("add") && Contains("maximum") &&
                            Contains("subtract") && Contains("float64"));
  std::string from_text = kiln::explain("where(x > 1, exp(x), float32(y))", {{"x", a}, {"y", b}});
  INFO(from_text);
  CHECK_THAT(from_text, Contains("where") && Contains("exp") && Contains("greater") && Contains("$x") &&
                            Contains("$y"));
}

TEST_CASE("xtensor containers are adopted without copying, as inputs and outputs", "[expr][xtensor]") {
  SECTION("xt::xarray<double> in, new kiln array out, against xt::sqrt(a*a + b*b)") {
    xt::xarray<double> a = xt::adapt(doubles(1000, 7), std::vector<size_t>{10, 100});
    xt::xarray<double> b = xt::adapt(doubles(1000, 8), std::vector<size_t>{10, 100});
    Array ka = kiln::adopt(a), kb = kiln::adopt(b);
    CHECK(ka.data() == reinterpret_cast<char*>(a.data()));
    CHECK(ka.shape() == kiln::Shape{10, 100});
    Array r = kiln::eval(kiln::sqrt(ka * ka + kb * kb));
    xt::xarray<double> want = xt::sqrt(a * a + b * b);
    REQUIRE(r.shape() == kiln::Shape{10, 100});
    std::vector<double> got = values_of<double>(r);
    for (size_t k = 0; k < got.size(); ++k) CHECK(got[k] == want.data()[k]);

    // Writing through the adopted array changes the container: the memory is shared.
    kiln::eval(ka * 0 + 5, ka);
    CHECK(a(3, 7) == 5.0);
  }

  SECTION("xt::xtensor<float, 2> in and out, against xt::where") {
    xt::xtensor<float, 2> a = xt::zeros<float>({64, 33});
    xt::xtensor<float, 2> b = xt::zeros<float>({64, 33});
    for (size_t r = 0; r < 64; ++r)
      for (size_t c = 0; c < 33; ++c) {
        a(r, c) = static_cast<float>((r * 31 + c * 17) % 23) - 11.5f;
        b(r, c) = static_cast<float>((r * 7 + c * 29) % 19) - 9.0f;
      }
    xt::xtensor<float, 2> out = xt::zeros<float>({64, 33});
    float* before = out.data();
    Array ka = kiln::adopt(a), kb = kiln::adopt(b);
    kiln::eval(kiln::where(ka > kb, ka * 2.5, kb - 1), out);  // the xtensor overload of eval
    CHECK(out.data() == before);
    xt::xtensor<float, 2> want = xt::where(a > b, a * 2.5f, b - 1.0f);
    bool same = out == want;
    CHECK(same);
    CHECK(kiln::adopt(out).dtype() == DType::Float32);
  }

  SECTION("xt::adapt over a std::vector, in and out") {
    std::vector<double> va = doubles(4097, 9), vo(4097, -1.0);
    auto a = xt::adapt(va, std::vector<size_t>{va.size()});
    auto o = xt::adapt(vo, std::vector<size_t>{vo.size()});
    Array ka = kiln::adopt(a);
    CHECK(ka.data() == reinterpret_cast<char*>(va.data()));
    kiln::eval(kiln::clip(ka, -2, 3) * ka, o);
    xt::xarray<double> want = xt::clip(a, -2.0, 3.0) * a;
    for (size_t k = 0; k < vo.size(); ++k) CHECK(vo[k] == want(k));
  }

  SECTION("a transposed xtensor view, as an input and as the output") {
    xt::xarray<double> a = xt::adapt(doubles(35, 10), std::vector<size_t>{5, 7});
    auto t = xt::transpose(a);  // (7, 5), strides (1, 7) in elements
    Array kt = kiln::adopt(t);
    REQUIRE(kt.shape() == kiln::Shape{7, 5});
    CHECK(kt.strides() == kiln::Shape{8, 56});
    xt::xarray<double> b = xt::adapt(doubles(5, 11), std::vector<size_t>{5});
    Array kb = kiln::adopt(b);
    Array r = kiln::eval(kt * kb - 1);
    xt::xarray<double> want = t * b - 1.0;
    std::vector<double> got = values_of<double>(r);
    for (size_t i = 0; i < 7; ++i)
      for (size_t j = 0; j < 5; ++j) CHECK(got[i * 5 + j] == want(i, j));

    // Out through a transposed view of a fresh array: the container sees the transpose.
    xt::xarray<double> o = xt::zeros<double>({5, 7});
    auto ot = xt::transpose(o);
    kiln::eval(kt * kb - 1, ot);
    bool same = xt::transpose(o) == want;
    CHECK(same);
  }

  SECTION("a strided xt::view (every other column)") {
    xt::xarray<double> a = xt::adapt(doubles(48, 12), std::vector<size_t>{6, 8});
    auto v = xt::view(a, xt::all(), xt::range(1, 8, 2));  // (6, 4), offset 1
    Array kv = kiln::adopt(v);
    REQUIRE(kv.shape() == kiln::Shape{6, 4});
    Array r = kiln::eval(kiln::abs(kv) + kiln::floor(kv));
    xt::xarray<double> want = xt::abs(v) + xt::floor(v);
    std::vector<double> got = values_of<double>(r);
    for (size_t i = 0; i < 6; ++i)
      for (size_t j = 0; j < 4; ++j) CHECK(got[i * 4 + j] == want(i, j));

    // As out: only the viewed columns change.
    xt::xarray<double> before = a;
    kiln::eval(kv * 100, v);
    for (size_t i = 0; i < 6; ++i)
      for (size_t j = 0; j < 8; ++j) CHECK(a(i, j) == (j % 2 ? before(i, j) * 100 : before(i, j)));
  }
}

TEST_CASE("misuse of the C++ API throws kiln::Error with the right status", "[expr]") {
  Array a = make_array(std::vector<double>(12, 1.0), {3, 4});
  Array b = make_array(std::vector<double>(5, 2.0));
  Array i = make_array(std::vector<int32_t>(12, 3), {3, 4});

  kiln::Error e = error_of([&] { kiln::eval(a + b); });
  CHECK(e.status() == Status::ShapeMismatch);
  CHECK_THAT(e.what(), Contains("(3, 4)") && Contains("(5,)"));

  e = error_of([&] { kiln::eval("a + b", {{"a", a}, {"b", b}}); });
  CHECK(e.status() == Status::ShapeMismatch);
  CHECK_THAT(e.what(), Contains("add") && Contains("(3, 4)") && Contains("(5,)"));

  e = error_of([&] { kiln::eval("a + * 2", {{"a", a}}); });
  CHECK(e.status() == Status::ParseError);
  CHECK(e.offset() == 4);
  CHECK_THAT(e.what(), Contains("position 4") && Contains("'*'"));

  e = error_of([&] { kiln::eval("a + c", {{"a", a}}); });
  CHECK(e.status() == Status::UnknownName);
  CHECK(e.offset() == 4);
  CHECK_THAT(e.what(), Contains("'c'"));

  e = error_of([&] { kiln::eval("blah(a)", {{"a", a}}); });
  CHECK(e.status() == Status::UnknownName);
  CHECK_THAT(e.what(), Contains("'blah'"));

  e = error_of([&] { kiln::eval(kiln::bitwise_and(a, a)); });
  CHECK(e.status() == Status::TypeError);
  CHECK_THAT(e.what(), Contains("bitwise_and") && Contains("float64"));

  e = error_of([&] { kiln::eval(i | a); });
  CHECK(e.status() == Status::TypeError);
  CHECK_THAT(e.what(), Contains("int32, float64"));

  Array iout = make_array(std::vector<int32_t>(12, 42), {3, 4});
  e = error_of([&] { kiln::eval(i / 2, iout); });
  CHECK(e.status() == Status::TypeError);
  CHECK_THAT(e.what(), Contains("float64") && Contains("int32"));
  CHECK(values_of<int32_t>(iout) == std::vector<int32_t>(12, 42));

  Array small_out = make_array(std::vector<double>(4, 9.0));
  e = error_of([&] { kiln::eval(a * 2, small_out); });
  CHECK(e.status() == Status::ShapeMismatch);
  CHECK_THAT(e.what(), Contains("(3, 4)") && Contains("(4,)"));
  CHECK(values_of<double>(small_out) == std::vector<double>(4, 9.0));

  e = error_of([&] { kiln::eval(a * 2, Array()); });
  CHECK(e.status() == Status::BadArgument);
  e = error_of([&] { Expr x{Array()}; });
  CHECK(e.status() == Status::BadArgument);
  e = error_of([&] { kiln::eval("a + a", {{"a", a}, {"a", a}}); });
  CHECK(e.status() == Status::BadArgument);
  CHECK_THAT(e.what(), Contains("'a'") && Contains("twice"));
  e = error_of([&] { kiln::eval("add(a)", {{"a", a}}); });
  CHECK(e.status() == Status::BadArgument);
  CHECK_THAT(e.what(), Contains("add takes 2 arguments"));
  e = error_of([&] { kiln::eval(-(a > 0)); });
  CHECK(e.status() == Status::TypeError);
  CHECK_THAT(e.what(), Contains("negative") && Contains("bool"));
  e = error_of([&] { kiln::set_num_threads(-3); });
  CHECK(e.status() == Status::BadArgument);
  e = error_of([&] { kiln::set_simd_isa("nonsense"); });
  CHECK(e.status() == Status::BadArgument);
  CHECK_THAT(e.what(), Contains("nonsense") && Contains("not an instruction set kiln has") && Contains(kiln::simd_isa()));
  const std::vector<std::string> have = kiln::available_simd_isas();
  for (const char* isa : {"avx2", "avx512"}) {  // a known set not offered: not built, or not run here
    if (std::find(have.begin(), have.end(), isa) != have.end()) continue;
    e = error_of([&] { kiln::set_simd_isa(isa); });
    CHECK(e.status() == Status::BadArgument);
    CHECK_THAT(e.what(), Contains("was not built") || Contains("not one this CPU runs"));
  }
}

// Regression tests for bugs the differential test found: a Cast node once emitted no
// conversion (wrong values, and 8-byte writes into a 4-byte output); literals once
// ignored their values when promoting.
TEST_CASE("explicit casts convert their operand", "[expr]") {
  Array a = make_array(std::vector<double>{1.5, -2.5, 7.0, 0.0});
  Array b = make_array(std::vector<double>{1.0, -3.0, 7.0, 1.0});
  // bool -> int64 of a comparison: 1 + (a > b).
  CHECK(values_of<int64_t>(kiln::eval(kiln::as_int64(a > b) + 1)) == std::vector<int64_t>{2, 2, 1, 1});
  CHECK(values_of<int64_t>(kiln::eval("int64(a > b) + 1", {{"a", a}, {"b", b}})) ==
        std::vector<int64_t>{2, 2, 1, 1});
  // float64 -> float32 of a product, then float32 arithmetic.
  CHECK(values_of<float>(kiln::eval(kiln::as_float32(a * b) * 2)) == std::vector<float>{3.0f, 15.0f, 98.0f, 0.0f});
  // float64 -> int32 truncates toward zero, as NumPy's astype.
  CHECK(values_of<int32_t>(kiln::eval(kiln::as_int32(a * 1) + 0)) == std::vector<int32_t>{1, -2, 7, 0});
  // A cast at the root, straight from an input, writes the narrower dtype.
  Array r = kiln::eval(kiln::as_int32(a));
  CHECK(r.dtype() == DType::Int32);
  CHECK(values_of<int32_t>(r) == std::vector<int32_t>{1, -2, 7, 0});
}

TEST_CASE("int literals beyond int16 promote float32 arrays to float64, as NumPy 1.24", "[expr]") {
  Array f32 = make_array(std::vector<float>{1.5f, -2.0f});
  CHECK(kiln::eval(f32 + 65535).dtype() == DType::Float32);
  CHECK(kiln::eval(f32 + -32768).dtype() == DType::Float32);
  CHECK(kiln::eval(f32 + 65536).dtype() == DType::Float64);   // NumPy: uint32 scalar -> float64
  CHECK(kiln::eval(f32 + -32769).dtype() == DType::Float64);  // int32 scalar -> float64
  CHECK(kiln::eval("f * 100000", {{"f", f32}}).dtype() == DType::Float64);
  // Literal-only subexpressions are one Python scalar: their value decides, too.
  Array i32 = make_array(std::vector<int32_t>{1, 2});
  CHECK(kiln::eval("i + 2 ** 40", {{"i", i32}}).dtype() == DType::Int64);
  CHECK(kiln::eval("f * (1e300 * 1)", {{"f", f32}}).dtype() == DType::Float64);
}
