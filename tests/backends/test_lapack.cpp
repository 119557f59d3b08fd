// numpy.linalg over LAPACKE (backends/blas/lapack.hpp): results against known matrices
// and hand-computed values, residual and reconstruction checks on pseudo-random ones (a
// fixed LCG, so every run sees the same matrices), dtypes (float32 stays float32, ints
// compute in float64), strided and transposed operands, batches and solve's broadcasting,
// and every error path with its status code.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <cblas.h>
#include <tbb/parallel_for.h>

#include "array.hpp"
#include "kiln/kiln.hpp"
#include "threads.hpp"
#include "lapack.hpp"

using kiln::Array;
using kiln::DType;
using kiln::Shape;
using kiln::Status;
namespace la = kiln::lapack;
using Ord = la::NormOrd;

namespace {

constexpr double kEps64 = std::numeric_limits<double>::epsilon();
constexpr double kEps32 = std::numeric_limits<float>::epsilon();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Any dtype, any strides; idx has one entry per dimension.
double at(const Array& a, const std::vector<int64_t>& idx) {
  if (idx.size() != a.shape().size()) FAIL("index of " << idx.size() << " entries into " << kiln::shape_str(a.shape()));
  const char* p = a.data();
  for (size_t d = 0; d < idx.size(); ++d) p += idx[d] * a.strides()[d];
  switch (a.dtype()) {
    case DType::Bool:
      return *reinterpret_cast<const uint8_t*>(p);
    case DType::Int32:
      return *reinterpret_cast<const int32_t*>(p);
    case DType::Int64:
      return static_cast<double>(*reinterpret_cast<const int64_t*>(p));
    case DType::Float32:
      return *reinterpret_cast<const float*>(p);
    case DType::Float64:
      return *reinterpret_cast<const double*>(p);
  }
  return 0;
}
double at(const Array& a, int64_t i, int64_t j) { return at(a, {i, j}); }
double at(const Array& a, int64_t i) { return at(a, std::vector<int64_t>{i}); }
double scalar(const Array& a) { return at(a, std::vector<int64_t>{}); }

// Values in C order.
Array make(DType d, const Shape& shape, const std::vector<double>& v) {
  Array a = Array::empty(d, shape);
  if (static_cast<int64_t>(v.size()) != a.size()) FAIL(v.size() << " values for shape " << kiln::shape_str(shape));
  for (size_t i = 0; i < v.size(); ++i) {
    switch (d) {
      case DType::Bool:
        a.data_as<bool>()[i] = v[i] != 0;
        break;
      case DType::Int32:
        a.data_as<int32_t>()[i] = static_cast<int32_t>(v[i]);
        break;
      case DType::Int64:
        a.data_as<int64_t>()[i] = static_cast<int64_t>(v[i]);
        break;
      case DType::Float32:
        a.data_as<float>()[i] = static_cast<float>(v[i]);
        break;
      case DType::Float64:
        a.data_as<double>()[i] = v[i];
        break;
    }
  }
  return a;
}
Array make(const Shape& shape, const std::vector<double>& v) { return make(DType::Float64, shape, v); }

// A fixed 64-bit LCG (Knuth's MMIX constants): uniform values in [-1, 1).
struct Lcg {
  uint64_t s;
  explicit Lcg(uint64_t seed) : s(seed * 2862933555777941757ULL + 3037000493ULL) {}
  double next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(s >> 11) * 0x1p-52 - 1.0;
  }
};

Array random_array(const Shape& shape, uint64_t seed, DType d = DType::Float64) {
  Lcg g(seed);
  std::vector<double> v(static_cast<size_t>(kiln::shape_size(shape)));
  for (double& x : v) x = g.next();
  return make(d, shape, v);
}

// M M^T + n I: symmetric positive definite, condition number modest.
Array random_spd(int64_t n, uint64_t seed, DType d = DType::Float64) {
  Array m = random_array({n, n}, seed);
  std::vector<double> v(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = i == j ? static_cast<double>(n) : 0.0;
      for (int64_t k = 0; k < n; ++k) s += at(m, i, k) * at(m, j, k);
      v[static_cast<size_t>(i * n + j)] = s;
    }
  return make(d, {n, n}, v);
}

Array hilbert(int64_t n) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) v.push_back(1.0 / static_cast<double>(i + j + 1));
  return make({n, n}, v);
}

Array rotation(double t) { return make({2, 2}, {std::cos(t), -std::sin(t), std::sin(t), std::cos(t)}); }

// Plain 2-D products in double from any dtype and strides; a 1-D b is a column.
Array matmul(const Array& a, const Array& b) {
  bool vec = b.ndim() == 1;
  int64_t m = a.shape()[0], k = a.shape()[1], n = vec ? 1 : b.shape()[1];
  if (b.shape()[0] != k) FAIL("matmul of " << kiln::shape_str(a.shape()) << " and " << kiln::shape_str(b.shape()));
  std::vector<double> v(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t l = 0; l < k; ++l) s += at(a, i, l) * (vec ? at(b, l) : at(b, l, j));
      v[static_cast<size_t>(i * n + j)] = s;
    }
  return make(vec ? Shape{m} : Shape{m, n}, v);
}

// Every element, in C order, as double.
std::vector<double> values(const Array& a) {
  std::vector<double> out;
  std::vector<int64_t> idx(a.shape().size(), 0);
  if (a.size() == 0) return out;
  while (true) {
    out.push_back(at(a, idx));
    int d = a.ndim() - 1;
    for (; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < a.shape()[static_cast<size_t>(d)]) break;
      idx[static_cast<size_t>(d)] = 0;
    }
    if (d < 0) return out;
  }
}

double max_abs_diff(const Array& a, const Array& b) {
  if (a.shape() != b.shape())
    FAIL("comparing " << kiln::shape_str(a.shape()) << " with " << kiln::shape_str(b.shape()));
  auto va = values(a), vb = values(b);
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) m = std::max(m, std::fabs(va[i] - vb[i]));
  return m;
}

double fro(const Array& a) {
  double s = 0;
  for (double v : values(a)) s += v * v;
  return std::sqrt(s);
}

// ||X - I|| for a square X.
double dist_to_identity(const Array& x) {
  int64_t n = x.shape()[0];
  std::vector<double> v(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i * n + i)] = 1.0;
  return max_abs_diff(x, make({n, n}, v));
}

Status status_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const kiln::Error& e) {
    return e.status();
  }
  return Status::Ok;
}
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const kiln::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

Ord num(double p) { return Ord{Ord::Kind::Number, p}; }
const Ord kFro{Ord::Kind::Fro, 0};
const Ord kNuc{Ord::Kind::Nuc, 0};

}  // namespace

// --- solve --------------------------------------------------------------------------------

TEST_CASE("solve: known system, residuals of random ones, vector and matrix right-hand sides", "[lapack]") {
  Array a = make({3, 3}, {2, 1, 1, 1, 3, 2, 1, 0, 0});
  Array b = make({3}, {4, 5, 6});
  Array x = la::solve(a, b);
  REQUIRE(x.shape() == Shape{3});
  CHECK(x.dtype() == DType::Float64);
  CHECK(x.is_c_contiguous());
  // a @ (6, 15, -23) = (4, 5, 6)
  CHECK_THAT(at(x, 0), Catch::Matchers::WithinAbs(6.0, 1e-12));
  CHECK_THAT(at(x, 1), Catch::Matchers::WithinAbs(15.0, 1e-12));
  CHECK_THAT(at(x, 2), Catch::Matchers::WithinAbs(-23.0, 1e-12));

  for (int64_t n : {1, 5, 17}) {
    Array r = random_array({n, n}, 10 + n);
    Array rb = random_array({n, 3}, 20 + n);
    Array rx = la::solve(r, rb);
    REQUIRE(rx.shape() == Shape{n, 3});
    std::vector<double> ax = values(matmul(r, rx)), want = values(rb), diff;
    for (size_t i = 0; i < ax.size(); ++i) diff.push_back(ax[i] - want[i]);
    CHECK(fro(make({n, 3}, diff)) <= 10 * static_cast<double>(n) * kEps64 * fro(r) * fro(rx) + 1e-300);
  }
}

TEST_CASE("solve: float32 stays float32 with float32 accuracy; ints and bools compute in float64", "[lapack]") {
  Array a64 = random_spd(6, 3);
  Array b64 = random_array({6}, 4);
  Array a32 = make(DType::Float32, {6, 6}, values(a64));
  Array b32 = make(DType::Float32, {6}, values(b64));
  Array x32 = la::solve(a32, b32);
  Array x64 = la::solve(a64, b64);
  CHECK(x32.dtype() == DType::Float32);
  double err = max_abs_diff(make({6}, values(x32)), x64);
  CHECK(err < 100 * kEps32 * fro(x64));
  CHECK(err > 0);  // really computed in single precision

  CHECK(la::solve(a32, b64).dtype() == DType::Float64);  // NumPy's common type
  Array ai = make(DType::Int32, {2, 2}, {2, 0, 0, 4});
  Array bi = make(DType::Int64, {2}, {3, 2});
  Array xi = la::solve(ai, bi);
  CHECK(xi.dtype() == DType::Float64);
  CHECK(at(xi, 0) == 1.5);
  CHECK(at(xi, 1) == 0.5);
  Array ab = make(DType::Bool, {2, 2}, {1, 0, 1, 1});
  Array xb = la::solve(ab, make(DType::Bool, {2}, {1, 1}));
  CHECK(xb.dtype() == DType::Float64);
  CHECK(at(xb, 0) == 1.0);
  CHECK(at(xb, 1) == 0.0);
}

TEST_CASE("solve: strided, transposed and reversed operands equal their contiguous copies", "[lapack]") {
  Array big = random_array({8, 8}, 7);
  Array sl = big.slice(0, 0, 8, 2).slice(1, 1, 8, 2);  // (4, 4), step 2 both ways
  Array bb = random_array({8, 3}, 8).slice(0, 0, 8, 2);
  Array x = la::solve(sl, bb);
  CHECK(max_abs_diff(x, la::solve(sl.copy(), bb.copy())) == 0);
  Array t = big.transpose();
  CHECK(max_abs_diff(la::solve(t, random_array({8}, 9)), la::solve(t.copy(), random_array({8}, 9))) == 0);
  Array rev = big.slice(0, 7, -9, -1);
  CHECK(max_abs_diff(la::inv(rev), la::inv(rev.copy())) == 0);
  // A broadcast (stride 0) right-hand side.
  Array col = make({8, 1}, {1, 2, 3, 4, 5, 6, 7, 8}).broadcast_to({8, 3});
  CHECK(max_abs_diff(la::solve(big, col), la::solve(big, col.copy())) == 0);
}

TEST_CASE("solve: batches equal per-item results; batch dimensions broadcast as NumPy 1.24", "[lapack]") {
  Array a = random_array({3, 4, 4}, 11);
  Array b = random_array({3, 4, 2}, 12);
  Array x = la::solve(a, b);
  REQUIRE(x.shape() == Shape{3, 4, 2});
  for (int64_t i = 0; i < 3; ++i) CHECK(max_abs_diff(x.index(0, i), la::solve(a.index(0, i), b.index(0, i))) == 0);

  // b.ndim == a.ndim - 1: a stack of vectors.
  Array bv = random_array({3, 4}, 13);
  Array xv = la::solve(a, bv);
  REQUIRE(xv.shape() == Shape{3, 4});
  for (int64_t i = 0; i < 3; ++i) CHECK(max_abs_diff(xv.index(0, i), la::solve(a.index(0, i), bv.index(0, i))) == 0);

  // A lone vector against a stack.
  Array b1 = random_array({4}, 14);
  Array x1 = la::solve(a, b1);
  REQUIRE(x1.shape() == Shape{3, 4});
  for (int64_t i = 0; i < 3; ++i) CHECK(max_abs_diff(x1.index(0, i), la::solve(a.index(0, i), b1)) == 0);

  // (2, 1, 4, 4) with (1, 3, 4, 2): batch (2, 3).
  Array a2 = random_array({2, 1, 4, 4}, 15);
  Array b2 = random_array({1, 3, 4, 2}, 16);
  Array x2 = la::solve(a2, b2);
  REQUIRE(x2.shape() == Shape{2, 3, 4, 2});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      CHECK(max_abs_diff(x2.index(0, i).index(0, j),
                         la::solve(a2.index(0, i).index(0, 0), b2.index(0, 0).index(0, j))) == 0);

  // One matrix, a stack of right-hand-side matrices.
  Array b3 = random_array({5, 4, 2}, 17);
  Array x3 = la::solve(a.index(0, 1), b3);
  REQUIRE(x3.shape() == Shape{5, 4, 2});
  CHECK(max_abs_diff(x3.index(0, 4), la::solve(a.index(0, 1), b3.index(0, 4))) == 0);

  // Empty batch and empty right-hand side.
  CHECK(la::solve(random_array({0, 4, 4}, 1), random_array({0, 4}, 2)).shape() == Shape{0, 4});
  CHECK(la::solve(a.index(0, 0), Array::zeros(DType::Float64, {4, 0})).shape() == Shape{4, 0});
}

TEST_CASE("solve: errors", "[lapack]") {
  Array sq = random_array({3, 3}, 1);
  CHECK(status_of([&] { la::solve(random_array({3, 4}, 1), random_array({3}, 2)); }) == Status::ShapeMismatch);
  CHECK(contains(message_of([&] {
                   la::solve(random_array({3, 4}, 1), random_array({3}, 2));
                 }),
                 "solve: a must be square in its last two dimensions, got (3, 4)"));
  CHECK(status_of([&] { la::solve(sq, random_array({4}, 2)); }) == Status::ShapeMismatch);
  CHECK(contains(message_of([&] { la::solve(sq, random_array({4}, 2)); }),
                 "solve: a of shape (3, 3) and b of shape (4,) do not match"));
  CHECK(status_of([&] { la::solve(sq, random_array({4, 2}, 2)); }) == Status::ShapeMismatch);
  CHECK(status_of([&] { la::solve(random_array({3}, 1), random_array({3}, 2)); }) == Status::ShapeMismatch);
  CHECK(status_of([&] { la::solve(Array::scalar(1.0), random_array({1}, 2)); }) == Status::ShapeMismatch);
  CHECK(status_of([&] { la::solve(sq, Array::scalar(1.0)); }) == Status::ShapeMismatch);
  CHECK(status_of([&] {
          la::solve(random_array({2, 3, 3}, 1), random_array({4, 3, 1}, 2));
        }) == Status::ShapeMismatch);  // (2) and (4) do not broadcast
  CHECK(status_of([&] { la::solve(sq, Array()); }) == Status::BadArgument);
  // NaNs are data, not an error (LAPACKE's NaN check would reject them): NaNs come out.
  Array xn = la::solve(make({2, 2}, {NAN, 1, 1, 1}), make({2}, {1, 2}));
  CHECK((std::isnan(at(xn, 0)) && std::isnan(at(xn, 1))));
  CHECK(std::isnan(scalar(la::det(make({2, 2}, {NAN, 1, 1, 1})))));

  Array sing = make({3, 3}, {1, 2, 3, 2, 4, 6, 1, 1, 1});
  CHECK(status_of([&] { la::solve(sing, random_array({3}, 2)); }) == Status::LinAlgError);
  std::string msg = message_of([&] { la::solve(sing, random_array({3}, 2)); });
  CHECK(contains(msg, "solve: matrix is singular (LAPACK dgesv info"));
  CHECK(!contains(msg, "batch item"));
  // The third of three items singular (the float32 routine's name).
  Array batch = make(DType::Float32, {3, 2, 2}, {1, 0, 0, 1, 2, 1, 1, 2, 1, 2, 2, 4});
  msg = message_of([&] { la::solve(batch, make(DType::Float32, {2}, {1, 1})); });
  CHECK(contains(msg, "solve: matrix is singular (LAPACK sgesv info 2) in batch item 2"));
  CHECK(contains(msg, "(3, 2, 2)"));
}

// --- inv, det -------------------------------------------------------------------------------

TEST_CASE("inv: Hilbert(3)'s integer inverse, inv(A) @ A == I, batches, dtypes, empty", "[lapack]") {
  Array hi = la::inv(hilbert(3));
  std::vector<double> want = {9, -36, 30, -36, 192, -180, 30, -180, 180};
  CHECK(max_abs_diff(hi, make({3, 3}, want)) < 1e-10);
  for (int64_t n : {2, 6, 20}) {
    Array a = random_array({n, n}, 30 + n);
    CHECK(dist_to_identity(matmul(la::inv(a), a)) < 1e3 * static_cast<double>(n) * kEps64 * fro(a) * fro(la::inv(a)));
  }
  Array rot = rotation(0.3);
  CHECK(max_abs_diff(la::inv(rot), rot.transpose()) < 1e-15);

  Array a = random_array({3, 4, 4}, 40);
  Array ai = la::inv(a);
  REQUIRE(ai.shape() == Shape{3, 4, 4});
  for (int64_t i = 0; i < 3; ++i) CHECK(max_abs_diff(ai.index(0, i), la::inv(a.index(0, i))) == 0);
  // Transposed batch (axes reversed: item i is a.index(2, i)^T).
  Array at_ = a.transpose({0, 2, 1});
  CHECK(max_abs_diff(la::inv(at_), la::inv(at_.copy())) == 0);

  Array a32 = make(DType::Float32, {4, 4}, values(random_spd(4, 41)));
  Array i32 = la::inv(a32);
  CHECK(i32.dtype() == DType::Float32);
  CHECK(dist_to_identity(matmul(i32, a32)) < 50 * kEps32 * 4);
  CHECK(la::inv(make(DType::Int64, {2, 2}, {2, 0, 0, 4})).dtype() == DType::Float64);

  CHECK(la::inv(Array::empty(DType::Float64, {0, 0})).shape() == Shape{0, 0});
  CHECK(status_of([&] { la::inv(make({2, 2}, {1, 2, 2, 4})); }) == Status::LinAlgError);
  CHECK(status_of([&] { la::inv(random_array({2, 3}, 1)); }) == Status::ShapeMismatch);
  CHECK(status_of([&] { la::inv(random_array({4}, 1)); }) == Status::ShapeMismatch);
}

TEST_CASE("det: rotation 1, Hilbert(3) 1/2160, singular 0, permutation signs, batches, range", "[lapack]") {
  CHECK_THAT(scalar(la::det(rotation(0.7))), Catch::Matchers::WithinAbs(1.0, 1e-15));
  CHECK_THAT(scalar(la::det(hilbert(3))), Catch::Matchers::WithinRel(1.0 / 2160, 1e-12));
  CHECK(scalar(la::det(make({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9}))) == Approx(0.0).margin(1e-12));
  CHECK(scalar(la::det(make({2, 2}, {1, 2, 2, 4}))) == 0.0);  // an exact zero pivot
  CHECK(scalar(la::det(make({2, 2}, {0, 1, 1, 0}))) == -1.0);
  CHECK(scalar(la::det(make({3, 3}, {0, 1, 0, 0, 0, 1, 1, 0, 0}))) == 1.0);  // a 3-cycle: even
  CHECK(scalar(la::det(make({3, 3}, {0, 0, 2, 0, 3, 0, 4, 0, 0}))) == Approx(-24.0));
  CHECK(scalar(la::det(make({2, 2}, {3, 8, 4, 6}))) == Approx(-14.0));
  // Partial products overflow; the determinant does not.
  CHECK(scalar(la::det(make({3, 3}, {1e200, 0, 0, 0, 1e200, 0, 0, 0, 1e-200}))) == Approx(1e200));

  Array a = random_array({3, 4, 4}, 50);
  Array d = la::det(a);
  REQUIRE(d.shape() == Shape{3});
  for (int64_t i = 0; i < 3; ++i) CHECK(at(d, i) == scalar(la::det(a.index(0, i))));
  CHECK(la::det(Array::empty(DType::Float64, {0, 0})).shape() == Shape{});
  CHECK(scalar(la::det(Array::empty(DType::Float64, {0, 0}))) == 1.0);
  CHECK(la::det(Array::empty(DType::Float64, {2, 0, 0})).shape() == Shape{2});
  Array d32 = la::det(make(DType::Float32, {2, 2}, {3, 8, 4, 6}));
  CHECK(d32.dtype() == DType::Float32);
  CHECK(scalar(d32) == Approx(-14.0).epsilon(1e-6));
  CHECK(la::det(make(DType::Int32, {2, 2}, {3, 8, 4, 6})).dtype() == DType::Float64);
  Array big = random_array({6, 6}, 51);
  CHECK(scalar(la::det(big.transpose())) == Approx(scalar(la::det(big))).epsilon(1e-12));
  CHECK(status_of([&] { la::det(random_array({2, 3}, 1)); }) == Status::ShapeMismatch);
  CHECK(status_of([&] { la::det(Array::scalar(2.0)); }) == Status::ShapeMismatch);
}

// --- cholesky ------------------------------------------------------------------------------

TEST_CASE("cholesky: L L^T == A, L lower-triangular, only the lower triangle read", "[lapack]") {
  Array a = random_spd(7, 60);
  Array l = la::cholesky(a);
  REQUIRE(l.shape() == Shape{7, 7});
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t j = i + 1; j < 7; ++j) CHECK(at(l, i, j) == 0.0);
  CHECK(max_abs_diff(matmul(l, l.transpose()), a) < 50 * kEps64 * fro(a));
  // Garbage above the diagonal changes nothing.
  std::vector<double> v = values(a);
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t j = i + 1; j < 7; ++j) v[static_cast<size_t>(i * 7 + j)] = 1e6;
  CHECK(max_abs_diff(la::cholesky(make({7, 7}, v)), l) == 0);
  CHECK(max_abs_diff(la::cholesky(make({2, 2}, {4, 2, 2, 5})), make({2, 2}, {2, 0, 1, 2})) < 1e-15);

  Array l32 = la::cholesky(make(DType::Float32, {7, 7}, values(a)));
  CHECK(l32.dtype() == DType::Float32);
  CHECK(max_abs_diff(make({7, 7}, values(l32)), l) < 20 * kEps32 * fro(l));

  Array st = Array::empty(DType::Float64, {3, 4, 4});
  for (int64_t i = 0; i < 3; ++i) {
    std::vector<double> vi = values(random_spd(4, 61 + static_cast<uint64_t>(i)));
    std::copy(vi.begin(), vi.end(), st.data_as<double>() + i * 16);
  }
  Array ls = la::cholesky(st);
  for (int64_t i = 0; i < 3; ++i) CHECK(max_abs_diff(ls.index(0, i), la::cholesky(st.index(0, i))) == 0);

  CHECK(status_of([&] { la::cholesky(make({2, 2}, {1, 2, 2, 1})); }) == Status::LinAlgError);
  std::string msg = message_of([&] { la::cholesky(make({2, 2}, {1, 2, 2, 1})); });
  CHECK(contains(msg, "Matrix is not positive definite"));
  CHECK(contains(msg, "dpotrf info 2"));
  CHECK(status_of([&] { la::cholesky(random_array({3, 2}, 1)); }) == Status::ShapeMismatch);
}

// --- qr ----------------------------------------------------------------------------------

namespace {
void check_qr(const Array& a, const std::string& mode, double eps) {
  int64_t m = a.shape()[0], n = a.shape()[1], k = std::min(m, n);
  auto res = la::qr(a, mode);
  REQUIRE(res.size() == 2);
  const Array& q = res[0];
  const Array& r = res[1];
  int64_t qc = mode == "complete" ? m : k;
  REQUIRE(q.shape() == Shape{m, qc});
  REQUIRE(r.shape() == Shape{qc, n});
  for (int64_t i = 0; i < qc; ++i)
    for (int64_t j = 0; j < std::min(i, n); ++j) CHECK(at(r, i, j) == 0.0);
  CHECK(dist_to_identity(matmul(q.transpose(), q)) < 20 * eps * static_cast<double>(m));
  CHECK(max_abs_diff(matmul(q, r), a) < 20 * eps * static_cast<double>(m) * fro(a));
}
}  // namespace

TEST_CASE("qr: Q R == A with Q orthonormal and R upper-triangular, every mode", "[lapack]") {
  for (const Shape& s : {Shape{5, 3}, Shape{3, 5}, Shape{4, 4}, Shape{1, 1}}) {
    Array a = random_array(s, 70 + static_cast<uint64_t>(s[0] * 10 + s[1]));
    check_qr(a, "reduced", kEps64);
    check_qr(a, "complete", kEps64);
    Array r = la::qr(a, "r").at(0);
    CHECK(max_abs_diff(r, la::qr(a).at(1)) == 0);
  }
  Array a32 = random_array({6, 3}, 71, DType::Float32);
  auto qr32 = la::qr(a32, "complete");
  CHECK(qr32[0].dtype() == DType::Float32);
  check_qr(a32, "complete", kEps32);
  // Strided input.
  Array big = random_array({10, 6}, 72);
  Array sl = big.slice(0, 0, 10, 2);
  CHECK(max_abs_diff(la::qr(sl)[1], la::qr(sl.copy())[1]) == 0);
  // Batched.
  Array st = random_array({3, 5, 4}, 73);
  auto qs = la::qr(st, "complete");
  REQUIRE(qs[0].shape() == Shape{3, 5, 5});
  REQUIRE(qs[1].shape() == Shape{3, 5, 4});
  for (int64_t i = 0; i < 3; ++i) CHECK(max_abs_diff(qs[0].index(0, i), la::qr(st.index(0, i), "complete")[0]) == 0);
  // Empty: the complete Q of a (3, 0) matrix is the identity.
  auto qe = la::qr(Array::empty(DType::Float64, {3, 0}), "complete");
  CHECK(dist_to_identity(qe[0]) == 0);
  CHECK(qe[1].shape() == Shape{3, 0});
  CHECK(la::qr(Array::empty(DType::Float64, {3, 0}))[0].shape() == Shape{3, 0});

  CHECK(status_of([&] { la::qr(random_array({2, 2}, 1), "raw"); }) == Status::BadArgument);
  CHECK(contains(message_of([&] { la::qr(random_array({2, 2}, 1), "full"); }), "'full'"));
  CHECK(status_of([&] { la::qr(random_array({2}, 1)); }) == Status::ShapeMismatch);
}

// --- eigh, eigvalsh ---------------------------------------------------------------------

TEST_CASE("eigh: ascending eigenvalues, A V == V diag(w), V orthonormal; uplo; eigvalsh", "[lapack]") {
  auto e2 = la::eigh(make({2, 2}, {2, 1, 1, 2}));
  CHECK_THAT(at(e2[0], 0), Catch::Matchers::WithinAbs(1.0, 1e-15));
  CHECK_THAT(at(e2[0], 1), Catch::Matchers::WithinAbs(3.0, 1e-15));
  CHECK_THAT(std::fabs(at(e2[1], 0, 1)), Catch::Matchers::WithinAbs(std::sqrt(0.5), 1e-15));

  Array a = random_spd(8, 80);
  // Make it indefinite too: subtract 8 I.
  std::vector<double> v = values(a);
  for (int i = 0; i < 8; ++i) v[static_cast<size_t>(i * 9)] -= 8;
  a = make({8, 8}, v);
  auto e = la::eigh(a);
  const Array& w = e[0];
  const Array& vv = e[1];
  REQUIRE(w.shape() == Shape{8});
  REQUIRE(vv.shape() == Shape{8, 8});
  for (int64_t i = 1; i < 8; ++i) CHECK(at(w, i - 1) <= at(w, i));
  CHECK(dist_to_identity(matmul(vv.transpose(), vv)) < 100 * kEps64);
  Array av = matmul(a, vv);
  double err = 0;
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < 8; ++j) err = std::max(err, std::fabs(at(av, i, j) - at(vv, i, j) * at(w, j)));
  CHECK(err < 100 * kEps64 * fro(a));
  CHECK(max_abs_diff(la::eigvalsh(a), w) < 100 * kEps64 * fro(a));

  // Only the named triangle is read.
  std::vector<double> lower = values(a), upper = values(a);
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < 8; ++j) {
      if (j > i) lower[static_cast<size_t>(i * 8 + j)] = 99;
      if (j < i) upper[static_cast<size_t>(i * 8 + j)] = -99;
    }
  CHECK(max_abs_diff(la::eigvalsh(make({8, 8}, lower), 'L'), w) < 100 * kEps64 * fro(a));
  CHECK(max_abs_diff(la::eigvalsh(make({8, 8}, upper), 'U'), w) < 100 * kEps64 * fro(a));
  CHECK(max_abs_diff(la::eigh(make({8, 8}, upper), 'u')[0], w) < 100 * kEps64 * fro(a));

  Array a32 = make(DType::Float32, {8, 8}, values(a));
  Array w32 = la::eigvalsh(a32);
  CHECK(w32.dtype() == DType::Float32);
  CHECK(max_abs_diff(make({8}, values(w32)), w) < 50 * kEps32 * fro(a));

  Array st = Array::empty(DType::Float64, {3, 4, 4});
  for (int64_t i = 0; i < 3; ++i) {
    std::vector<double> vi = values(random_spd(4, 81 + static_cast<uint64_t>(i)));
    std::copy(vi.begin(), vi.end(), st.data_as<double>() + i * 16);
  }
  auto es = la::eigh(st);
  REQUIRE(es[0].shape() == Shape{3, 4});
  REQUIRE(es[1].shape() == Shape{3, 4, 4});
  for (int64_t i = 0; i < 3; ++i) {
    auto ei = la::eigh(st.index(0, i));
    CHECK(max_abs_diff(es[0].index(0, i), ei[0]) == 0);
    CHECK(max_abs_diff(es[1].index(0, i), ei[1]) == 0);
  }
  CHECK(status_of([&] { la::eigh(a, 'X'); }) == Status::BadArgument);
  CHECK(status_of([&] { la::eigvalsh(random_array({2, 3}, 1)); }) == Status::ShapeMismatch);
}

// --- svd ---------------------------------------------------------------------------------

TEST_CASE("svd: U S Vh == A, S descending, orthonormal factors, every option", "[lapack]") {
  for (const Shape& s : {Shape{5, 3}, Shape{3, 5}, Shape{4, 4}}) {
    int64_t m = s[0], n = s[1], k = std::min(m, n);
    Array a = random_array(s, 90 + static_cast<uint64_t>(m * 10 + n));
    for (bool full : {true, false}) {
      auto r = la::svd(a, full);
      REQUIRE(r.size() == 3);
      const Array &u = r[0], &sv = r[1], &vh = r[2];
      REQUIRE(u.shape() == Shape{m, full ? m : k});
      REQUIRE(sv.shape() == Shape{k});
      REQUIRE(vh.shape() == Shape{full ? n : k, n});
      for (int64_t i = 1; i < k; ++i) CHECK(at(sv, i - 1) >= at(sv, i));
      CHECK(dist_to_identity(matmul(u.transpose(), u)) < 100 * kEps64);
      CHECK(dist_to_identity(matmul(vh, vh.transpose())) < 100 * kEps64);
      // U[:, :k] diag(S) Vh[:k, :]
      std::vector<double> us;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < k; ++j) us.push_back(at(u, i, j) * at(sv, j));
      CHECK(max_abs_diff(matmul(make({m, k}, us), vh.slice(0, 0, k)), a) < 100 * kEps64 * fro(a));
    }
    auto only = la::svd(a, true, false);
    REQUIRE(only.size() == 1);
    CHECK(max_abs_diff(only[0], la::svd(a)[1]) < 10 * kEps64 * fro(a));
  }
  Array d = make({3, 3}, {0, 0, 2, 0, -5, 0, 1, 0, 0});
  Array sd = la::svd(d, false, false)[0];
  CHECK(max_abs_diff(sd, make({3}, {5, 2, 1})) < 1e-14);
  Array a32 = random_array({4, 6}, 91, DType::Float32);
  Array s32 = la::svd(a32, false, false)[0];
  CHECK(s32.dtype() == DType::Float32);
  CHECK(max_abs_diff(make({4}, values(s32)), la::svd(make({4, 6}, values(a32)), false, false)[0]) < 20 * kEps32 * 6);
  // Batched and transposed.
  Array st = random_array({3, 4, 2}, 92);
  auto rs = la::svd(st, false);
  for (int64_t i = 0; i < 3; ++i) CHECK(max_abs_diff(rs[1].index(0, i), la::svd(st.index(0, i), false)[1]) == 0);
  Array tt = st.transpose({0, 2, 1});
  CHECK(max_abs_diff(la::svd(tt)[2], la::svd(tt.copy())[2]) == 0);
  // Empty: full factors are identities.
  auto re = la::svd(Array::empty(DType::Float64, {2, 0}));
  CHECK(dist_to_identity(re[0]) == 0);
  CHECK(re[1].shape() == Shape{0});
  CHECK(re[2].shape() == Shape{0, 0});
  CHECK(status_of([&] { la::svd(random_array({3}, 1)); }) == Status::ShapeMismatch);
}

// --- lstsq ---------------------------------------------------------------------------------

TEST_CASE("lstsq: overdetermined against the normal equations, residuals, rank, s", "[lapack]") {
  Array a = random_array({8, 3}, 100);
  Array b = random_array({8, 2}, 101);
  auto r = la::lstsq(a, b);
  REQUIRE(r.size() == 4);
  const Array &x = r[0], &res = r[1], &rank = r[2], &s = r[3];
  REQUIRE(x.shape() == Shape{3, 2});
  Array ata = matmul(a.transpose(), a);
  Array atb = matmul(a.transpose(), b);
  CHECK(max_abs_diff(x, la::solve(ata, atb)) < 1e3 * kEps64);
  REQUIRE(res.shape() == Shape{2});
  Array ax = matmul(a, x);
  for (int64_t j = 0; j < 2; ++j) {
    double ss = 0;
    for (int64_t i = 0; i < 8; ++i) ss += (at(ax, i, j) - at(b, i, j)) * (at(ax, i, j) - at(b, i, j));
    CHECK_THAT(at(res, j), Catch::Matchers::WithinRel(ss, 1e-10));
  }
  CHECK(rank.dtype() == DType::Int64);
  CHECK(rank.shape() == Shape{});
  CHECK(*rank.data_as<int64_t>() == 3);
  CHECK(max_abs_diff(s, la::svd(a, false, false)[0]) < 100 * kEps64);

  // A vector b: x (N,), residuals (1,).
  Array bv = b.index(1, 0);
  auto rv = la::lstsq(a, bv);
  REQUIRE(rv[0].shape() == Shape{3});
  REQUIRE(rv[1].shape() == Shape{1});
  CHECK(max_abs_diff(rv[0], x.index(1, 0)) < 1e3 * kEps64);
  CHECK_THAT(at(rv[1], 0), Catch::Matchers::WithinRel(at(res, 0), 1e-10));

  // Strided a and b give the contiguous results.
  Array at_ = random_array({3, 8}, 102).transpose();
  CHECK(max_abs_diff(la::lstsq(at_, bv)[0], la::lstsq(at_.copy(), bv.copy())[0]) == 0);

  // float32, and an exactly consistent system.
  Array a32 = make(DType::Float32, {4, 2}, {1, 0, 0, 1, 1, 1, 2, 1});
  Array b32 = make(DType::Float32, {4}, {1, 2, 3, 4});  // x = (1, 2)
  auto r32 = la::lstsq(a32, b32);
  CHECK(r32[0].dtype() == DType::Float32);
  CHECK(r32[1].dtype() == DType::Float32);
  CHECK(r32[3].dtype() == DType::Float32);
  CHECK_THAT(at(r32[0], 0), Catch::Matchers::WithinAbs(1.0, 20 * kEps32));
  CHECK_THAT(at(r32[0], 1), Catch::Matchers::WithinAbs(2.0, 20 * kEps32));
  CHECK(at(r32[1], 0) < 1e-10);
  CHECK(la::lstsq(make(DType::Int32, {2, 1}, {1, 1}), make(DType::Int32, {2}, {1, 3}))[0].dtype() == DType::Float64);
}

TEST_CASE("lstsq: rank-deficient and underdetermined systems report no residuals", "[lapack]") {
  // Third column = first + second: rank 2.
  Array a = make({5, 3}, {1, 2, 3, 0, 1, 1, 4, -1, 3, 2, 2, 4, -3, 1, -2});
  Array b = random_array({5}, 110);
  auto r = la::lstsq(a, b);
  CHECK(*r[2].data_as<int64_t>() == 2);
  CHECK(r[1].shape() == Shape{0});
  // The minimum-norm solution is orthogonal to the null space (1, 1, -1).
  CHECK(std::fabs(at(r[0], 0) + at(r[0], 1) - at(r[0], 2)) < 1e-12);
  CHECK(at(r[3], 2) < 1e-12 * at(r[3], 0));
  // An explicit rcond above the second singular value's ratio lowers the rank.
  double ratio = at(r[3], 1) / at(r[3], 0);
  CHECK(*la::lstsq(a, b, ratio * 1.01)[2].data_as<int64_t>() == 1);

  // Underdetermined (M < N): exact fit, minimum norm, no residuals.
  Array u = random_array({2, 4}, 111);
  Array ub = random_array({2}, 112);
  auto ru = la::lstsq(u, ub);
  CHECK(ru[0].shape() == Shape{4});
  CHECK(ru[1].shape() == Shape{0});
  CHECK(*ru[2].data_as<int64_t>() == 2);
  Array ux = matmul(u, ru[0]);
  CHECK(std::fabs(at(ux, 0) - at(ub, 0)) < 1e-13);
  CHECK(std::fabs(at(ux, 1) - at(ub, 1)) < 1e-13);
  // Square full rank: M <= N, so no residuals either.
  CHECK(la::lstsq(random_array({3, 3}, 113), random_array({3}, 114))[1].shape() == Shape{0});

  // Empty operands.
  auto re = la::lstsq(Array::empty(DType::Float64, {3, 0}), make({3}, {1, 2, 2}));
  CHECK(re[0].shape() == Shape{0});
  REQUIRE(re[1].shape() == Shape{1});
  CHECK(at(re[1], 0) == 9.0);
  CHECK(la::lstsq(random_array({4, 2}, 1), Array::empty(DType::Float64, {4, 0}))[0].shape() == Shape{2, 0});

  CHECK(status_of([&] { la::lstsq(random_array({3, 2}, 1), random_array({4}, 2)); }) == Status::ShapeMismatch);
  CHECK(status_of([&] { la::lstsq(random_array({2, 3, 2}, 1), random_array({3}, 2)); }) == Status::ShapeMismatch);
  CHECK(status_of([&] { la::lstsq(random_array({3, 2}, 1), random_array({3, 1, 1}, 2)); }) == Status::ShapeMismatch);
  CHECK(status_of([&] { la::lstsq(random_array({3}, 1), random_array({3}, 2)); }) == Status::ShapeMismatch);
}

// --- norm --------------------------------------------------------------------------------------

TEST_CASE("norm: vector norms for every ord", "[lapack]") {
  Array v = make({4}, {3, -4, 1, 0});
  CHECK_THAT(scalar(la::norm(v)), Catch::Matchers::WithinRel(std::sqrt(26.0), 1e-15));
  CHECK_THAT(scalar(la::norm(v, num(2))), Catch::Matchers::WithinRel(std::sqrt(26.0), 1e-15));
  CHECK(scalar(la::norm(v, num(1))) == 8.0);
  CHECK(scalar(la::norm(v, num(kInf))) == 4.0);
  CHECK(scalar(la::norm(v, num(-kInf))) == 0.0);
  CHECK(scalar(la::norm(v, num(0))) == 3.0);
  CHECK_THAT(scalar(la::norm(v, num(3))), Catch::Matchers::WithinRel(std::cbrt(92.0), 1e-14));
  CHECK(scalar(la::norm(v, num(-1))) == 0.0);  // 1 / (1/3 + 1/4 + 1 + 1/0)
  Array w = make({4}, {3, -4, 1, 2});
  CHECK_THAT(scalar(la::norm(w, num(-1))), Catch::Matchers::WithinRel(1.0 / (1.0 / 3 + 0.25 + 1 + 0.5), 1e-14));
  CHECK_THAT(scalar(la::norm(w, num(0.5))),
             Catch::Matchers::WithinRel(std::pow(std::sqrt(3.0) + 2 + 1 + std::sqrt(2.0), 2.0), 1e-14));
  CHECK(la::norm(v).shape() == Shape{});
  CHECK(la::norm(v, {}, {}, true).shape() == Shape{1});
  CHECK(la::norm(v, num(1), {0}, true).shape() == Shape{1});
  CHECK(status_of([&] { la::norm(v, kFro); }) == Status::BadArgument);
  CHECK(status_of([&] { la::norm(v, kNuc, {0}); }) == Status::BadArgument);
  CHECK(status_of([&] { la::norm(Array::empty(DType::Float64, {0}), num(kInf)); }) == Status::BadArgument);
  CHECK(scalar(la::norm(Array::empty(DType::Float64, {0}))) == 0.0);
  // NaN propagates through max.
  CHECK(std::isnan(scalar(la::norm(make({3}, {1, NAN, 2}), num(kInf)))));
}

TEST_CASE("norm: matrix norms for every ord", "[lapack]") {
  Array m = make({2, 2}, {1, -2, 3, 4});
  double smax = std::sqrt(15 + std::sqrt(125.0)), smin = std::sqrt(15 - std::sqrt(125.0));
  CHECK_THAT(scalar(la::norm(m)), Catch::Matchers::WithinRel(std::sqrt(30.0), 1e-15));
  CHECK_THAT(scalar(la::norm(m, kFro)), Catch::Matchers::WithinRel(std::sqrt(30.0), 1e-15));
  CHECK(scalar(la::norm(m, num(1))) == 6.0);
  CHECK(scalar(la::norm(m, num(-1))) == 4.0);
  CHECK(scalar(la::norm(m, num(kInf))) == 7.0);
  CHECK(scalar(la::norm(m, num(-kInf))) == 3.0);
  CHECK_THAT(scalar(la::norm(m, num(2))), Catch::Matchers::WithinRel(smax, 1e-14));
  CHECK_THAT(scalar(la::norm(m, num(-2))), Catch::Matchers::WithinRel(smin, 1e-14));
  CHECK_THAT(scalar(la::norm(m, kNuc)), Catch::Matchers::WithinRel(smax + smin, 1e-14));
  CHECK(la::norm(m, num(1), {}, true).shape() == Shape{1, 1});
  // Non-square, transposed: the 1-norm of A^T is the inf-norm of A.
  Array r = random_array({3, 5}, 120);
  CHECK_THAT(scalar(la::norm(r.transpose(), num(1))),
             Catch::Matchers::WithinRel(scalar(la::norm(r, num(kInf))), 1e-15));
  CHECK_THAT(scalar(la::norm(r, num(2))), Catch::Matchers::WithinRel(at(la::svd(r, false, false)[0], 0), 1e-14));
  CHECK(status_of([&] { la::norm(m, num(3)); }) == Status::BadArgument);
  CHECK(status_of([&] { la::norm(m, num(0)); }) == Status::BadArgument);
  CHECK(status_of([&] { la::norm(Array::empty(DType::Float64, {3, 0}), num(1)); }) == Status::BadArgument);
  CHECK(scalar(la::norm(Array::empty(DType::Float64, {3, 0}), kNuc)) == 0.0);
}

TEST_CASE("norm: axes, keepdims, dtypes and strides", "[lapack]") {
  Array x = random_array({2, 3, 4}, 130);
  // One axis: vector norms of each lane.
  Array n1 = la::norm(x, num(1), {1});
  REQUIRE(n1.shape() == Shape{2, 4});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t k = 0; k < 4; ++k) {
      double s = 0;
      for (int64_t j = 0; j < 3; ++j) s += std::fabs(at(x, {i, j, k}));
      CHECK_THAT(at(n1, i, k), Catch::Matchers::WithinRel(s, 1e-14));
    }
  CHECK(max_abs_diff(la::norm(x, {}, {-2}), la::norm(x, num(2), {1})) == 0);
  CHECK(la::norm(x, num(3), {2}, true).shape() == Shape{2, 3, 1});
  // Two axes: matrix norms of each (row, col) slice; (2, 0) transposes them.
  Array fro02 = la::norm(x, kFro, {0, 2});
  REQUIRE(fro02.shape() == Shape{3});
  for (int64_t j = 0; j < 3; ++j) {
    double s = 0;
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t k = 0; k < 4; ++k) s += at(x, {i, j, k}) * at(x, {i, j, k});
    CHECK_THAT(at(fro02, j), Catch::Matchers::WithinRel(std::sqrt(s), 1e-14));
  }
  Array inf20 = la::norm(x, num(kInf), {2, 0}, true);
  REQUIRE(inf20.shape() == Shape{1, 3, 1});
  Array one02 = la::norm(x, num(1), {0, 2});
  for (int64_t j = 0; j < 3; ++j) CHECK(at(inf20, {0, j, 0}) == at(one02, j));
  Array two12 = la::norm(x, num(-2), {1, 2});
  REQUIRE(two12.shape() == Shape{2});
  for (int64_t i = 0; i < 2; ++i)
    CHECK_THAT(at(two12, i), Catch::Matchers::WithinRel(at(la::svd(x.index(0, i), false, false)[0], 2), 1e-13));
  // axis None: the flattened 2-norm for ord None at any ndim.
  CHECK_THAT(scalar(la::norm(x)), Catch::Matchers::WithinRel(fro(x), 1e-14));
  CHECK(la::norm(x, {}, {}, true).shape() == Shape{1, 1, 1});
  CHECK(scalar(la::norm(Array::scalar(-3.0))) == 3.0);

  // dtypes.
  Array xi = make(DType::Int32, {2, 2}, {1, -2, 3, 4});
  CHECK(la::norm(xi).dtype() == DType::Float64);
  CHECK(la::norm(make(DType::Bool, {3}, {1, 0, 1}), num(1)).dtype() == DType::Float64);
  CHECK(scalar(la::norm(xi, num(kInf))) == 7.0);
  Array x32 = random_array({5, 5}, 131, DType::Float32);
  Array n32 = la::norm(x32, num(2));
  CHECK(n32.dtype() == DType::Float32);
  CHECK_THAT(scalar(n32), Catch::Matchers::WithinRel(scalar(la::norm(make({5, 5}, values(x32)), num(2))), 10 * kEps32));
  CHECK(la::norm(x32, {}, {1}).dtype() == DType::Float32);
  // Strides: a step-2 slice and a transpose equal their copies.
  Array big = random_array({6, 8}, 132);
  Array sl = big.slice(1, 0, 8, 2);
  for (Ord o : {Ord{}, kFro, kNuc, num(1), num(-1), num(2), num(-2), num(kInf), num(-kInf)})
    CHECK(scalar(la::norm(sl, o)) == scalar(la::norm(sl.copy(), o)));
  CHECK(max_abs_diff(la::norm(big.transpose(), num(3), {0}), la::norm(big.transpose().copy(), num(3), {0})) == 0);

  // Bad axes and ords.
  CHECK(status_of([&] { la::norm(x, {}, {3}); }) == Status::BadArgument);
  CHECK(status_of([&] { la::norm(x, {}, {-4}); }) == Status::BadArgument);
  CHECK(status_of([&] { la::norm(x, {}, {1, -2}); }) == Status::BadArgument);  // duplicate
  CHECK(status_of([&] { la::norm(x, {}, {0, 1, 2}); }) == Status::BadArgument);
  CHECK(status_of([&] { la::norm(x, num(1)); }) == Status::BadArgument);  // 3-D with an ord and no axes
  CHECK(status_of([&] { la::norm(x, kFro); }) == Status::BadArgument);
  CHECK(status_of([&] { la::norm(Array::scalar(1.0), num(1)); }) == Status::BadArgument);
}

TEST_CASE("batched work equals per-item results however the batch is cut", "[lapack]") {
  // A batch big enough to run in parallel (above threads.cpp's threshold).
  Array a = random_array({64, 24, 24}, 140);
  Array d = la::det(a);
  Array ai = la::inv(a);
  for (int64_t i : {0, 31, 63}) {
    CHECK(at(d, i) == scalar(la::det(a.index(0, i))));
    CHECK(max_abs_diff(ai.index(0, i), la::inv(a.index(0, i))) == 0);
  }
  // Of the singular items the first is reported, whichever chunk finishes first.
  Array s = a.copy();
  for (int64_t item : {50, 20, 60})
    for (int64_t j = 0; j < 24; ++j) s.data_as<double>()[item * 576 + 3 * 24 + j] = 0;  // row 3
  CHECK(contains(message_of([&] { la::inv(s); }), "in batch item 20;"));
  CHECK(at(la::det(s), 50) == 0.0);
}

TEST_CASE("LAPACK calls get the whole budget after the calling thread has run parallel work, not inside a task",
          "[lapack][threads]") {
  kiln::set_num_threads(2);
  // Parallel work on this thread first: TBB keeps the thread in its implicit arena after.
  kiln::Array big = kiln::eval(kiln::Expr(kiln::Array::zeros(kiln::DType::Float64, {4000000})) + 1.0);
  REQUIRE(big.size() == 4000000);
  auto threads_given = [] {
    int seen = 0;
    kiln::blas::whole_budget_call(1e9, [&] { seen = openblas_get_num_threads(); });
    return seen;
  };
  CHECK(threads_given() == 2);
  int inside = 0;
  tbb::parallel_for(0, 1, [&](int) { inside = threads_given(); });  // a user's task: no nesting
  CHECK(inside == 1);
  kiln::set_num_threads(0);
}
