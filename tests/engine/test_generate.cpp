// Generator nodes (creation and random numbers) in the engine: the same bits for any
// thread count, chunk size, layout of the output and path through the executor (the
// streamed fill, chunks, rows, reductions, broadcasts); fused without temporaries; random
// nodes without a shape taking the loop's; permutation and shuffle.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "array.hpp"
#include "execute.hpp"
#include "generate.hpp"
#include "permutation.hpp"
#include "kiln/kiln.hpp"
#include "plan.hpp"
#include "runtime.hpp"

using kiln::Array;
using kiln::DType;
using kiln::Expr;
using kiln::GenSpec;
using kiln::Shape;

namespace {

bool same_bytes(const Array& a, const Array& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  Array ca = a.copy(), cb = b.copy();
  return std::memcmp(ca.data(), cb.data(), static_cast<size_t>(ca.size()) * ca.itemsize()) == 0;
}

struct Case {
  std::string name;
  bool flat;  // arange and linspace make 1-D arrays of n elements
  std::function<GenSpec(const Shape&)> spec;
};

// One of each generator and of each dtype the random ones make.
std::vector<Case> cases() {
  using namespace kiln;
  auto n = [](const Shape& s) { return static_cast<double>(shape_size(s)); };
  auto i = [](double v) { return Scalar::of_float(v); };
  return {
      {"full float64", false, [](const Shape& s) { return full_spec(s, Scalar::of_float(-2.5), std::nullopt); }},
      {"full int32", false, [](const Shape& s) { return full_spec(s, Scalar::of_int(7), DType::Int32); }},
      {"eye float64", false, [](const Shape& s) { return eye_spec(s[0], s[1], 3, std::nullopt); }},
      {"arange float64", true, [=](const Shape& s) { return arange_spec(i(0.25), i(0.25 + 0.5 * n(s)), i(0.5), std::nullopt); }},
      {"arange float32", true, [=](const Shape& s) { return arange_spec(i(1.0), i(1.0 + 0.1 * n(s)), i(0.1), DType::Float32); }},
      {"arange int64", true,
       [](const Shape& s) { return arange_spec(Scalar::of_int(-5), Scalar::of_int(-5 + 3 * shape_size(s)), Scalar::of_int(3), std::nullopt); }},
      {"linspace float64", true, [](const Shape& s) { return linspace_spec(-1.0, 1.0, shape_size(s), true, std::nullopt); }},
      {"linspace int32", true, [](const Shape& s) { return linspace_spec(-1000.5, 1000.0, shape_size(s), true, DType::Int32); }},
      {"uniform float64", false, [](const Shape& s) { return uniform_spec(11, s, -3.0, 5.0, std::nullopt); }},
      {"uniform float32", false, [](const Shape& s) { return uniform_spec(12, s, 0.0, 1.0, DType::Float32); }},
      {"normal float64", false, [](const Shape& s) { return normal_spec(13, s, 1.0, 2.0, std::nullopt); }},
      {"normal float32", false, [](const Shape& s) { return normal_spec(14, s, 0.0, 1.0, DType::Float32); }},
      {"integers int64", false, [](const Shape& s) { return integers_spec(15, s, -7, 1000003, std::nullopt); }},
      {"integers int32, its whole span", false,
       [](const Shape& s) { return integers_spec(16, s, INT32_MIN, int64_t{INT32_MAX} + 1, DType::Int32); }},
      {"integers int64, range 2^63 + 1 (rejections)", false,
       [](const Shape& s) { return integers_spec(18, s, -(int64_t{1} << 62), (int64_t{1} << 62) + 1, std::nullopt); }},
      {"bernoulli", false, [](const Shape& s) { return bernoulli_spec(17, s, 0.3); }},
  };
}

Expr node(const GenSpec& s) { return Expr::generate(s, nullptr); }

// The generator's array at `shape` (1-D ones made with shape's size and reshaped).
Array made(const Case& c, const Shape& shape) {
  return kiln::eval(node(c.spec(c.flat ? Shape{kiln::shape_size(shape)} : shape))).reshape(shape);
}

}  // namespace

TEST_CASE("generators give the same bits for 1, 2 and 7 threads and every output layout", "[generate][threads]") {
  const Shape shape = {37, 1031};  // rows longer than a chunk, a ragged last piece
  const int64_t n = kiln::shape_size(shape);
  for (const Case& c : cases()) {
    INFO(c.name);
    const GenSpec spec = c.spec(c.flat ? Shape{n} : shape);
    kiln::set_num_threads(1);
    const Array ref = kiln::eval(node(spec)).reshape(shape);
    for (int threads : {2, 7}) {
      kiln::set_num_threads(threads);
      CHECK(same_bytes(kiln::eval(node(spec)).reshape(shape), ref));
    }
    kiln::set_num_threads(0);
    if (c.flat) {
      // A strided 1-D output (scattered).
      Array big = Array::zeros(ref.dtype(), {2 * n});
      Array strided = big.slice(0, 0, 2 * n, 2);
      kiln::eval(node(spec), strided);
      CHECK(same_bytes(strided.reshape(shape), ref));
      continue;
    }
    // Into a strided view (scattered), a transposed view (elements visited out of order).
    Array big = Array::zeros(ref.dtype(), {shape[0], 2 * shape[1]});
    Array strided = big.slice(1, 0, 2 * shape[1], 2);
    kiln::eval(node(spec), strided);
    CHECK(same_bytes(strided, ref));
    Array t = Array::zeros(ref.dtype(), {shape[1], shape[0]}).transpose();
    kiln::eval(node(spec), t);
    CHECK(same_bytes(t, ref));
    // Broadcast against a new leading axis, through the chunked loop.
    Array slab = kiln::eval(kiln::where(kiln::ones({3, 1, 1}, DType::Bool), node(spec), node(spec)));
    REQUIRE(slab.shape() == Shape{3, shape[0], shape[1]});
    for (int64_t k = 0; k < 3; ++k) CHECK(same_bytes(slab.index(0, k), ref));
    // A broadcast generator: one row of it against many.
    Shape row_shape = {1, shape[1]};
    Array row = kiln::eval(node(c.spec(row_shape)));
    Array rows = kiln::eval(kiln::where(kiln::ones({5, 1}, DType::Bool), node(c.spec(row_shape)), node(c.spec(row_shape))));
    for (int64_t k = 0; k < 5; ++k) CHECK(same_bytes(rows.slice(0, k, k + 1), row));
  }
}

TEST_CASE("generators in reductions fold the same values as their arrays", "[generate][reduce]") {
  const Shape shape = {129, 517};
  for (const Case& c : cases()) {
    if (c.flat) continue;
    INFO(c.name);
    const Array x = made(c, shape);
    const GenSpec spec = c.spec(shape);
    DType d = x.dtype();
    Expr g = d == DType::Bool ? kiln::astype(node(spec), DType::Int64) : node(spec);
    // x + 0 (exact but for -0.0, which no draw here is; the planner drops x * 1) so that
    // both folds take the computed path: an array read in place is folded in longer runs,
    // which orders a float sum differently.
    Expr xa = d == DType::Bool ? kiln::astype(Expr(x), DType::Int64) : Expr(x) + 0;
    for (int threads : {1, 2}) {
      kiln::set_num_threads(threads);
      CHECK(same_bytes(kiln::eval(kiln::sum(g)), kiln::eval(kiln::sum(xa))));
      CHECK(same_bytes(kiln::eval(kiln::sum(g, 0)), kiln::eval(kiln::sum(xa, 0))));
      CHECK(same_bytes(kiln::eval(kiln::max(g, 1)), kiln::eval(kiln::max(xa, 1))));
      CHECK(same_bytes(kiln::eval(kiln::argmin(g)), kiln::eval(kiln::argmin(xa))));
    }
    kiln::set_num_threads(0);
  }
}

TEST_CASE("generators' bits do not depend on the plan's chunk size", "[generate][plan]") {
  const kiln::simd::KernelTable& kernels = kiln::Runtime::instance().kernels();
  for (const Case& c : cases()) {
    INFO(c.name);
    const Shape shape = c.flat ? Shape{20011} : Shape{61, 329};
    const Array ref = made(c, shape);
    for (const char* chunk : {"8", "24", "1000"}) {
      INFO("KILN_CHUNK=" << chunk);
      ::setenv("KILN_CHUNK", chunk, 1);
      // A plan built here (the cache would keep its first chunk size), running the
      // generator inside an expression so that chunks, not the streamed fill, make it.
      kiln::Graph g;
      int gen = g.generate(c.spec(shape));
      int yes = g.generate(kiln::full_spec({1}, kiln::Scalar::of_bool(true), DType::Bool));
      g.roots = {g.op(kiln::Op::where, {yes, gen, gen})};
      auto plan = kiln::build_plan(g, {}, std::nullopt, kernels);
      REQUIRE(plan->chunk == std::atoll(chunk));
      CHECK(same_bytes(kiln::execute(*plan, {}, nullptr).reshape(ref.shape()), ref));
    }
    ::unsetenv("KILN_CHUNK");
  }
}

TEST_CASE("generators fuse: sin(arange(n) * 0.01) allocates only its result", "[generate][fusion]") {
  const int64_t n = 1 << 22;
  Expr e = kiln::sin(kiln::arange(n) * 0.01);
  kiln::eval(e);  // plan cached, scratch allocated
  uint64_t before = kiln::array_bytes_allocated();
  Array r = kiln::eval(e);
  CHECK(kiln::array_bytes_allocated() - before == static_cast<uint64_t>(n) * 8);
  // The math kernels promise 4 ulp (libmvec's sin, on AVX2, is not libm's bits).
  const double want = std::sin(static_cast<double>(n - 1) * 0.01);
  CHECK(std::fabs(r.data_as<double>()[n - 1] - want) <= 4 * std::numeric_limits<double>::epsilon() * std::fabs(want));
  Array a = Array::zeros(DType::Float64, {n});
  Expr w = kiln::where(kiln::random::uniform(1) < 0.25, Expr(a) + 1.0, 0.0);
  kiln::eval(w);
  before = kiln::array_bytes_allocated();
  Array masked = kiln::eval(w);
  CHECK(kiln::array_bytes_allocated() - before == static_cast<uint64_t>(n) * 8);
  const double kept = std::accumulate(masked.data_as<double>(), masked.data_as<double>() + n, 0.0);
  CHECK(std::abs(kept / static_cast<double>(n) - 0.25) < 0.003);  // 6 sigma at n = 2^22
}

TEST_CASE("random nodes without a shape take the shape of the loop around them", "[generate]") {
  Array a = kiln::eval(kiln::arange(6000.0)).reshape({60, 100});
  Array with_shape = kiln::eval(kiln::where(kiln::random::uniform(3, Shape{60, 100}) < 0.5, Expr(a), -1.0));
  Array without = kiln::eval(kiln::where(kiln::random::uniform(3) < 0.5, Expr(a), -1.0));
  CHECK(same_bytes(with_shape, without));
  // Through a string too, and as two uses of the same node (the same numbers).
  Array twice = kiln::eval("uniform(seed=3) - uniform(seed=3) + a * 0", {{"a", a}});
  for (int64_t i = 0; i < twice.size(); ++i) REQUIRE(twice.data_as<double>()[i] == 0.0);
  // On its own it is one number, as numpy.random.Generator.random() without a size.
  Array alone = kiln::eval(kiln::random::uniform(3));
  CHECK(alone.ndim() == 0);
  CHECK(alone.data_as<double>()[0] == kiln::eval(kiln::random::uniform(3, Shape{60, 100})).data_as<double>()[0]);
}

TEST_CASE("permutation, permuted and shuffle: a permutation, the same for any thread count", "[generate][random]") {
  const int64_t n = 300001;
  kiln::set_num_threads(1);
  Array p1 = kiln::random::permutation(42, n);
  kiln::set_num_threads(2);
  Array p2 = kiln::random::permutation(42, n);
  kiln::set_num_threads(7);
  Array p7 = kiln::random::permutation(42, n);
  kiln::set_num_threads(0);
  CHECK(same_bytes(p1, p2));
  CHECK(same_bytes(p1, p7));
  std::vector<int64_t> sorted(p1.data_as<int64_t>(), p1.data_as<int64_t>() + n);
  int64_t fixed = 0;
  for (int64_t i = 0; i < n; ++i) fixed += sorted[i] == i;
  CHECK(fixed < 12);  // fixed points of a random permutation: Poisson(1), P(>= 12) < 1e-8
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < n; ++i) REQUIRE(sorted[i] == i);
  Array other = kiln::random::permutation(43, n);
  CHECK_FALSE(same_bytes(p1, other));
  CHECK(kiln::random::permutation(1, 0).size() == 0);
  CHECK_THROWS_WITH(kiln::random::permutation(1, -1), Catch::Contains("n must be non-negative"));

  // Rows move whole; shuffle in place equals permuted; a strided view is shuffled in place.
  Array m = kiln::eval(kiln::arange(3000)).reshape({1000, 3});
  Array moved = kiln::random::permuted(m, 5);
  const Array order_array = kiln::random::permutation(5, 1000);
  const int64_t* order = order_array.data_as<int64_t>();
  for (int64_t r = 0; r < 1000; ++r)
    for (int64_t k = 0; k < 3; ++k) REQUIRE(moved.data_as<int64_t>()[r * 3 + k] == order[r] * 3 + k);
  Array copy = m.copy();
  kiln::random::shuffle(copy, 5);
  CHECK(same_bytes(copy, moved));
  Array wide = kiln::eval(kiln::arange(6000)).reshape({1000, 6});
  Array view = wide.slice(1, 0, 6, 2);
  Array expected = kiln::random::permuted(view, 9);
  kiln::random::shuffle(view, 9);
  CHECK(same_bytes(view, expected));
  for (int64_t r = 0; r < 1000; ++r) REQUIRE(wide.data_as<int64_t>()[r * 6 + 1] % 6 == 1);  // untouched columns
  CHECK_THROWS_WITH(kiln::random::permuted(Array::scalar(1.0), 1), Catch::Contains("0-d"));
}

// The scalar reference of order_by_key: indices sorted by (key, index).
std::vector<int64_t> sorted_by_key(const std::vector<int64_t>& key) {
  std::vector<int64_t> order(key.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return key[a] != key[b] ? key[a] < key[b] : a < b; });
  return order;
}

TEST_CASE("permutation's sort orders by (key, index) for any keys and thread count", "[generate][random]") {
  // Random keys (the permutation's own), ties of few values (runs longer than a radix
  // digit separates), one value, the extremes, keys that differ only in their low bits,
  // and descending keys; sizes around the radix passes' bucket sizes.
  std::mt19937_64 rng(7);
  const std::vector<std::pair<std::string, std::function<int64_t(int64_t, int64_t)>>> kinds = {
      {"random", [&](int64_t, int64_t) { return static_cast<int64_t>(rng()); }},
      {"seven values", [&](int64_t, int64_t) { return static_cast<int64_t>(rng() % 7) - 3; }},
      {"one value", [](int64_t, int64_t) { return int64_t{42}; }},
      {"extremes", [&](int64_t, int64_t) {
         const int64_t v[] = {INT64_MIN, INT64_MAX, -1, 0, INT64_MIN + 1, INT64_MAX - 1};
         return v[rng() % 6];
       }},
      {"low bits", [&](int64_t, int64_t) { return static_cast<int64_t>(rng() % 4096); }},
      {"descending", [](int64_t i, int64_t n) { return (n - i) * 3; }}};
  for (const auto& [name, make_key] : kinds)
    for (int64_t n : {0, 1, 2, 17, 1023, 1025, 5000, 70001}) {
      INFO(name << ", n = " << n);
      std::vector<int64_t> key(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) key[i] = make_key(i, n);
      const std::vector<int64_t> expected = sorted_by_key(key);
      for (int threads : {1, 2, 5}) {
        kiln::set_num_threads(threads);
        std::vector<int64_t> order(static_cast<size_t>(n), -1);
        int keys_read = 0;
        kiln::order_by_key(key.data(), n, order.data(), [&] { ++keys_read; });
        REQUIRE(order == expected);
        REQUIRE(keys_read == (n > 0 ? 1 : 0));
      }
      kiln::set_num_threads(0);
    }
  // permutation(seed, n) is that sort of the seed's int64 random stream.
  const int64_t n = 100003;
  const Array keys = kiln::eval(kiln::random::integers(9, Shape{n}, INT64_MIN, INT64_MAX, DType::Int64));
  const std::vector<int64_t> expected = sorted_by_key({keys.data_as<int64_t>(), keys.data_as<int64_t>() + n});
  const Array p = kiln::random::permutation(9, n);
  CHECK(std::equal(expected.begin(), expected.end(), p.data_as<int64_t>()));
}

TEST_CASE("explain shows a generator as a read of the loop, not a step of its own", "[generate][plan]") {
  std::string text = kiln::explain(kiln::sin(kiln::arange(10) * 0.5));
  CHECK(text.find("arange(0, 10, 1, dtype=int64)") != std::string::npos);
  CHECK(std::count(text.begin(), text.end(), '\n') == 4);  // one loop header, three instructions
}

TEST_CASE("a generator's windows are bit-identical to the same part of the whole array", "[generate][window]") {
  // Windows at the corners, in the middle, thin, empty and whole: a Dask block of any chunking.
  const Shape shape = {23, 5, 317};
  const std::vector<std::pair<Shape, Shape>> windows = {
      {{0, 0, 0}, {23, 5, 317}}, {{0, 0, 0}, {1, 1, 1}}, {{22, 4, 316}, {1, 1, 1}}, {{3, 1, 100}, {7, 3, 200}},
      {{0, 2, 0}, {23, 1, 317}}, {{5, 0, 0}, {4, 5, 317}}, {{11, 3, 7}, {0, 2, 9}}};
  for (const Case& c : cases()) {
    INFO(c.name);
    const int64_t n = kiln::shape_size(shape);
    const GenSpec spec = c.spec(c.flat ? Shape{n} : shape);
    const Array whole = kiln::eval(node(spec));
    for (const auto& [start, extent] : windows) {
      INFO("window at " << kiln::shape_str(start) << " of " << kiln::shape_str(extent));
      if (c.flat) {  // 1-D: the window of the flat index range the 3-D window starts at
        const Shape s1 = {start[0] * 5 * 317 + start[1] * 317 + start[2]}, e1 = {kiln::shape_size(extent)};
        CHECK(same_bytes(kiln::generate_window(spec, s1, e1), whole.slice(0, s1[0], s1[0] + e1[0])));
        continue;
      }
      // eye makes (rows, cols) from the first two: its windows are the first two axes'.
      const size_t nd = spec.shape.size();
      const Shape s(start.begin(), start.begin() + nd), e(extent.begin(), extent.begin() + nd);
      Array want = whole;
      for (size_t d = 0; d < nd; ++d) want = want.slice(static_cast<int>(d), s[d], s[d] + e[d]);
      CHECK(same_bytes(kiln::generate_window(spec, s, e), want));
    }
  }
  // A 0-d generator's one window.
  const GenSpec scalar = kiln::uniform_spec(5, Shape{}, 0.0, 1.0, std::nullopt);
  CHECK(same_bytes(kiln::generate_window(scalar, {}, {}), kiln::eval(node(scalar))));
  // In parallel (a window big enough for several threads) the same as serially.
  const GenSpec spec = kiln::normal_spec(3, Shape{4096, 1000}, 0.0, 1.0, std::nullopt);
  kiln::set_num_threads(1);
  const Array serial = kiln::generate_window(spec, {1000, 3}, {3000, 997});
  kiln::set_num_threads(0);
  CHECK(same_bytes(kiln::generate_window(spec, {1000, 3}, {3000, 997}), serial));
  CHECK(same_bytes(kiln::eval(node(spec)).slice(0, 1000, 4000).slice(1, 3, 1000), serial));
}

TEST_CASE("a window that does not fit, or a generator without a shape, is refused", "[generate][window]") {
  const GenSpec spec = kiln::uniform_spec(1, Shape{10, 20}, 0.0, 1.0, std::nullopt);
  auto refused = [&](const GenSpec& s, const Shape& start, const Shape& extent, const std::string& says) {
    try {
      kiln::generate_window(s, start, extent);
      FAIL("accepted a window at " << kiln::shape_str(start) << " of " << kiln::shape_str(extent));
    } catch (const kiln::Error& e) {
      CHECK(e.status() == kiln::Status::BadArgument);
      CHECK_THAT(e.what(), Catch::Contains(says));
    }
  };
  refused(spec, {0, 15}, {10, 6}, "does not fit in shape (10, 20)");
  refused(spec, {-1, 0}, {1, 1}, "does not fit");
  refused(spec, {0}, {10}, "a window of 1 and 1 dimensions for a generator of shape (10, 20)");
  refused(kiln::uniform_spec(1, std::nullopt, 0.0, 1.0, std::nullopt), {}, {}, "has no shape of its own");
}
