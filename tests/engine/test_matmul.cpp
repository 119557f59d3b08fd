// matmul (numpy.matmul) through the engine: against a naive triple loop for every dtype,
// 1-D, 2-D, empty and batched-with-broadcast shapes, transposed / sliced / reversed
// operands (and that BLAS reads the layouts it can take in place), the element-wise
// epilogue run over the product's tiles (and when it must not be), errors, and the thread
// budget with many user threads calling at once.
#include <catch2/catch.hpp>

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <tbb/parallel_for.h>

#include "kiln/kiln.hpp"
#include "../task_count.hpp"
#include "linalg.hpp"
#include "gemm.hpp"
#include "threads.hpp"

using kiln::Array;
using kiln::DType;
using kiln::Expr;
using kiln::Shape;

using kiln::test::task_count;

namespace {

// Small integers (exact in every dtype), different per seed and element.
Array values(DType d, const Shape& shape, int seed) {
  Array a = Array::empty(d, shape);
  for (int64_t i = 0; i < a.size(); ++i) {
    int v = static_cast<int>((i * 7 + seed * 13) % 11) - 5;
    switch (d) {
      case DType::Bool: a.data_as<bool>()[i] = v > 0; break;
      case DType::Int32: a.data_as<int32_t>()[i] = v; break;
      case DType::Int64: a.data_as<int64_t>()[i] = v; break;
      case DType::Float32: a.data_as<float>()[i] = static_cast<float>(v) * 0.25f; break;
      case DType::Float64: a.data_as<double>()[i] = v * 0.25 + 0.125; break;
    }
  }
  return a;
}

// Element `flat` (C order over its shape) of any view, as double.
double at(const Array& a, int64_t flat) {
  int64_t off = 0;
  for (int d = a.ndim() - 1; d >= 0; --d) {
    off += (flat % a.shape()[d]) * a.strides()[d];
    flat /= a.shape()[d];
  }
  const char* p = a.data() + off;
  switch (a.dtype()) {
    case DType::Bool: return *reinterpret_cast<const bool*>(p);
    case DType::Int32: return *reinterpret_cast<const int32_t*>(p);
    case DType::Int64: return static_cast<double>(*reinterpret_cast<const int64_t*>(p));
    case DType::Float32: return *reinterpret_cast<const float*>(p);
    case DType::Float64: return *reinterpret_cast<const double*>(p);
  }
  return 0;
}

// numpy.matmul by its definition, in double (exact for these small integers).
std::vector<double> naive(const Array& a, const Array& b, Shape& shape, bool logical) {
  shape = kiln::matmul_shape(a.shape(), b.shape());
  Array a2 = a.ndim() == 1 ? a.reshape({1, a.shape()[0]}) : a;
  Array b2 = b.ndim() == 1 ? b.reshape({b.shape()[0], 1}) : b;
  int64_t m = a2.shape()[a2.ndim() - 2], k = a2.shape().back(), n = b2.shape().back();
  Shape batch(shape.begin(), shape.end() - (a.ndim() > 1) - (b.ndim() > 1));
  Shape fa = batch, fb = batch;
  fa.insert(fa.end(), {m, k});
  fb.insert(fb.end(), {k, n});
  Array ab = a2.broadcast_to(fa), bb = b2.broadcast_to(fb);
  int64_t items = kiln::shape_size(batch);
  std::vector<double> out;
  for (int64_t t = 0; t < items; ++t)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) {
          double x = at(ab, (t * m + i) * k + p), y = at(bb, (t * k + p) * n + j);
          s = logical ? (s != 0 || (x != 0 && y != 0)) : s + x * y;
        }
        out.push_back(s);
      }
  return out;
}

void check_matmul(const Array& a, const Array& b, double tol = 0) {
  Shape shape;
  DType want = kiln::promote(a.dtype(), b.dtype());
  std::vector<double> ref = naive(a, b, shape, want == DType::Bool);
  Array got = kiln::eval(kiln::matmul(a, b));
  INFO(kiln::shape_str(a.shape()) << " @ " << kiln::shape_str(b.shape()) << " " << kiln::dtype_name(a.dtype()) << " @ "
                                  << kiln::dtype_name(b.dtype()));
  REQUIRE(got.dtype() == want);
  REQUIRE(got.shape() == shape);
  for (int64_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    REQUIRE(std::fabs(at(got, i) - ref[i]) <= tol * std::max(1.0, std::fabs(ref[i])));
  }
}

}  // namespace

TEST_CASE("matmul matches a naive loop for every dtype and shape kind", "[matmul]") {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {4, 5}}, {{1, 1}, {1, 1}}, {{1, 7}, {7, 1}}, {{6, 1}, {1, 6}}, {{4}, {4}}, {{4}, {4, 3}},
      {{3, 4}, {4}}, {{2, 3, 4}, {4, 2}}, {{4}, {2, 4, 3}}, {{2, 1, 3, 4}, {5, 4, 2}}, {{0, 3}, {3, 2}},
      {{3, 0}, {0, 2}}, {{2, 3}, {3, 0}}, {{0, 2, 3}, {3, 4}}, {{65, 70}, {70, 67}}};
  for (DType d : {DType::Float64, DType::Float32, DType::Int64, DType::Int32, DType::Bool})
    for (auto& [sa, sb] : shapes) check_matmul(values(d, sa, 1), values(d, sb, 2));
}

TEST_CASE("matmul promotes mixed dtypes as NumPy", "[matmul]") {
  check_matmul(values(DType::Int32, {3, 4}, 1), values(DType::Float32, {4, 2}, 2));  // float64
  check_matmul(values(DType::Bool, {3, 4}, 1), values(DType::Int32, {4, 2}, 2));     // int32
  check_matmul(values(DType::Int64, {3, 4}, 1), values(DType::Float64, {4, 2}, 2));
  check_matmul(values(DType::Float32, {3, 4}, 1), values(DType::Float64, {4, 2}, 2));
  CHECK(kiln::eval(kiln::matmul(values(DType::Int32, {2, 2}, 1), values(DType::Float32, {2, 2}, 1))).dtype() == DType::Float64);
}

TEST_CASE("integer matmul wraps like NumPy's", "[matmul]") {
  Array a = Array::empty(DType::Int32, {1, 2}), b = Array::empty(DType::Int32, {2, 1});
  a.data_as<int32_t>()[0] = a.data_as<int32_t>()[1] = 65536;
  b.data_as<int32_t>()[0] = 65536, b.data_as<int32_t>()[1] = 3;
  Array c = kiln::eval(kiln::matmul(a, b));
  CHECK(c.data_as<int32_t>()[0] == 196608);  // 2^32 wraps to 0, plus 65536 * 3
}

TEST_CASE("transposed, sliced, reversed and broadcast operands", "[matmul]") {
  for (DType d : {DType::Float64, DType::Float32, DType::Int64}) {
    Array a = values(d, {9, 8}, 3), b = values(d, {8, 10}, 4);
    check_matmul(a.transpose().copy().transpose(), b);                     // column-major a
    check_matmul(a, b.transpose().copy().transpose());                     // column-major b
    check_matmul(values(d, {8, 9}, 5).transpose(), values(d, {10, 8}, 6).transpose());
    check_matmul(a.slice(1, 1, 7), b.slice(0, 2, 8));                      // padded rows
    check_matmul(a.slice(0, 0, 9, 2), b.slice(1, 0, 10, 3));               // strided: copied
    check_matmul(a.slice(0, 8, -100, -1), b);                              // reversed rows
    check_matmul(values(d, {1, 8}, 7).broadcast_to({5, 8}), b);            // stride-0 rows
    check_matmul(values(d, {3, 9, 8}, 8).transpose({0, 2, 1}).transpose({0, 2, 1}), b);
    check_matmul(values(d, {2, 8, 9}, 9).transpose({0, 2, 1}), values(d, {2, 10, 8}, 10).transpose({0, 2, 1}));
  }
}

TEST_CASE("BLAS reads transposed and row-padded operands in place", "[matmul]") {
  Array a = values(DType::Float64, {64, 48}, 1), b = values(DType::Float64, {48, 40}, 2);
  Array at_ = a.transpose().copy();  // (48, 64): at_.transpose() is a column-major view of a
  Array padded = values(DType::Float64, {48, 50}, 2).slice(1, 0, 40);
  for (const auto& [x, y] : std::vector<std::pair<Array, Array>>{{at_.transpose(), b}, {a, padded}, {a, b.transpose().copy().transpose()}}) {
    kiln::eval(kiln::matmul(x, y));  // plan cached
    uint64_t before = kiln::array_bytes_allocated();
    Array c = kiln::eval(kiln::matmul(x, y));
    CHECK(kiln::array_bytes_allocated() - before == static_cast<uint64_t>(c.size()) * 8);  // the result only
  }
  // A layout BLAS cannot take is copied once (the operand), not per batch item or tile.
  Array strided = values(DType::Float64, {64, 96}, 3).slice(1, 0, 96, 2);
  kiln::eval(kiln::matmul(strided, b));
  uint64_t before = kiln::array_bytes_allocated();
  Array c = kiln::eval(kiln::matmul(strided, b));
  CHECK(kiln::array_bytes_allocated() - before == static_cast<uint64_t>(c.size() + strided.size()) * 8);
}

TEST_CASE("the epilogue runs over the product's tiles and matches a separate pass", "[matmul]") {
  for (int threads : {1, 2, 3}) {
    kiln::set_num_threads(threads);
    for (DType d : {DType::Float64, DType::Float32}) {
      Array a = values(d, {300, 200}, 1), b = values(d, {200, 260}, 2), bias = values(d, {260}, 3);
      Array product = kiln::eval(kiln::matmul(a, b));
      Array fused = kiln::eval(kiln::relu(kiln::matmul(a, b) + bias));
      Array separate = kiln::eval(kiln::relu(Expr(product) + bias));
      REQUIRE(fused.shape() == separate.shape());
      CHECK(std::memcmp(fused.data(), separate.data(), fused.size() * fused.itemsize()) == 0);
      // Batched, with an operand of the loop broadcast over the batch.
      Array ab = values(d, {3, 70, 40}, 4), bb = values(d, {40, 90}, 5), row = values(d, {70, 1}, 6);
      Array pb = kiln::eval(kiln::matmul(ab, bb));
      Array fb = kiln::eval(kiln::matmul(ab, bb) * 2 - row);
      Array sb = kiln::eval(Expr(pb) * 2 - row);
      CHECK(std::memcmp(fb.data(), sb.data(), fb.size() * fb.itemsize()) == 0);
    }
  }
  kiln::set_num_threads(0);
  Array a = values(DType::Float64, {300, 200}, 1), b = values(DType::Float64, {200, 260}, 2), bias = values(DType::Float64, {260}, 3);
  CHECK(kiln::explain(kiln::relu(kiln::matmul(a, b) + bias)).find("the loop below runs over its tiles") != std::string::npos);
}

TEST_CASE("matmul into out, aliasing and several uses of one product", "[matmul]") {
  kiln::set_num_threads(2);
  Array a = values(DType::Float64, {120, 120}, 1), b = values(DType::Float64, {120, 120}, 2);
  Array product = kiln::eval(kiln::matmul(a, b));
  Array want = kiln::eval(Expr(product) + 1.0);
  // out is the left operand: later tiles still read rows the epilogue would overwrite.
  Array a2 = a.copy();
  kiln::eval(kiln::matmul(a2, b) + 1.0, a2);
  CHECK(std::memcmp(a2.data(), want.data(), 8 * want.size()) == 0);
  // out is an input of the epilogue only (same element mapping): safe tile by tile.
  Array c = values(DType::Float64, {120, 120}, 3);
  Array want_c = kiln::eval(Expr(product) + c);
  kiln::eval(kiln::matmul(a, b) + c, c);
  CHECK(std::memcmp(c.data(), want_c.data(), 8 * want_c.size()) == 0);
  // The product as a root too, a reduction of it, and zeros_like of it.
  std::vector<Array> r = kiln::eval({kiln::matmul(a, b), kiln::matmul(a, b) * 2.0, kiln::sum(kiln::matmul(a, b)),
                                     kiln::matmul(a, b) + kiln::zeros_like(kiln::matmul(a, b))});
  CHECK(std::memcmp(r[0].data(), product.data(), 8 * product.size()) == 0);
  double total = 0;
  for (int64_t i = 0; i < product.size(); ++i) {
    CHECK(r[1].data_as<double>()[i] == 2.0 * product.data_as<double>()[i]);
    CHECK(r[3].data_as<double>()[i] == product.data_as<double>()[i]);
    total += product.data_as<double>()[i];
  }
  CHECK(*r[2].data_as<double>() == Approx(total).epsilon(1e-12));
  // An operand that is an expression is made first; a generator operand too.
  Array twice = kiln::eval(kiln::matmul(Expr(a) * 2.0, kiln::eye(120)));
  for (int64_t i = 0; i < a.size(); ++i) REQUIRE(twice.data_as<double>()[i] == 2.0 * a.data_as<double>()[i]);
  kiln::set_num_threads(0);
}

TEST_CASE("matmul errors name the shapes and write nothing", "[matmul]") {
  Array a = values(DType::Float64, {3, 4}, 1), b = values(DType::Float64, {5, 2}, 2);
  Array out = Array::zeros(DType::Float64, {3, 2});
  try {
    kiln::eval(kiln::matmul(a, b) + 1.0, out);
    FAIL("no error");
  } catch (const kiln::Error& e) {
    CHECK(e.status() == kiln::Status::ShapeMismatch);
    CHECK(std::string(e.what()).find("(3, 4) @ (5, 2)") != std::string::npos);
  }
  for (int64_t i = 0; i < out.size(); ++i) CHECK(out.data_as<double>()[i] == 0.0);
  CHECK_THROWS_WITH(kiln::eval(kiln::matmul(a, 2.0)), Catch::Contains("at least one dimension"));
  CHECK_THROWS_WITH(kiln::eval(kiln::matmul(values(DType::Float64, {2, 3, 4}, 1), values(DType::Float64, {3, 4, 2}, 2))),
                    Catch::Contains("batch dimensions (2,) and (3,) do not broadcast"));
  CHECK_THROWS_WITH(kiln::eval("a @ b", {{"a", a}, {"b", b}}), Catch::Contains("inner dimensions differ"));
}

TEST_CASE("matmul through expression strings", "[matmul]") {
  Array a = values(DType::Float64, {5, 4}, 1), b = values(DType::Float64, {4, 3}, 2), c = values(DType::Float64, {3}, 3);
  Array want = kiln::eval(kiln::relu(kiln::matmul(a, b) * 2.0 + c));
  for (const char* text : {"relu(a @ b * 2 + c)", "relu(matmul(a, b) * 2 + c)", "relu(2 * a @ b + c)"}) {
    Array got = kiln::eval(text, {{"a", a}, {"b", b}, {"c", c}});
    CHECK(std::memcmp(got.data(), want.data(), 8 * want.size()) == 0);
  }
  // `@` binds like `*`, left to right: a @ b @ c is (a @ b) @ c.
  Array sq = values(DType::Float64, {4, 4}, 4);
  Array abc = kiln::eval(kiln::matmul(kiln::matmul(sq, sq), sq));
  Array parsed = kiln::eval("a @ a @ a", {{"a", sq}});
  CHECK(std::memcmp(abc.data(), parsed.data(), 8 * abc.size()) == 0);
}

TEST_CASE("many user threads calling matmul at once stay within the thread budget", "[thread-budget]") {
  const int budget = 2, users = 8;
  kiln::set_num_threads(budget);
  kiln::blas::blas_threads_at_load();
  Array a = values(DType::Float64, {256, 256}, 1), b = values(DType::Float64, {256, 256}, 2);
  Array want = kiln::eval(kiln::matmul(a, b));
  const int before = task_count();  // this thread, OpenBLAS's idle pool, kiln's workers so far
  std::atomic<int> bad{0};
  kiln::test::ThreadWatch watch;
  std::vector<std::thread> ts;
  for (int u = 0; u < users; ++u)
    ts.emplace_back([&] {
      for (int rep = 0; rep < 20; ++rep) {
        Array c = kiln::eval(kiln::relu(kiln::matmul(a, b) + 1.0));
        Array d = kiln::eval(kiln::matmul(a, b));
        bad += std::memcmp(d.data(), want.data(), 8 * want.size()) != 0;
      }
    });
  for (auto& t : ts) t.join();
  const int most = watch.stop();
  CHECK(bad == 0);
  // Beyond the callers and the watcher: at most the budget's workers (budget - 1, the
  // caller being one), however many threads call; OpenBLAS never starts more.
  INFO("tasks before " << before << ", most during " << most);
  CHECK(most <= before + users + 1 + (budget - 1));
  // From inside a user's own TBB pool too (nested: kiln's arena inside theirs).
  bad = 0;
  tbb::parallel_for(0, users, [&](int) {
    Array d = kiln::eval(kiln::matmul(a, b));
    bad += std::memcmp(d.data(), want.data(), 8 * want.size()) != 0;
  });
  CHECK(bad == 0);
  kiln::set_num_threads(0);
}

TEST_CASE("kiln gives the host's OpenBLAS thread setting back after its own calls", "[matmul]") {
  const int before = openblas_get_num_threads();
  openblas_set_num_threads(2);
  Array a = values(DType::Float64, {300, 300}, 1);
  kiln::eval(kiln::matmul(a, a));
  kiln::eval(kiln::relu(kiln::matmul(a, a) - 1.0));
  CHECK(openblas_get_num_threads() == 2);
  openblas_set_num_threads(before);
}

TEST_CASE("GEMM tiles: one per thread, balanced over batch items, none for small work", "[matmul]") {
  using kiln::blas::tile_grid;
  auto tiles = [](kiln::blas::TileGrid g) { return g.rows * g.cols; };
  CHECK(tiles(tile_grid(1, 2000, 2000, 2000, 1)) == 1);
  CHECK(tiles(tile_grid(1, 2000, 2000, 2000, 2)) == 2);
  kiln::blas::TileGrid sixteen = tile_grid(1, 2000, 2000, 2000, 16);
  CHECK(sixteen.rows == 4);  // the squarest cut packs least
  CHECK(sixteen.cols == 4);
  CHECK(tiles(tile_grid(1, 4000, 250, 4000, 2)) == 2);
  CHECK(tiles(tile_grid(3, 500, 500, 500, 2)) == 2);   // 6 tiles over 2 threads
  CHECK(tiles(tile_grid(4, 500, 500, 500, 2)) == 1);   // items enough already
  CHECK(tiles(tile_grid(100, 500, 500, 500, 2)) == 1);
  CHECK(tiles(tile_grid(1, 40, 40, 40, 16)) == 1);     // 128 kFLOP: not worth a second thread
  kiln::blas::TileGrid thin = tile_grid(1, 100000, 8, 64, 8);
  CHECK(thin.cols == 1);  // never tiles narrower than 64
  CHECK(thin.rows == 8);
}

TEST_CASE("numpy.linalg through the C++ API: several results from one call, fused uses", "[matmul][linalg]") {
  const int n = 6;
  Array a = Array::empty(DType::Float64, {n, n});  // symmetric positive definite
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) a.data_as<double>()[i * n + j] = (i == j ? n : 0.0) + 1.0 / (1 + i + j);
  Array b = values(DType::Float64, {n}, 2);
  // solve, then the residual computed in the same evaluation: a @ x - b ~ 0.
  std::vector<Array> r = kiln::eval({kiln::linalg::solve(a, b), kiln::matmul(a, kiln::linalg::solve(a, b)) - b});
  for (int i = 0; i < n; ++i) CHECK(std::fabs(r[1].data_as<double>()[i]) < 1e-12);
  // qr's two results from one LAPACK call, multiplied back.
  std::vector<Expr> qr = kiln::linalg::qr(a);
  REQUIRE(qr.size() == 2);
  Array back = kiln::eval(kiln::matmul(qr[0], qr[1]) - a);
  for (int64_t i = 0; i < back.size(); ++i) CHECK(std::fabs(back.data_as<double>()[i]) < 1e-12);
  CHECK(kiln::explain(kiln::matmul(qr[0], qr[1])).find("%0[0], %1[1] = qr($a0)") != std::string::npos);
  // eigh: a v = v diag(w); the eigenvalues ascend.
  std::vector<Expr> wv = kiln::linalg::eigh(a);
  std::vector<Array> ev = kiln::eval({wv[0], kiln::matmul(a, wv[1]) - wv[1] * wv[0]});
  for (int i = 1; i < n; ++i) CHECK(ev[0].data_as<double>()[i - 1] <= ev[0].data_as<double>()[i]);
  for (int64_t i = 0; i < ev[1].size(); ++i) CHECK(std::fabs(ev[1].data_as<double>()[i]) < 1e-12);
  // det(a) = prod(eigenvalues); inv(a) @ a = I; cholesky's L @ L^T = a via the string API.
  double prod = 1;
  for (int i = 0; i < n; ++i) prod *= ev[0].data_as<double>()[i];
  CHECK(*kiln::eval(kiln::linalg::det(a)).data_as<double>() == Approx(prod).epsilon(1e-12));
  Array eye = kiln::eval(kiln::matmul(kiln::linalg::inv(a), a) - kiln::eye(n));
  for (int64_t i = 0; i < eye.size(); ++i) CHECK(std::fabs(eye.data_as<double>()[i]) < 1e-12);
  Array l = kiln::eval(kiln::linalg::cholesky(a));
  Array llt = kiln::eval("l @ lt - a", {{"l", l}, {"lt", l.transpose()}, {"a", a}});
  for (int64_t i = 0; i < llt.size(); ++i) CHECK(std::fabs(llt.data_as<double>()[i]) < 1e-12);
  // norm: Frobenius = sqrt(sum(a*a)); the 2-norm = the largest singular value (svd's S).
  double fro = *kiln::eval(kiln::linalg::norm(a, "fro")).data_as<double>();
  CHECK(fro == Approx(*kiln::eval(kiln::sqrt(kiln::sum(Expr(a) * a))).data_as<double>()).epsilon(1e-14));
  Array s = kiln::eval(kiln::linalg::svd(a, true, false)[0]);
  CHECK(*kiln::eval(kiln::linalg::norm(a, 2.0)).data_as<double>() == Approx(s.data_as<double>()[0]).epsilon(1e-14));
  // lstsq on a consistent overdetermined system recovers x exactly.
  Array tall = values(DType::Float64, {9, 3}, 5), x = values(DType::Float64, {3}, 6);
  Array rhs = kiln::eval(kiln::matmul(tall, x));
  Array fit = kiln::eval(kiln::linalg::lstsq(tall, rhs)[0]);
  for (int i = 0; i < 3; ++i) CHECK(fit.data_as<double>()[i] == Approx(x.data_as<double>()[i]).margin(1e-12));
  // A singular matrix: LinAlgError, naming LAPACK's info.
  Array singular = Array::zeros(DType::Float64, {3, 3});
  try {
    kiln::eval(kiln::linalg::inv(singular));
    FAIL("no error");
  } catch (const kiln::Error& e) {
    CHECK(e.status() == kiln::Status::LinAlgError);
    CHECK_THAT(e.what(), Catch::Contains("info"));
  }
}
