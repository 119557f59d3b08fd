// The fused executor: layouts (broadcast, strided, reversed, transposed, 0-d, empty),
// chunk and SIMD-width edges, thread-count independence, aliasing of `out`, concurrent
// and nested use, and use after fork().
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <thread>

#include <tbb/parallel_for.h>

#include "kernels.hpp"
#include "isa_loop.hpp"
#include "kiln/kiln.hpp"
#include "parser.hpp"
#include "plan.hpp"

using kiln::Array;
using kiln::DType;
using kiln::Shape;

namespace {

Array iota(DType d, const Shape& shape, double start = 0.5, double step = 1.0) {
  Array a = Array::empty(d, shape);
  for (int64_t i = 0; i < a.size(); ++i) {
    double v = start + step * static_cast<double>(i);
    switch (d) {
      case DType::Float64: a.data_as<double>()[i] = v; break;
      case DType::Float32: a.data_as<float>()[i] = static_cast<float>(v); break;
      case DType::Int32: a.data_as<int32_t>()[i] = static_cast<int32_t>(v); break;
      case DType::Int64: a.data_as<int64_t>()[i] = static_cast<int64_t>(v); break;
      case DType::Bool: a.data_as<bool>()[i] = static_cast<int64_t>(v) % 3 == 0; break;
    }
  }
  return a;
}

Array random_f64(const Shape& shape, uint64_t seed) {
  Array a = Array::empty(DType::Float64, shape);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-3, 3);
  for (int64_t i = 0; i < a.size(); ++i) a.data_as<double>()[i] = u(rng);
  return a;
}

// Element at a multi-index of a (possibly strided, possibly broadcast) array of T.
template <class T = double> T at(const Array& a, const std::vector<int64_t>& idx) {
  const char* p = a.data();
  size_t lead = idx.size() - a.shape().size();
  for (size_t d = 0; d < a.shape().size(); ++d) {
    int64_t i = a.shape()[d] == 1 ? 0 : idx[lead + d];
    p += i * a.strides()[d];
  }
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Checks r == f(a, b) elementwise over r's shape, with NumPy broadcasting of a and b.
void check_binary(const Array& r, const Array& a, const Array& b, const std::function<double(double, double)>& f) {
  REQUIRE(r.dtype() == DType::Float64);
  std::vector<int64_t> idx(r.ndim(), 0);
  for (int64_t k = 0; k < r.size(); ++k) {
    double want = f(at(a, idx), at(b, idx));
    double got = at(r, idx);
    if (got != want) FAIL("at flat " << k << ": got " << got << ", want " << want);
    for (int d = r.ndim() - 1; d >= 0; --d) {
      if (++idx[d] < r.shape()[d]) break;
      idx[d] = 0;
    }
  }
}

const auto kMulAdd = [](double x, double y) { return x * 2.0 + y; };

}  // namespace

TEST_CASE("broadcasting follows NumPy's rules", "[execute]") {
  struct Case {
    Shape a, b, result;
  };
  for (const Case& c : std::vector<Case>{{{3, 4}, {4}, {3, 4}},
                                         {{3, 1}, {1, 4}, {3, 4}},
                                         {{2, 3, 4}, {3, 1}, {2, 3, 4}},
                                         {{5, 1, 7}, {1, 6, 1}, {5, 6, 7}},
                                         {{1}, {9}, {9}},
                                         {{}, {2, 3}, {2, 3}},
                                         {{4097, 1}, {1, 3}, {4097, 3}},
                                         {{700, 301}, {301}, {700, 301}}}) {
    Array a = random_f64(c.a, 1), b = random_f64(c.b, 2);
    Array r = kiln::eval(a * 2.0 + b);
    REQUIRE(r.shape() == c.result);
    check_binary(r, a, b, kMulAdd);
  }
}

TEST_CASE("shapes that do not broadcast name the op and both shapes", "[execute][errors]") {
  Array a = random_f64({3, 4}, 1), b = random_f64({5}, 2);
  try {
    kiln::eval("a * 2 + b", {{"a", a}, {"b", b}});
    FAIL("no error");
  } catch (const kiln::Error& e) {
    CHECK(e.status() == kiln::Status::ShapeMismatch);
    CHECK(std::string(e.what()) == "add at position 6: shapes (3, 4) and (5,) do not broadcast");
  }
}

TEST_CASE("strided, reversed and transposed views are read correctly", "[execute]") {
  Array base = random_f64({64, 33}, 3), other = random_f64({64, 33}, 4);
  std::vector<std::pair<Array, Array>> cases = {
      {base.slice(0, 0, 64, 2), other.slice(0, 1, 64, 2)},                       // every other row
      {base.slice(1, 32, -100, -1), other},                                      // reversed columns
      {base.slice(0, 63, -100, -3), other.slice(0, 0, 22, 1)},                   // negative row step
      {base.transpose(), other.transpose()},                                     // both transposed
      {base.transpose(), other.slice(1, 0, 33, 1).transpose().copy()},           // mixed layouts
      {base.slice(1, 1, 33, 4).slice(0, 10, 50, 1), other.slice(1, 2, 33, 4).slice(0, 0, 40, 1)},
  };
  for (auto& [a, b] : cases) {
    Array r = kiln::eval(a * 2.0 + b);
    REQUIRE(r.shape() == a.shape());
    check_binary(r, a, b, kMulAdd);
  }
}

TEST_CASE("0-d and empty arrays", "[execute]") {
  Array s = Array::scalar(2.5), v = random_f64({5}, 5);
  Array r = kiln::eval(s * 2.0 + v);
  CHECK(r.shape() == Shape{5});
  check_binary(r, s, v, kMulAdd);
  Array r0 = kiln::eval(s * 2.0 + s);
  CHECK(r0.ndim() == 0);
  CHECK(r0.data_as<double>()[0] == 7.5);
  Array lit = kiln::eval("2 + 3 * 4", {});
  CHECK(lit.ndim() == 0);
  CHECK(lit.dtype() == DType::Int64);
  CHECK(lit.data_as<int64_t>()[0] == 14);
  Array e = Array::empty(DType::Float64, {3, 0}), row = random_f64({1, 0}, 6);
  Array re = kiln::eval(kiln::sqrt(e) + row);
  CHECK(re.shape() == Shape{3, 0});
  CHECK(kiln::eval(kiln::exp(Array::empty(DType::Float32, {0}))).shape() == Shape{0});
}

TEST_CASE("sizes around chunk and SIMD-width edges, contiguous and gathered", "[execute]") {
  for (int64_t n : {1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 511, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096,
                    4097, 8191, 8193, 32767, 32769, 65537}) {
    Array a = random_f64({n}, 7), b = random_f64({2 * n}, 8);
    Array bs = b.slice(0, 0, 2 * n, 2);  // strided: gathered per chunk
    Array r = kiln::eval(a * 2.0 + bs);
    check_binary(r, a, bs, kMulAdd);
    Array out_base = Array::zeros(DType::Float64, {3 * n});
    Array out = out_base.slice(0, 3 * n - 1, -3 * n - 1, -3);  // strided, reversed output: scattered
    kiln::eval(a * 2.0 + bs, out);
    check_binary(out, a, bs, kMulAdd);
    for (int64_t i = 0; i < 3 * n; ++i)
      if ((3 * n - 1 - i) % 3 != 0 && out_base.data_as<double>()[i] != 0.0) FAIL("scatter wrote outside the view");
  }
}

TEST_CASE("rows at least a chunk long are cut into chunks of their own, operand by operand", "[execute]") {
  // Inner extents around the chunk (64 float64s) and with a short last piece; 3-d shapes
  // step the row odometer across two outer dimensions; 1 and 3 threads.
  for (int threads : {1, 3}) {
    kiln::set_num_threads(threads);
    for (int64_t inner : {64, 65, 127, 128, 129, 1000, 4099}) {
      Array m = random_f64({5, 3, inner}, 11), row = random_f64({inner}, 12), col = random_f64({5, 3, 1}, 13);
      Array wide = random_f64({5, 3, 2 * inner + 1}, 14);
      Array padded = wide.slice(2, 1, inner + 1);                // inner-contiguous, rows not adjacent
      Array strided = wide.slice(2, 0, 2 * inner, 2);            // gathered along the row
      Array reversed = wide.slice(2, inner - 1, -2 * inner - 2, -1);  // negative inner stride
      std::vector<std::pair<Array, Array>> cases = {{m, row},        {row, m},          {padded, row},
                                                    {m, col},        {col, padded},     {strided, m},
                                                    {reversed, col}, {m.slice(0, 4, -100, -1), padded}};  // reversed outer axis
      for (auto& [a, b] : cases) {
        Array r = kiln::eval(a * 2.0 + b);
        check_binary(r, a, b, kMulAdd);
        Array out_base = Array::zeros(DType::Float64, {5, 3, 2 * inner + 3});
        Array out = out_base.slice(2, 2, 2 * inner + 3, 2).slice(2, 0, inner);  // scattered output rows
        REQUIRE(out.shape() == r.shape());
        kiln::eval(a * 2.0 + b, out);
        check_binary(out, a, b, kMulAdd);
        for (int64_t i = 0; i < out_base.size(); ++i) {
          int64_t j = i % (2 * inner + 3);
          bool inside = j >= 2 && (j - 2) % 2 == 0 && (j - 2) / 2 < inner;
          if (!inside && out_base.data_as<double>()[i] != 0.0) FAIL("scatter wrote outside the view at " << i);
        }
      }
    }
  }
  kiln::set_num_threads(0);
}

TEST_CASE("results are bit-identical for 1, 2 and 7 threads", "[execute][threads]") {
  Array a = random_f64({1 << 20}, 9), b = random_f64({1 << 20}, 10), c = random_f64({1024, 1}, 11);
  const char* exprs[] = {"sin(a) * exp(b / 3) + c", "where(a > b, sqrt(abs(a)), log1p(b*b)) - tanh(c)",
                         "float32(a) * 3 + float32(b)", "int64(a * 1000) // 7 + int64(b * 100) % 5"};
  for (const char* e : exprs) {
    std::vector<Array> results;
    for (int threads : {1, 2, 7}) {
      kiln::set_num_threads(threads);
      Array rb = b.reshape({1024, 1024});
      Array ra = a.reshape({1024, 1024});
      results.push_back(kiln::eval(e, {{"a", ra}, {"b", rb}, {"c", c}}));
    }
    kiln::set_num_threads(0);
    for (size_t k = 1; k < results.size(); ++k) {
      REQUIRE(results[k].dtype() == results[0].dtype());
      CHECK(std::memcmp(results[k].data(), results[0].data(), results[0].size() * results[0].itemsize()) == 0);
    }
  }
}

TEST_CASE("out may alias inputs, including partially overlapping views", "[execute][alias]") {
  SECTION("a = a*2 + b in place") {
    Array a = random_f64({100000}, 12), b = random_f64({100000}, 13);
    Array before = a.copy();
    kiln::eval(a * 2.0 + b, a);
    check_binary(a, before, b, kMulAdd);
  }
  SECTION("a[1:] = a[:-1] + 1 reads the old values, as NumPy") {
    for (int64_t n : {10, 5000, 100001}) {
      Array a = iota(DType::Float64, {n});
      kiln::eval(kiln::Expr(a.slice(0, 0, n - 1)) + 1.0, a.slice(0, 1, n));
      CHECK(a.data_as<double>()[0] == 0.5);
      for (int64_t i = 1; i < n; ++i)
        if (a.data_as<double>()[i] != 0.5 + static_cast<double>(i - 1) + 1.0) FAIL("n=" << n << " i=" << i);
    }
  }
  SECTION("a[:-1] = a[1:] * 3 and a reversed into itself") {
    int64_t n = 70001;
    Array a = iota(DType::Float64, {n});
    kiln::eval(kiln::Expr(a.slice(0, 1, n)) * 3.0, a.slice(0, 0, n - 1));
    for (int64_t i = 0; i + 1 < n; ++i)
      if (a.data_as<double>()[i] != 3.0 * (0.5 + static_cast<double>(i + 1))) FAIL("i=" << i);
    Array b = iota(DType::Float64, {n});
    kiln::eval(kiln::Expr(b.slice(0, n - 1, -n - 1, -1)) + 0.0, b);
    for (int64_t i = 0; i < n; ++i)
      if (b.data_as<double>()[i] != 0.5 + static_cast<double>(n - 1 - i)) FAIL("reversed i=" << i);
  }
  SECTION("a transposed into itself") {
    Array a = iota(DType::Float64, {300, 300});
    Array t = a.copy().transpose();
    kiln::eval(kiln::Expr(a.transpose()) * 1.0, a);
    check_binary(a, t, Array::scalar(0.0), [](double x, double) { return x; });
  }
}

TEST_CASE("out: broadcasting into it, same_kind casting, and errors that leave it untouched", "[execute][errors]") {
  Array v = random_f64({4}, 14);
  Array out = Array::zeros(DType::Float64, {3, 4});
  kiln::eval(kiln::Expr(v) * 2.0 + 1.0, out);
  check_binary(out, v, Array::scalar(1.0), kMulAdd);

  Array f32 = Array::zeros(DType::Float32, {4});
  kiln::eval(kiln::Expr(v) * 2.0, f32);
  for (int i = 0; i < 4; ++i) CHECK(f32.data_as<float>()[i] == static_cast<float>(v.data_as<double>()[i] * 2.0));

  Array i32 = iota(DType::Int32, {4}, 7, 0);
  try {
    kiln::eval(kiln::Expr(v) * 2.0, i32);
    FAIL("no error");
  } catch (const kiln::Error& e) {
    CHECK(e.status() == kiln::Status::TypeError);
    CHECK(std::string(e.what()).find("float64 result into a int32 output") != std::string::npos);
  }
  for (int i = 0; i < 4; ++i) CHECK(i32.data_as<int32_t>()[i] == 7);

  Array small = Array::zeros(DType::Float64, {3});
  CHECK_THROWS_AS(kiln::eval(kiln::Expr(v) + 1.0, small), kiln::Error);
  for (int i = 0; i < 3; ++i) CHECK(small.data_as<double>()[i] == 0.0);
  Array bcast = Array::zeros(DType::Float64, {1}).broadcast_to({4});
  CHECK_THROWS_AS(kiln::eval(kiln::Expr(v) + 1.0, bcast), kiln::Error);
}

// How many times `what` occurs in `text` (instructions of a kind in an explained plan).
size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

TEST_CASE("common subexpressions are computed once per chunk", "[execute][plan]") {
  Array a = random_f64({10}, 15), b = random_f64({10}, 16);
  std::string plan = kiln::explain(kiln::sqrt(a * b) + kiln::sqrt(a * b) * (a * b));
  auto count = [&](const std::string& what) { return occurrences(plan, what); };
  CHECK(count("multiply<") == 2);  // a*b once, then sqrt(a*b) * (a*b)
  CHECK(count("sqrt<") == 1);
  CHECK(count("add<") == 1);
}

TEST_CASE("x * 1 that keeps x's dtype is no instruction and gives x's bits", "[execute][plan]") {
  const double specials[] = {-0.0, 0.0, std::nan(""), -std::numeric_limits<double>::infinity(), 5e-324, -1.5, 3.0};
  Array a = Array::empty(DType::Float64, {7});
  std::memcpy(a.data(), specials, sizeof specials);
  Array f = Array::empty(DType::Float32, {7}), k = Array::empty(DType::Int32, {7}), p = Array::empty(DType::Bool, {7});
  for (int i = 0; i < 7; ++i) {
    f.data_as<float>()[i] = static_cast<float>(specials[i]);
    k.data_as<int32_t>()[i] = i - 3;
    p.data_as<bool>()[i] = i % 2;
  }
  auto multiplies = [](const kiln::Expr& e) { return occurrences(kiln::explain(e), "multiply<"); };
  CHECK(multiplies(kiln::Expr(a) * 1.0 + a) == 0);
  CHECK(multiplies(1.0 * kiln::Expr(a) + a) == 0);
  CHECK(multiplies(kiln::Expr(f) * 1 + f) == 0);
  CHECK(multiplies(kiln::Expr(k) * 1 + k) == 0);
  CHECK(multiplies(kiln::Expr(k) * 1.0 + k) == 1);  // int32 * 1.0 is float64: a conversion
  CHECK(multiplies(kiln::Expr(p) * 1 + p) == 1);    // bool * 1 is int64
  CHECK(multiplies(kiln::Expr(f) * kiln::Expr(a) + a) == 1);
  CHECK(multiplies(kiln::Expr(a) * 2.0 + a) == 1);
  for (const kiln::Expr& e : {kiln::Expr(a) * 1.0, 1.0 * kiln::Expr(a), kiln::Expr(a) * 1}) {
    Array r = kiln::eval(e);
    REQUIRE(r.dtype() == DType::Float64);
    CHECK(std::memcmp(r.data(), a.data(), sizeof specials) == 0);
    CHECK(r.data() != a.data());  // a new array, as NumPy's a * 1.0
  }
  Array r = kiln::eval(kiln::Expr(k) * 1.0);
  REQUIRE(r.dtype() == DType::Float64);
  for (int i = 0; i < 7; ++i) CHECK(r.data_as<double>()[i] == i - 3);
}

TEST_CASE("concurrent evaluation from 8 user threads", "[execute][threads]") {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([t, &failures] {
      for (int rep = 0; rep < 30; ++rep) {
        int64_t n = (rep % 3 == 0) ? 200000 : 1000 + 97 * rep;
        Array a = random_f64({n}, 100 + t), b = random_f64({n}, 200 + rep);
        double k = 1.0 + t;
        Array r = kiln::eval(kiln::Expr(a) * k + b);
        for (int64_t i = 0; i < n; ++i)
          if (r.data_as<double>()[i] != a.data_as<double>()[i] * k + b.data_as<double>()[i]) {
            ++failures;
            break;
          }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
}

TEST_CASE("evaluation inside the caller's own TBB tasks neither deadlocks nor goes wrong", "[execute][threads]") {
  Array a = random_f64({300000}, 17), b = random_f64({300000}, 18);
  Array want = kiln::eval(kiln::Expr(a) * 2.0 + b);
  std::atomic<int> failures{0};
  tbb::parallel_for(0, 16, [&](int) {
    Array r = kiln::eval(kiln::Expr(a) * 2.0 + b);
    if (std::memcmp(r.data(), want.data(), want.size() * 8) != 0) ++failures;
  });
  CHECK(failures == 0);
}

TEST_CASE("a child process forked after kiln ran in parallel can use kiln", "[execute][fork]") {
  Array a = random_f64({500000}, 19), b = random_f64({500000}, 20);
  Array want = kiln::eval(kiln::Expr(a) * 2.0 + b);  // starts the worker threads
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 1;
    try {
      Array r = kiln::eval(kiln::Expr(a) * 2.0 + b);
      code = std::memcmp(r.data(), want.data(), want.size() * 8) == 0 ? 0 : 2;
    } catch (...) {
      code = 3;
    }
    _exit(code);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

namespace {
// Elements of r (n of T) whose bits differ from want(i), any NaN matching any NaN.
template <class T, class Want> int64_t mismatches(const Array& r, int64_t n, Want want) {
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) {
    T expected = want(i), got = r.data_as<T>()[i];
    if (std::memcmp(&got, &expected, sizeof(T)) != 0 && !(std::isnan(got) && std::isnan(expected))) ++wrong;
  }
  return wrong;
}

template <class T> T apply_scalar(kiln::Op op, T x, T y) {
  switch (op) {
    case kiln::Op::add: return x + y;
    case kiln::Op::subtract: return x - y;
    case kiln::Op::multiply: return x * y;
    default: return x / y;
  }
}

// Every chain of two float arithmetic ops (one instruction in the plan) against the two
// ops rounded one after the other: the same bits, so no fused multiply-add crept in.
template <class T> void check_chains(int64_t n) {
  const kiln::Op ops[] = {kiln::Op::add, kiln::Op::subtract, kiln::Op::multiply, kiln::Op::divide};
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> dist(-10, 10);
  Array x = Array::empty(kiln::dtype_of<T>(), {n}), y = Array::empty(kiln::dtype_of<T>(), {n}),
        z = Array::empty(kiln::dtype_of<T>(), {n}), w = Array::empty(kiln::dtype_of<T>(), {n});
  for (int64_t i = 0; i < n; ++i) {
    x.data_as<T>()[i] = static_cast<T>(dist(rng));
    y.data_as<T>()[i] = static_cast<T>(dist(rng));
    z.data_as<T>()[i] = static_cast<T>(dist(rng));
    w.data_as<T>()[i] = static_cast<T>(dist(rng));
  }
  for (kiln::Op first : ops)
    for (kiln::Op second : ops)
      for (int pos = 0; pos < 2; ++pos) {
        kiln::Expr t = kiln::Expr::apply(first, {x, y});
        kiln::Expr e = pos == 0 ? kiln::Expr::apply(second, {t, z}) : kiln::Expr::apply(second, {z, t});
        std::string plan = kiln::explain(e);
        INFO(plan);
        CHECK(plan.find(std::string(kiln::op_info(second).name) + "<") != std::string::npos);
        CHECK(std::count(plan.begin(), plan.end(), '\n') == 2);  // the step, then one instruction
        Array r = kiln::eval(e);
        int64_t wrong = 0;
        for (int64_t i = 0; i < n; ++i) {
          volatile T inner = apply_scalar(first, x.data_as<T>()[i], y.data_as<T>()[i]);
          T want = pos == 0 ? apply_scalar<T>(second, inner, z.data_as<T>()[i])
                            : apply_scalar<T>(second, z.data_as<T>()[i], inner);
          T got = r.data_as<T>()[i];
          if (std::memcmp(&got, &want, sizeof(T)) != 0) ++wrong;
        }
        CHECK(wrong == 0);
      }
  // sqrt of a chain in the same instruction: the chain's bits, then their square root.
  for (kiln::Op first : ops)
    for (kiln::Op second : ops)
      for (int pos = 0; pos < 2; ++pos) {
        kiln::Expr t = kiln::Expr::apply(first, {x, y});
        kiln::Expr e = kiln::sqrt(pos == 0 ? kiln::Expr::apply(second, {t, z}) : kiln::Expr::apply(second, {z, t}));
        std::string plan = kiln::explain(e);
        INFO(plan);
        CHECK(plan.find("sqrt<") != std::string::npos);
        CHECK(std::count(plan.begin(), plan.end(), '\n') == 2);
        CHECK(mismatches<T>(kiln::eval(e), n, [&](int64_t i) {
                volatile T inner = apply_scalar(first, x.data_as<T>()[i], y.data_as<T>()[i]);
                volatile T chained = pos == 0 ? apply_scalar<T>(second, inner, z.data_as<T>()[i])
                                              : apply_scalar<T>(second, z.data_as<T>()[i], inner);
                return std::sqrt(static_cast<T>(chained));
              }) == 0);
      }
  // Two ops feeding a third (a tree), and its square root: one instruction, each op rounded.
  // Four distinct operands, so a source read from the wrong slot shows; a square fuses as
  // multiply(x, x) on either side; an intermediate used twice is not fused.
  auto check_tree = [&](const kiln::Expr& e, int instructions, auto scalar) {
    std::string plan = kiln::explain(e);
    INFO(plan);
    CHECK(std::count(plan.begin(), plan.end(), '\n') == 1 + instructions);
    CHECK(mismatches<T>(kiln::eval(e), n, [&](int64_t i) {
            return scalar(x.data_as<T>()[i], y.data_as<T>()[i], z.data_as<T>()[i], w.data_as<T>()[i]);
          }) == 0);
  };
  for (kiln::Op a : ops)
    for (kiln::Op second : ops)
      for (kiln::Op b : ops)
        for (bool root : {false, true}) {
          kiln::Expr t = kiln::Expr::apply(second, {kiln::Expr::apply(a, {x, y}), kiln::Expr::apply(b, {z, w})});
          check_tree(root ? kiln::sqrt(t) : t, 1, [&](T xi, T yi, T zi, T wi) {
            volatile T left = apply_scalar(a, xi, yi), right = apply_scalar(b, zi, wi);
            volatile T joined = apply_scalar<T>(second, left, right);
            return root ? std::sqrt(static_cast<T>(joined)) : static_cast<T>(joined);
          });
        }
  for (kiln::Op second : ops) {
    kiln::Expr sq = kiln::square(x), zw = kiln::Expr(z) * kiln::Expr(w);
    check_tree(kiln::Expr::apply(second, {sq, zw}), 1, [&](T xi, T, T zi, T wi) {
      volatile T left = xi * xi, right = zi * wi;
      return apply_scalar<T>(second, left, right);
    });
    check_tree(kiln::Expr::apply(second, {zw, sq}), 1, [&](T xi, T, T zi, T wi) {
      volatile T left = zi * wi, right = xi * xi;
      return apply_scalar<T>(second, left, right);
    });
    kiln::Expr shared = kiln::Expr(x) - kiln::Expr(y);  // read twice: its own instruction
    check_tree(kiln::Expr::apply(second, {shared, shared}), 2, [&](T xi, T yi, T, T) {
      volatile T d = xi - yi;
      return apply_scalar<T>(second, d, d);
    });
  }
  // square(x) chains as multiply(x, x): one instruction, x * x rounded once, then the second op.
  for (kiln::Op second : ops)
    for (int pos = 0; pos < 2; ++pos) {
      kiln::Expr t = kiln::square(x);
      kiln::Expr e = pos == 0 ? kiln::Expr::apply(second, {t, z}) : kiln::Expr::apply(second, {z, t});
      std::string plan = kiln::explain(e);
      INFO(plan);
      CHECK(plan.find("multiply<") != std::string::npos);
      CHECK(std::count(plan.begin(), plan.end(), '\n') == 2);
      Array r = kiln::eval(e);
      int64_t wrong = 0;
      for (int64_t i = 0; i < n; ++i) {
        volatile T inner = x.data_as<T>()[i] * x.data_as<T>()[i];
        T want = pos == 0 ? apply_scalar<T>(second, inner, z.data_as<T>()[i]) : apply_scalar<T>(second, z.data_as<T>()[i], inner);
        T got = r.data_as<T>()[i];
        if (std::memcmp(&got, &want, sizeof(T)) != 0) ++wrong;
      }
      CHECK(wrong == 0);
    }
}
}  // namespace

// Runs check(n) for float64 and float32 at each size, on every instruction set this CPU has.
template <template <class> class Check> void on_every_isa(std::initializer_list<int64_t> sizes) {
  kiln::test::for_each_isa([&](const std::string&) {
    for (int64_t n : sizes) {
      Check<double>::run(n);
      Check<float>::run(n);
    }
  });
}

template <class T> struct ChainCheck {
  static void run(int64_t n) { check_chains<T>(n); }
};

TEST_CASE("chains of two arithmetic ops run as one instruction with the two ops' roundings", "[execute][plan]") {
  on_every_isa<ChainCheck>({7, 1000, 4099});
}

namespace {
// A scalar-operand variant (simd::KernelTable::op_scalar, ...) against its plain kernel
// given the same literals as full arrays: the same bits (any NaN matching any NaN: which
// of two NaN operands x86 passes on depends on the instructions' operand order), every
// size and tail. The variant gets each scalar operand as a one-element buffer of its own,
// so a read past element 0 is an out-of-bounds read (the sanitizer build reports it).
template <class T>
int64_t scalar_variant_mismatches(kiln::simd::KernelFn plain, kiln::simd::KernelFn variant, unsigned mask, int arity,
                                  const std::vector<std::vector<T>>& arrays, T literal, int64_t n, bool bool_result) {
  std::vector<std::vector<T>> splats, ones;
  const void* plain_src[5];
  const void* variant_src[5];
  for (int k = 0; k < arity; ++k) {
    splats.emplace_back(n, literal);
    ones.emplace_back(1, literal);
  }
  for (int k = 0; k < arity; ++k) {
    const bool scalar = mask >> k & 1;
    plain_src[k] = scalar ? splats[k].data() : arrays[k].data();
    variant_src[k] = scalar ? ones[k].data() : arrays[k].data();
  }
  std::vector<T> want(n);
  Array got = Array::empty(kiln::dtype_of<T>(), {n});
  plain(plain_src, want.data(), n);
  variant(variant_src, got.data(), n);
  if (bool_result) return std::memcmp(want.data(), got.data(), n) != 0;
  return mismatches<T>(got, n, [&](int64_t i) { return want[i]; });
}

template <class T> void check_scalar_variants(const kiln::simd::KernelTable& t) {
  namespace simd = kiln::simd;
  constexpr int wide = sizeof(T) == 8 ? 1 : 0;
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(-4, 4);
  const T specials[] = {T(0), T(-0.0), std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                        std::numeric_limits<T>::denorm_min()};
  for (int64_t n : {1, 7, 33, 1000}) {
    std::vector<std::vector<T>> arrays(5, std::vector<T>(n));
    for (auto& a : arrays)
      for (int64_t i = 0; i < n; ++i) a[i] = i % 11 == 3 ? specials[rng() % 5] : static_cast<T>(u(rng));
    for (T literal : {T(1.5), T(-0.0), std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity()}) {
      INFO("n " << n << " literal " << literal);
      int64_t wrong = 0, checked = 0;
      auto check = [&](simd::KernelFn plain, simd::KernelFn variant, unsigned mask, int arity, bool bool_result = false) {
        REQUIRE(variant != nullptr);
        REQUIRE(variant != plain);
        wrong += scalar_variant_mismatches<T>(plain, variant, mask, arity, arrays, literal, n, bool_result);
        ++checked;
      };
      for (int o = 0; o < kiln::kNumOps; ++o) {
        const int d = static_cast<int>(kiln::dtype_of<T>());
        const kiln::OpInfo& info = kiln::op_info(static_cast<kiln::Op>(o));
        if (info.arity != 2 || !t.op[o][d]) continue;
        for (int m = 0; m < simd::kNumBinaryMasks; ++m)
          check(t.op[o][d], t.op_scalar[o][d][m], simd::kBinaryMasks[m], 2, info.rule == kiln::Rule::Compare);
      }
      for (int f = 0; f < 4; ++f)
        for (int s = 0; s < 4; ++s)
          for (int pos = 0; pos < 2; ++pos)
            for (int m = 0; m < simd::kNumChainMasks; ++m)
              check(t.chain[f][s][pos][wide], t.chain_scalar[f][s][pos][wide][m], simd::kChainMasks[m], 3);
      for (int c = 0; c < 6; ++c) {
        for (int m = 0; m < simd::kNumWhereMasks; ++m)
          check(t.where_compare[c][wide], t.where_compare_scalar[c][wide][m], simd::kWhereMasks[m], 4);
        for (int o = 0; o < 4; ++o)
          for (int branch = 0; branch < 2; ++branch)
            for (int m = 0; m < simd::kNumWhereOpMasks; ++m)
              check(t.where_compare_op[c][o][branch][wide], t.where_compare_op_scalar[c][o][branch][wide][m],
                    simd::kWhereOpMasks[m], 5);
      }
      CHECK(checked >= 400);
      CHECK(wrong == 0);
    }
  }
}

// The instruction of a one-instruction plan for `text` over float32 inputs.
kiln::Instr only_instruction(const std::string& text, const kiln::simd::KernelTable& t) {
  kiln::Graph g;
  g.roots = {kiln::parse_expression(text, g)};
  auto plan = kiln::build_plan(g, std::vector<DType>(g.input_names().size(), DType::Float32), std::nullopt, t);
  INFO(plan->explain());
  REQUIRE(plan->steps.back().body.instrs.size() == 1);
  return plan->steps.back().body.instrs[0];
}
}  // namespace

TEST_CASE("literals are read as scalars: the kernels' bits, and the planner's choice", "[execute][plan][ops]") {
  namespace simd = kiln::simd;
  using kiln::Op;
  for (const std::string& isa : simd::available_isas()) {
    INFO("isa " << isa);
    const simd::KernelTable& t = *simd::table_for(isa);
    const int f32 = static_cast<int>(DType::Float32), sub = int(Op::subtract);
    // The SSE2 table has none; the others all (every plain kernel's variant).
    const bool variants = t.op_scalar[sub][f32][0] != nullptr;
    CHECK(variants == (isa != "sse2"));
    if (variants) {
      check_scalar_variants<double>(t);
      check_scalar_variants<float>(t);
    }
    // The variant covering most of an instruction's literals, or the plain kernel.
    auto variant = [&](simd::KernelFn v, simd::KernelFn plain) { return variants ? v : plain; };
    const int ma = simd::chain_index(Op::multiply), add = simd::chain_index(Op::add);
    auto chain = [&](int m) { return variant(t.chain_scalar[ma][add][0][0][m], t.chain[ma][add][0][0]); };
    CHECK(only_instruction("x - 1.5", t).fn == variant(t.op_scalar[sub][f32][1], t.op[sub][f32]));
    CHECK(only_instruction("1.5 - x", t).fn == variant(t.op_scalar[sub][f32][0], t.op[sub][f32]));
    CHECK(only_instruction("x - y", t).fn == t.op[sub][f32]);
    CHECK(only_instruction("2*x + y", t).fn == chain(0));
    CHECK(only_instruction("x*2 + y", t).fn == chain(1));
    CHECK(only_instruction("x*y + 1.5", t).fn == chain(2));
    CHECK(only_instruction("0.5*x + 1", t).fn == chain(3));
    CHECK(only_instruction("x*0.5 + 1", t).fn == chain(4));
    const int greater = simd::compare_index(Op::greater);
    auto where = [&](int m) { return variant(t.where_compare_scalar[greater][0][m], t.where_compare[greater][0]); };
    auto where_op = [&](int branch, int m) {
      return variant(t.where_compare_op_scalar[greater][ma][branch][0][m], t.where_compare_op[greater][ma][branch][0]);
    };
    CHECK(only_instruction("where(x > 0, x, y)", t).fn == where(0));
    CHECK(only_instruction("where(x > 0, 1, y)", t).fn == where(1));
    CHECK(only_instruction("where(x > 0, x, 0.1*x)", t).fn == where_op(1, 2));
    CHECK(only_instruction("where(x > 0, 2*x, y)", t).fn == where_op(0, 1));
    CHECK(only_instruction("where(x > 0, x, x*0.1)", t).fn == where_op(1, 3));
    CHECK(only_instruction("where(x > y, x, 0.1*x)", t).fn == t.where_compare_op[greater][ma][1][0]);
  }
}

namespace {
template <class T> bool compare_scalar(kiln::Op op, T x, T y) {
  switch (op) {
    case kiln::Op::less: return x < y;
    case kiln::Op::less_equal: return x <= y;
    case kiln::Op::greater: return x > y;
    case kiln::Op::greater_equal: return x >= y;
    case kiln::Op::equal: return x == y;
    default: return x != y;
  }
}

// where(compare(x, y), a, b) over floats is one instruction; NaN compares as NumPy's
// (false, but true for !=), and equal values, infinities and signed zeros take every path.
template <class T> void check_where_compare(int64_t n) {
  const kiln::Op ops[] = {kiln::Op::less,  kiln::Op::less_equal, kiln::Op::greater, kiln::Op::greater_equal,
                          kiln::Op::equal, kiln::Op::not_equal};
  const T specials[] = {T(0), T(-0.0), T(1), T(-1), std::numeric_limits<T>::quiet_NaN(),
                        std::numeric_limits<T>::infinity(), -std::numeric_limits<T>::infinity()};
  std::mt19937_64 rng(7);
  Array x = Array::empty(kiln::dtype_of<T>(), {n}), y = Array::empty(kiln::dtype_of<T>(), {n}),
        a = Array::empty(kiln::dtype_of<T>(), {n}), b = Array::empty(kiln::dtype_of<T>(), {n});
  for (int64_t i = 0; i < n; ++i) {
    x.data_as<T>()[i] = specials[rng() % 7];
    y.data_as<T>()[i] = rng() % 4 == 0 ? x.data_as<T>()[i] : specials[rng() % 7];
    a.data_as<T>()[i] = static_cast<T>(i);
    b.data_as<T>()[i] = static_cast<T>(-i);
  }
  for (kiln::Op op : ops) {
    kiln::Expr e = kiln::where(kiln::Expr::apply(op, {x, y}), a, b);
    std::string plan = kiln::explain(e);
    INFO(plan);
    CHECK(plan.find(std::string("where<") + kiln::dtype_name(kiln::dtype_of<T>()) + ">(" + kiln::op_info(op).name) !=
          std::string::npos);
    Array r = kiln::eval(e);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; ++i) {
      T want = compare_scalar(op, x.data_as<T>()[i], y.data_as<T>()[i]) ? a.data_as<T>()[i] : b.data_as<T>()[i];
      if (r.data_as<T>()[i] != want) ++wrong;
    }
    CHECK(wrong == 0);
  }
  // One of where's values made by an arithmetic op (where(x > 0, x, 0.1*x)): still one
  // instruction, the op's result bit for bit, in either branch. The op reads v (NaNs,
  // infinities and zeros like x's, drawn apart) and a; the other value is b: every source
  // a different array, so one read from the wrong slot shows. A square fuses as
  // multiply(v, v); a value used twice is not fused.
  Array v = Array::empty(kiln::dtype_of<T>(), {n});
  for (int64_t i = 0; i < n; ++i) v.data_as<T>()[i] = specials[rng() % 7];
  auto check_value = [&](kiln::Op op, const kiln::Expr& value, int branch, int instructions, auto scalar) {
    kiln::Expr e = kiln::where(kiln::Expr::apply(op, {x, y}), branch == 0 ? value : kiln::Expr(b),
                               branch == 0 ? kiln::Expr(b) : value);
    std::string plan = kiln::explain(e);
    INFO(plan);
    CHECK(std::count(plan.begin(), plan.end(), '\n') == 1 + instructions);
    CHECK(mismatches<T>(kiln::eval(e), n, [&](int64_t i) {
            const bool taken = compare_scalar(op, x.data_as<T>()[i], y.data_as<T>()[i]);
            return taken == (branch == 0) ? scalar(v.data_as<T>()[i], a.data_as<T>()[i]) : b.data_as<T>()[i];
          }) == 0);
  };
  const kiln::Op arith[] = {kiln::Op::add, kiln::Op::subtract, kiln::Op::multiply, kiln::Op::divide};
  for (kiln::Op op : ops)
    for (int branch = 0; branch < 2; ++branch) {
      for (kiln::Op value_op : arith)
        check_value(op, kiln::Expr::apply(value_op, {v, a}), branch, 1,
                    [&](T vi, T ai) { return apply_scalar<T>(value_op, vi, ai); });
      check_value(op, kiln::square(v), branch, 1, [](T vi, T) { return vi * vi; });
    }
  // The same product as both values: computed once, by an instruction of its own.
  kiln::Expr product = kiln::Expr(v) * kiln::Expr(a);
  kiln::Expr both = kiln::where(kiln::Expr(x) > kiln::Expr(y), product, product);
  std::string plan = kiln::explain(both);
  INFO(plan);
  CHECK(std::count(plan.begin(), plan.end(), '\n') == 3);
  CHECK(mismatches<T>(kiln::eval(both), n, [&](int64_t i) { return v.data_as<T>()[i] * a.data_as<T>()[i]; }) == 0);
}
}  // namespace

template <class T> struct WhereCompareCheck {
  static void run(int64_t n) { check_where_compare<T>(n); }
};

TEST_CASE("where over a float comparison runs as one instruction, NaN and all", "[execute][plan]") {
  on_every_isa<WhereCompareCheck>({5, 1000, 4099});
}

namespace {

// A math function's result depends on its operand only, never on where a kernel call
// begins or ends: a strided view (cut by rows), its contiguous copy (cut flat), a result
// written at an odd offset (rows start unaligned), and sizes with or without the larger
// cache-resident chunks all give the same bits.
template <class T> struct LayoutCheck {
  static void run(int64_t inner) {
    const int64_t rows = 37;
    Array wide = Array::empty(kiln::dtype_of<T>(), {rows, 2 * inner + 1});
    std::mt19937_64 rng(static_cast<uint64_t>(inner));
    std::uniform_real_distribution<double> u(-30, 30);
    for (int64_t i = 0; i < wide.size(); ++i) wide.data_as<T>()[i] = static_cast<T>(u(rng));
    wide.data_as<T>()[3] = std::numeric_limits<T>::denorm_min();  // batch_safe refuses these lanes
    wide.data_as<T>()[5] = std::numeric_limits<T>::quiet_NaN();
    Array strided = wide.slice(1, 0, 2 * inner, 2), copy = strided.copy();
    for (const char* f : {"sin(x)", "cbrt(x)", "exp(x)", "tanh(x)", "log1p(abs(x))", "arctan(x) * x"}) {
      INFO(f << " inner " << inner);
      Array want = kiln::eval(f, {{"x", copy}});
      Array got = kiln::eval(f, {{"x", strided}});
      Array odd_base = Array::zeros(kiln::dtype_of<T>(), {rows, inner + 3});
      Array odd = odd_base.slice(1, 1, inner + 1);  // every row one item past a line start
      kiln::eval(f, {{"x", strided}}, odd);
      Array flat = kiln::eval(f, {{"x", copy.reshape({rows * inner})}});  // one long row
      Array prefix = kiln::eval(f, {{"x", copy.slice(0, 0, 1)}});        // a small, cache-resident call
      REQUIRE(want.shape() == got.shape());
      int64_t wrong = 0;
      Array odd_c = odd.copy();
      for (int64_t i = 0; i < want.size(); ++i) {
        T w = want.data_as<T>()[i];
        wrong += std::memcmp(&w, &got.data_as<T>()[i], sizeof(T)) != 0;
        wrong += std::memcmp(&w, &odd_c.data_as<T>()[i], sizeof(T)) != 0;
        wrong += std::memcmp(&w, &flat.data_as<T>()[i], sizeof(T)) != 0;
        if (i < inner) wrong += std::memcmp(&w, &prefix.data_as<T>()[i], sizeof(T)) != 0;
      }
      CHECK(wrong == 0);
    }
  }
};

}  // namespace

TEST_CASE("results do not depend on how a loop is cut: layouts, offsets, sizes", "[execute][plan]") {
  on_every_isa<LayoutCheck>({5, 64, 100, 1001});
}

namespace {

// Flat loops of several chunks cut the first one short so that the others start on the
// cache line most operands share (line_head in execute.cpp): the operands and the result
// at every offset within a line, alone or together, against a scalar loop. Sizes: one
// chunk, a few, and beyond the caches (the short chunk).
template <class T> struct LineHeadCheck {
  static void run(int64_t n) {
    constexpr int64_t kPerLine = 64 / static_cast<int64_t>(sizeof(T));
    const DType d = kiln::dtype_of<T>();
    Array a = iota(d, {n + kPerLine}, 0.25, 0.5), b = iota(d, {n + kPerLine}, -3.0, 0.125);
    Array o = Array::zeros(d, {n + kPerLine});
    for (int64_t oa : {int64_t{0}, int64_t{1}, kPerLine - 1})
      for (int64_t ob : {int64_t{0}, int64_t{2}, kPerLine - 1})
        for (int64_t oo : {int64_t{0}, int64_t{1}, kPerLine - 2}) {
          INFO("n " << n << " offsets " << oa << " " << ob << " " << oo << " (items)");
          Array x = a.slice(0, oa, oa + n), y = b.slice(0, ob, ob + n), out = o.slice(0, oo, oo + n);
          std::fill_n(o.data_as<T>(), o.size(), std::numeric_limits<T>::quiet_NaN());  // no result left from before
          kiln::eval("x * y + x", {{"x", x}, {"y", y}}, out);
          int64_t wrong = 0;
          for (int64_t i = 0; i < n; ++i) {
            const T xi = x.data_as<T>()[i], yi = y.data_as<T>()[i];
            const volatile T product = xi * yi;  // rounded apart, as kiln's two instructions
            wrong += out.data_as<T>()[i] != static_cast<T>(product + xi);
          }
          CHECK(wrong == 0);
        }
  }
};

}  // namespace

TEST_CASE("flat loops cut their chunks on the operands' cache lines: every offset, on every set", "[execute]") {
  on_every_isa<LineHeadCheck>({1000, 4099, 600001});
}

TEST_CASE("KILN_CHUNK below a row's aligning head piece still gives right results", "[execute]") {
  // With 8-element chunks, a bool output row starting 8 bytes past a line wants a 56-element
  // head; it must be cut to the chunk (the registers hold one chunk). 6.8 MB of operands:
  // beyond the cache-resident size, so the chunk stays 8.
  ::setenv("KILN_CHUNK", "8", 1);
  Array a = random_f64({400, 2003}, 21).slice(1, 0, 2002, 2), b = random_f64({400, 1001}, 22);
  Array out_base = Array::zeros(DType::Bool, {400, 1009});
  Array out = out_base.slice(1, 8, 1009);
  kiln::eval("(a * 3 + 1) > b + 0.25", {{"a", a}, {"b", b}}, out);  // an expression no other test plans
  ::unsetenv("KILN_CHUNK");
  Array oc = out.copy();
  int64_t wrong = 0;
  for (int64_t i = 0; i < 400; ++i)
    for (int64_t j = 0; j < 1001; ++j)
      wrong += oc.data_as<bool>()[i * 1001 + j] != (at(a, {i, j}) * 3 + 1 > at(b, {i, j}) + 0.25);
  CHECK(wrong == 0);
}

TEST_CASE("wrapped memory misaligned for its dtype is read through strided gathers", "[execute]") {
  // Byte offset 1: every float64 is misaligned; strides of two items take the stride-2
  // gather, both cut by rows (50 x 300) and flat (one row of 15000).
  std::vector<char> bytes(1 + 8 * 2 * 15000 + 64);
  for (size_t i = 0; i < 2 * 15000; ++i) {
    double v = 0.25 * static_cast<double>(i) - 7;
    std::memcpy(bytes.data() + 1 + 8 * i, &v, 8);
  }
  for (const Shape& shape : {Shape{50, 300}, Shape{15000}}) {
    Shape strides = shape.size() == 2 ? Shape{300 * 16, 16} : Shape{16};
    Array a = Array::wrap(bytes.data() + 1, DType::Float64, shape, strides, {});
    Array r = kiln::eval(a * 2.0 + a);
    Array c = r.reshape({15000});
    for (int64_t k = 0; k < 15000; ++k) {
      double v = 0.25 * static_cast<double>(2 * k) - 7;
      if (c.data_as<double>()[k] != v * 2.0 + v) FAIL("at " << k);
    }
    CHECK(c.data_as<double>()[14999] == (0.25 * 29998 - 7) * 3);
  }
}

TEST_CASE("every instruction set's gather copies the items a scalar loop picks", "[execute][simd]") {
  // Item sizes 1, 4, 8; strides of one repeated item, contiguous, every other item (the
  // shuffled path), every third and backwards; lengths around every vector width; from
  // a source misaligned for the item.
  std::vector<unsigned char> src(4096 + 64);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<unsigned char>(i * 37 + 11);
  for (const std::string& isa : kiln::simd::available_isas()) {
    const kiln::simd::KernelTable& t = *kiln::simd::table_for(isa);
    for (int64_t item : {1, 4, 8})
      for (int64_t step : {0, 1, 2, 3, -1, -2})
        for (int64_t n : {0, 1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 129}) {
          INFO(isa << " item " << item << " step " << step << " n " << n);
          const int64_t stride = step * item;
          const unsigned char* from = src.data() + 1 + (step < 0 ? 129 * 3 * 8 : 0);
          std::vector<unsigned char> got(static_cast<size_t>(n * item) + 1, 0xAB), want(got);
          for (int64_t i = 0; i < n; ++i) std::memcpy(want.data() + i * item, from + i * stride, static_cast<size_t>(item));
          t.gather(got.data(), from, static_cast<size_t>(item), n, stride);
          CHECK(got == want);  // the byte past the end included: nothing written beyond n
        }
  }
}

TEST_CASE("new results start past a cache line where most of their operands do, with the same values", "[execute]") {
  // NumPy's arrays lie 16 bytes past a line; a result placed alike lets every chunk start
  // on a line for all of them (common_head). Operands 16 bytes past a line: slices from
  // element 2 of float64 and 4 of float32 arrays on lines.
  const int64_t n = 100000;
  auto past_line = [](const Array& x) { return reinterpret_cast<uintptr_t>(x.data()) % 64; };
  Array a = iota(DType::Float64, {n + 2}, 0.25, 0.5).slice(0, 2, n + 2);
  Array b = iota(DType::Float64, {n + 2}, -3.0, 0.125).slice(0, 2, n + 2);
  Array on_line = iota(DType::Float64, {n}, 1.0, 0.25);
  Array f = iota(DType::Float32, {n + 4}, 0.5, 1.0).slice(0, 4, n + 4);
  REQUIRE(past_line(a) == 16);
  REQUIRE(past_line(f) == 16);
  auto check_values = [&](const Array& r, auto want) {
    REQUIRE(r.size() == n);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; ++i) wrong += r.data_as<double>()[i] != want(i);
    CHECK(wrong == 0);
  };
  const double* av = a.data_as<double>();
  const double* bv = b.data_as<double>();
  const double* ov = on_line.data_as<double>();
  Array r = kiln::eval(kiln::sqrt(kiln::Expr(a) * a + kiln::Expr(b) * b));
  CHECK(past_line(r) == 16);
  check_values(r, [&](int64_t i) { return std::sqrt(av[i] * av[i] + bv[i] * bv[i]); });
  // Two of three operands 16 past: placed as those two.
  r = kiln::eval(kiln::Expr(a) * b + on_line);
  CHECK(past_line(r) == 16);
  check_values(r, [&](int64_t i) { return av[i] * bv[i] + ov[i]; });
  // One each way: on a line (kiln's own arrays are).
  r = kiln::eval(kiln::Expr(a) - on_line);
  CHECK(past_line(r) == 0);
  check_values(r, [&](int64_t i) { return av[i] - ov[i]; });
  // float32 elements 12 items before a line: a float64 result's element 12 starts one.
  r = kiln::eval(kiln::astype(kiln::Expr(f), DType::Float64) * 2.0);
  CHECK(past_line(r) == 32);
  check_values(r, [&](int64_t i) { return static_cast<double>(f.data_as<float>()[i]) * 2.0; });
  // Nothing read from memory (creation) or broadcast operands only: on a line.
  CHECK(past_line(kiln::eval(kiln::arange(0, n, 1, DType::Float64))) == 0);
  CHECK(past_line(kiln::eval(kiln::Expr(a.slice(0, 0, 1)) + kiln::arange(0, n, 1, DType::Float64))) == 0);
}

TEST_CASE("outputs bigger than the caches are streamed to memory with the same values", "[execute][stream]") {
  // A loop that reads two or more operands from memory writes with non-temporal stores
  // from 64 MiB of output (its operands' 64 MiB for a block of one instruction): the
  // values, a ragged tail and an output that is also an input must come out as with plain
  // stores. An output that starts mid-line is streamed after a short first chunk
  // (line_head).
  const int64_t n = (int64_t{9} << 20) + 13;
  Array a = iota(DType::Float64, {n + 1}, 0.25, 0.5);
  Array b = iota(DType::Float64, {n + 1}, -3.0, 0.125);
  Array x = a.slice(0, 1, n + 1), y = b.slice(0, 0, n);  // x starts 8 bytes into a line
  Array r = kiln::eval(2.0 * kiln::Expr(x) + 3.0 * kiln::Expr(y) * kiln::Expr(y) - 1.5);
  REQUIRE(r.size() == n);
  int64_t wrong = 0, first_wrong = -1;  // one check for the 9M elements: an assertion each cost more than the loop
  for (int64_t i = 0; i < n; ++i) {
    const double xi = x.data_as<double>()[i], yi = y.data_as<double>()[i];
    if (r.data_as<double>()[i] != 2.0 * xi + (3.0 * yi) * yi - 1.5 && wrong++ == 0) first_wrong = i;
  }
  if (wrong) FAIL(wrong << " elements wrong, the first at " << first_wrong);
  Array out = Array::zeros(DType::Float64, {n + 1}).slice(0, 1, n + 1);
  kiln::eval(kiln::Expr(x) * 2.0 + y, out);
  const double* xs = x.data_as<double>();
  const double* ys = y.data_as<double>();
  for (int64_t i = 0; i < n; i += 997) REQUIRE(out.data_as<double>()[i] == xs[i] * 2.0 + ys[i]);
  REQUIRE(out.data_as<double>()[n - 1] == xs[n - 1] * 2.0 + ys[n - 1]);
  Array self = x.copy();
  kiln::eval(kiln::Expr(self) + y, self);  // out is an input
  for (int64_t i = 0; i < n; i += 991) REQUIRE(self.data_as<double>()[i] == xs[i] + ys[i]);
  REQUIRE(self.data_as<double>()[n - 1] == xs[n - 1] + ys[n - 1]);
  // One read: plain stores (the same values).
  kiln::eval(kiln::Expr(x) * 2.0, out);
  for (int64_t i = 0; i < n; i += 997) REQUIRE(out.data_as<double>()[i] == xs[i] * 2.0);
  REQUIRE(out.data_as<double>()[n - 1] == xs[n - 1] * 2.0);
  // float32, one instruction: 24 MiB of output, 72 MiB moved; starting 4 bytes into a line.
  const int64_t m = (int64_t{6} << 20) + 5;
  Array f = iota(DType::Float32, {m + 1}, 0.25, 0.5), g = iota(DType::Float32, {m}, -3.0, 0.125);
  Array u = f.slice(0, 1, m + 1);
  Array out32 = Array::zeros(DType::Float32, {m + 1}).slice(0, 1, m + 1);
  kiln::eval(kiln::Expr(u) * 2.0 + kiln::Expr(g), out32);
  const float* us = u.data_as<float>();
  const float* gs = g.data_as<float>();
  for (int64_t i = 0; i < m; i += 499) REQUIRE(out32.data_as<float>()[i] == us[i] * 2.0f + gs[i]);
  REQUIRE(out32.data_as<float>()[m - 1] == us[m - 1] * 2.0f + gs[m - 1]);
  REQUIRE(out32.data_as<float>()[0] == us[0] * 2.0f + gs[0]);
}

TEST_CASE("loops over operands beyond L2 give the scalar loop's bits", "[execute]") {
  // 4-32 MiB of operands: blocks may run with longer chunks there (where the CPU does not
  // prefetch ahead, chunk_factor): flat, strided, by rows of a broadcast row that do not
  // divide into chunks, written into the input, and a block of several instructions.
  const int64_t rows = 1531, cols = 1000, n = rows * cols;  // 6 MB per float32 array
  Array a = Array::empty(DType::Float32, {2 * n});
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(-4, 4);
  for (int64_t i = 0; i < 2 * n; ++i) a.data_as<float>()[i] = u(rng);
  a.data_as<float>()[5] = std::numeric_limits<float>::quiet_NaN();
  Array flat = a.slice(0, 0, n), odd = a.slice(0, 1, 2 * n, 2);
  Array row = a.slice(0, 7, 7 + cols), m = flat.reshape({rows, cols});
  auto f = [](float x) { return x > 0 ? x : 0.1f * x; };
  Array w = kiln::eval("where(a > 0, a, 0.1*a)", {{"a", flat}});
  CHECK(mismatches<float>(w, n, [&](int64_t i) { return f(flat.data_as<float>()[i]); }) == 0);
  Array s = kiln::eval("a*2 + b", {{"a", odd}, {"b", flat}});
  CHECK(mismatches<float>(s, n, [&](int64_t i) {
          volatile float twice = odd.data_as<float>()[2 * i] * 2.0f;
          return twice + flat.data_as<float>()[i];
        }) == 0);
  Array r = kiln::eval("m + row", {{"m", m}, {"row", row}});
  CHECK(mismatches<float>(r, n, [&](int64_t i) { return m.data_as<float>()[i] + row.data_as<float>()[i % cols]; }) == 0);
  Array in_place = flat.copy();
  kiln::eval("sqrt(a*a + 1)", {{"a", in_place}}, in_place);
  CHECK(mismatches<float>(in_place, n, [&](int64_t i) {
          volatile float sq = flat.data_as<float>()[i] * flat.data_as<float>()[i];
          return std::sqrt(sq + 1.0f);
        }) == 0);
  const int64_t k = 700001;  // 4 arrays of 2.8 MB
  Array x = flat.slice(0, 0, k), y = flat.slice(0, k, 2 * k), z = odd.slice(0, 0, k);
  Array q = kiln::eval("(a - b) / (a + b) + c", {{"a", x}, {"b", y}, {"c", z}});
  CHECK(mismatches<float>(q, k, [&](int64_t i) {
          const float xi = x.data_as<float>()[i], yi = y.data_as<float>()[i];
          volatile float ratio = (xi - yi) / (xi + yi);
          return ratio + z.data_as<float>()[2 * i];
        }) == 0);
}

TEST_CASE("transposed operands beyond the caches run in bands of rows", "[execute]") {
  // An operand a line or more apart along the row and less than one between rows (a
  // transposed view) moves through a tile a band of rows deep (band_shape in
  // execute.cpp): bands that divide neither the rows nor a plane, planes shallower than a
  // band, pieces that do not divide a row, float64 (8 rows deep, 64 with 1-byte items
  // beside) and float32 (16), 1-byte items beside 8-byte ones (read and written), rows
  // in reverse (bands an item at a time, beyond the caches), columns in reverse, a read
  // broadcast along the row, a generated one, transposed outputs, one written in place,
  // one the read it overwrites; 1 and 3 threads. The blocks' own cases, on every
  // instruction set, are the next test's.
  const int64_t rows = 301, cols = 1100;  // 2.6 MB per float64 matrix
  Array base = random_f64({cols, rows}, 21), other = random_f64({rows, cols}, 22), col = random_f64({rows, 1}, 23);
  Array a = base.transpose();                                            // 8 bytes between rows
  Array reversed = base.slice(1, rows - 1, -rows - 1, -1).transpose();  // -8 bytes between rows
  Array backwards = base.slice(0, cols - 1, -cols - 1, -1).transpose();  // -2408 bytes along a row
  Array mask_base = Array::empty(DType::Bool, {cols, rows});
  for (int64_t i = 0; i < mask_base.size(); ++i) mask_base.data_as<bool>()[i] = i % 7 < 3;
  Array mask = mask_base.transpose();  // 1 byte between rows: a band of 128
  // float32, 3-d: planes of 150 rows, a band of 128 and one of 22 each.
  const int64_t planes = 3, plane_rows = 150, inner = 1000;
  Array base32 = Array::empty(DType::Float32, {planes, inner, plane_rows});
  Array other32 = Array::empty(DType::Float32, {planes, plane_rows, inner});
  std::mt19937_64 rng(24);
  std::uniform_real_distribution<float> u(-3, 3);
  for (int64_t i = 0; i < base32.size(); ++i) base32.data_as<float>()[i] = u(rng), other32.data_as<float>()[i] = u(rng);
  Array a32 = base32.transpose({0, 2, 1});
  // float64, 3-d: planes of 30 rows, each one band, rows of 800.
  Array shallow_base = random_f64({12, 800, 30}, 25), shallow_other = random_f64({12, 30, 800}, 26);
  Array shallow = shallow_base.transpose({0, 2, 1});
  for (int threads : {1, 3}) {
    kiln::set_num_threads(threads);
    INFO(threads << " threads");
    check_binary(kiln::eval(kiln::Expr(a) * 2.0 + other), a, other, kMulAdd);
    check_binary(kiln::eval(kiln::Expr(reversed) * 2.0 + other), reversed, other, kMulAdd);
    check_binary(kiln::eval(kiln::Expr(backwards) * 2.0 + other), backwards, other, kMulAdd);
    Array counting = kiln::eval(kiln::arange(0, cols, 1, DType::Float64));
    check_binary(kiln::eval(kiln::Expr(a) * 2.0 + kiln::arange(0, cols, 1, DType::Float64)), a, counting, kMulAdd);
    check_binary(kiln::eval(kiln::Expr(a) * 2.0 + col), a, col, kMulAdd);
    Array out = Array::zeros(DType::Float64, {cols, rows}).transpose();
    kiln::eval(kiln::Expr(other) * 2.0 + a, out);
    check_binary(out, other, a, kMulAdd);
    Array in_place = other.copy();
    kiln::eval(kiln::Expr(a) * 2.0 + in_place, in_place);
    check_binary(in_place, a, other, kMulAdd);
    Array overwritten = base.copy().transpose();  // read and written through the same tile
    kiln::eval(kiln::Expr(overwritten) * 2.0 + other, overwritten);
    check_binary(overwritten, a, other, kMulAdd);
    Array greater = Array::zeros(DType::Bool, {cols, rows}).transpose();  // a 1-byte banded output
    kiln::eval(kiln::Expr(a) > kiln::Expr(other), greater);
    Array picked = kiln::eval("where(m, a, b)", {{"m", mask}, {"a", a}, {"b", other}});
    std::vector<int64_t> idx(2);
    for (idx[0] = 0; idx[0] < rows; ++idx[0]) {
      for (idx[1] = 0; idx[1] < cols; ++idx[1]) {
        const double want = at<bool>(mask, idx) ? at(a, idx) : at(other, idx);
        if (at(picked, idx) != want) FAIL("where at " << idx[0] << ", " << idx[1]);
        if (at<bool>(greater, idx) != (at(a, idx) > at(other, idx))) FAIL("a > b at " << idx[0] << ", " << idx[1]);
      }
    }
    check_binary(kiln::eval(kiln::Expr(shallow) * 2.0 + shallow_other), shallow, shallow_other, kMulAdd);
    Array r32 = kiln::eval("a * 2 + b", {{"a", a32}, {"b", other32}});
    REQUIRE(r32.dtype() == DType::Float32);
    Array out32 = Array::zeros(DType::Float32, {planes, inner, plane_rows}).transpose({0, 2, 1});
    kiln::eval("b - a", {{"a", a32}, {"b", other32}}, out32);
    std::vector<int64_t> at3(3);
    for (at3[0] = 0; at3[0] < planes; ++at3[0]) {
      for (at3[1] = 0; at3[1] < plane_rows; ++at3[1]) {
        for (at3[2] = 0; at3[2] < inner; ++at3[2]) {
          volatile float twice = at<float>(a32, at3) * 2.0f;
          const float y = at<float>(other32, at3);
          if (at<float>(r32, at3) != twice + y)
            FAIL("float32 a*2 + b at " << at3[0] << ", " << at3[1] << ", " << at3[2]);
          if (at<float>(out32, at3) != y - at<float>(a32, at3))
            FAIL("float32 b - a into a transposed output at " << at3[0] << ", " << at3[1] << ", " << at3[2]);
        }
      }
    }
  }
  kiln::set_num_threads(0);
}

template <class T>
void check_transposed_bands(DType dtype, int64_t rows, int64_t cols) {
  INFO(kiln::dtype_name(dtype) << ", " << rows << " x " << cols);
  Array base = iota(dtype, {cols, rows}, 0.5, 1.0), b = iota(dtype, {rows, cols}, 7.0, -3.0);
  Array a = base.transpose();  // rows an item apart: the blocks' path
  const T* pa = base.data_as<T>();
  const T* pb = b.data_as<T>();
  Array r = kiln::eval("a - b", {{"a", a}, {"b", b}});
  Array out_base = Array::zeros(dtype, {cols, rows});
  kiln::eval("b - a", {{"a", a}, {"b", b}}, out_base.transpose());
  const T* po = out_base.data_as<T>();
  int64_t wrong = 0;
  std::vector<int64_t> idx(2);
  for (idx[0] = 0; idx[0] < rows; ++idx[0]) {
    for (idx[1] = 0; idx[1] < cols; ++idx[1]) {
      const T x = pa[idx[1] * rows + idx[0]], y = pb[idx[0] * cols + idx[1]];
      wrong += at<T>(r, idx) != static_cast<T>(x - y);
      wrong += po[idx[1] * rows + idx[0]] != static_cast<T>(y - x);
    }
  }
  CHECK(wrong == 0);
}

TEST_CASE("transposed views move through registers a block at a time, on every instruction set", "[execute]") {
  // A read (a.T - b) and an output (out=o.T) whose rows are an item apart move between
  // memory and a band's tile in square blocks transposed in registers (simd::BandFn, 2 to
  // 8 items a side by set and item size), the rest an item at a time: 4- and 8-byte
  // items of floats and integers (the blocks move bits), within the caches and beyond,
  // bands one line deep (whole rows) and 512 bytes deep (rows of 4100, pieces of 128, the
  // last 4 items, under a block), rows and columns that blocks and bands do not divide, a
  // plane's last band shallower than a block (19 rows), rows shorter than the plan's
  // chunk (64 and 100 float32 elements); 1 and 3 threads.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{16, 64},   {70, 100},   {16, 200}, {19, 131},
                                                           {300, 300}, {37, 1000}, {70, 4100}, {520, 1100}};
  kiln::test::for_each_isa([&](const std::string&) {
    for (int threads : {1, 3}) {
      kiln::set_num_threads(threads);
      INFO(threads << " threads");
      for (const auto& [rows, cols] : shapes) {
        check_transposed_bands<double>(DType::Float64, rows, cols);
        check_transposed_bands<float>(DType::Float32, rows, cols);
        check_transposed_bands<int64_t>(DType::Int64, rows, cols);
        check_transposed_bands<int32_t>(DType::Int32, rows, cols);
      }
    }
  });
  kiln::set_num_threads(0);
}

TEST_CASE("reads broadcast over leading dimensions run flat as repeating patterns", "[execute]") {
  // `m + row` and its kin read the broadcast operand as a pattern filled once per thread
  // (periodic_chunk): periods that divide neither the chunk nor a SIMD batch, two periods
  // in one loop, a generated pattern, one longer than a chunk (cut by rows instead), a
  // result written into the matrix, a zero stride inside a pattern, a reversed row, a
  // bool condition; float32 on every instruction set, 1 and 3 threads.
  Array data = Array::empty(DType::Float32, {2000000});
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> u(-4, 4);
  for (int64_t i = 0; i < data.size(); ++i) data.data_as<float>()[i] = u(rng);
  const float* d = data.data_as<float>();
  kiln::test::for_each_isa([&](const std::string&) {
    for (int threads : {1, 3}) {
      kiln::set_num_threads(threads);
      INFO(threads << " threads");
      for (int64_t period : {2, 3, 17, 100, 1000, 5000}) {
        for (int64_t rows : {1, 7, 301}) {
          INFO("rows " << rows << ", period " << period);
          const int64_t n = rows * period;
          Array m = data.slice(0, 0, n).reshape({rows, period}), row = data.slice(0, n, n + period);
          const float* rw = row.data_as<float>();
          Array r = kiln::eval((m - row) * row);
          CHECK(mismatches<float>(r, n, [&](int64_t i) {
                  volatile float diff = d[i] - rw[i % period];
                  return diff * rw[i % period];
                }) == 0);
          Array g = kiln::eval(m + kiln::arange(0, period, 1, DType::Float32));
          CHECK(mismatches<float>(g, n, [&](int64_t i) { return d[i] + static_cast<float>(i % period); }) == 0);
          Array in_place = m.copy();
          kiln::eval(in_place * 2.0f + row, in_place);
          CHECK(mismatches<float>(in_place, n, [&](int64_t i) { return d[i] * 2.0f + rw[i % period]; }) == 0);
        }
      }
      // A pattern with a zero stride inside it: (40, 3, 3) + (3, 1), 9 elements per period.
      Array stack = data.slice(0, 0, 360).reshape({40, 3, 3}), col = data.slice(0, 500, 503).reshape({3, 1});
      Array rc = kiln::eval(stack - col);
      CHECK(mismatches<float>(rc, 360, [&](int64_t i) { return d[i] - col.data_as<float>()[i % 9 / 3]; }) == 0);
      // A reversed row (negative stride), and a bool condition (1-byte items) per column.
      Array reversed = data.slice(0, 1099, 999, -1);  // data[1099], data[1098], ..., data[1000]
      Array mask = Array::empty(DType::Bool, {100});
      for (int64_t k = 0; k < 100; ++k) mask.data_as<bool>()[k] = k % 3 != 1;
      Array m100 = data.slice(0, 0, 30000).reshape({300, 100});
      Array rr = kiln::eval(kiln::where(mask, m100 + reversed, -m100));
      CHECK(mismatches<float>(rr, 30000, [&](int64_t i) {
              const int64_t k = i % 100;
              return k % 3 != 1 ? d[i] + d[1099 - k] : -d[i];
            }) == 0);
      // (5, 6, 10) + (10,) * (6, 10): patterns of 10 and 60 elements.
      Array m3 = data.slice(0, 0, 300).reshape({5, 6, 10}), a = data.slice(0, 300, 310),
            b = data.slice(0, 400, 460).reshape({6, 10});
      Array r3 = kiln::eval(m3 + a * b);
      CHECK(mismatches<float>(r3, 300, [&](int64_t i) {
              volatile float prod = a.data_as<float>()[i % 10] * b.data_as<float>()[i % 60];
              return d[i] + prod;
            }) == 0);
    }
  });
  kiln::set_num_threads(0);
}
