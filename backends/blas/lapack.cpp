// numpy.linalg over LAPACKE; lapack.hpp is the contract.
//
// Every operand is copied into a dense column-major buffer of the compute type (LAPACK's
// own layout, so LAPACKE never transposes), which also takes care of strides and of
// dtype conversion. The LAPACKE_*_work entry points are used throughout: the high-level
// ones would allocate per call and, by default, refuse any input holding a NaN, where
// NumPy returns NaNs.
#include "lapack.hpp"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "threads.hpp"

namespace kiln::lapack {

namespace {

// --- operands ---------------------------------------------------------------------------

// bool and integers compute in float64, as NumPy's _commonType.
DType compute_dtype(DType a) { return a == DType::Float32 ? DType::Float32 : DType::Float64; }
DType compute_dtype(DType a, DType b) {
  return a == DType::Float32 && b == DType::Float32 ? DType::Float32 : DType::Float64;
}

// memcpy: user-wrapped memory need not be aligned to its dtype.
template <class T>
T load(const char* p, DType d) {
  switch (d) {
    case DType::Bool: {
      uint8_t v;
      std::memcpy(&v, p, 1);
      return v ? T(1) : T(0);
    }
    case DType::Int32: {
      int32_t v;
      std::memcpy(&v, p, sizeof v);
      return static_cast<T>(v);
    }
    case DType::Int64: {
      int64_t v;
      std::memcpy(&v, p, sizeof v);
      return static_cast<T>(v);
    }
    case DType::Float32: {
      float v;
      std::memcpy(&v, p, sizeof v);
      return static_cast<T>(v);
    }
    case DType::Float64: {
      double v;
      std::memcpy(&v, p, sizeof v);
      return static_cast<T>(v);
    }
  }
  return T(0);
}

void check_valid(const char* fn, const Array& a, const char* name) {
  if (!a.valid()) throw Error(Status::BadArgument, std::string(fn) + ": " + name + " is an empty Array handle");
}

// LAPACK's integers are 32-bit.
lapack_int lapack_dim(const char* fn, int64_t n, const Shape& shape) {
  if (n > std::numeric_limits<lapack_int>::max())
    throw Error(Status::BadArgument, std::string(fn) + ": dimension " + std::to_string(n) + " of shape " +
                                         shape_str(shape) + " is too large for LAPACK's 32-bit integers");
  return static_cast<lapack_int>(n);
}

void require_matrix(const char* fn, const Array& a, const char* name) {
  check_valid(fn, a, name);
  if (a.ndim() < 2)
    throw Error(Status::ShapeMismatch,
                std::string(fn) + ": " + name +
                    " must have at least 2 dimensions (a matrix or a stack of them), got shape " +
                    shape_str(a.shape()));
}

void require_square(const char* fn, const Array& a, const char* name) {
  require_matrix(fn, a, name);
  int nd = a.ndim();
  if (a.shape()[nd - 2] != a.shape()[nd - 1])
    throw Error(Status::ShapeMismatch, std::string(fn) + ": " + name +
                                           " must be square in its last two dimensions, got " + shape_str(a.shape()));
}

Shape leading(const Shape& s, int core) { return Shape(s.begin(), s.end() - core); }
Shape concat(Shape a, const Shape& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Byte offset of the item-th element (C order) of `shape`, with these byte strides.
int64_t item_offset(int64_t item, const int64_t* shape, const int64_t* strides, int nd) {
  int64_t off = 0;
  for (int d = nd - 1; d >= 0; --d) {
    off += (item % shape[d]) * strides[d];
    item /= shape[d];
  }
  return off;
}

// Start of batch item `item` of a, whose last `core` dimensions are the matrix.
const char* item_ptr(const Array& a, int core, int64_t item) {
  return a.data() + item_offset(item, a.shape().data(), a.strides().data(), a.ndim() - core);
}

// Strided (rows x cols) source -> dense column-major destination with leading dimension ld.
template <class T>
void pack(const char* p, DType d, int64_t rows, int64_t cols, int64_t rs, int64_t cs, T* dst, int64_t ld) {
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t i = 0; i < rows; ++i) dst[i + j * ld] = load<T>(p + i * rs + j * cs, d);
}

// The matrix of batch item `item` of a ((..., M, N)).
template <class T>
void pack_item(const Array& a, int64_t item, T* dst, int64_t ld) {
  int nd = a.ndim();
  pack(item_ptr(a, 2, item), a.dtype(), a.shape()[nd - 2], a.shape()[nd - 1], a.strides()[nd - 2], a.strides()[nd - 1],
       dst, ld);
}

// Dense column-major (rows x cols, leading dimension ld) -> C-contiguous out.
template <class T>
void unpack(const T* src, int64_t ld, int64_t rows, int64_t cols, T* out) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out[i * cols + j] = src[i + j * ld];
}

template <class T>
void set_identity(T* out, int64_t n) {
  for (int64_t i = 0; i < n * n; ++i) out[i] = T(0);
  for (int64_t i = 0; i < n; ++i) out[i * n + i] = T(1);
}

// --- running items ----------------------------------------------------------------------

// One problem may use the whole thread budget inside OpenBLAS; a batch runs its items in
// parallel with one BLAS thread each.
void run_items(int64_t items, double flops_per_item, const std::function<void(int64_t, int64_t)>& body) {
  if (items == 1)
    blas::whole_budget_call(flops_per_item, [&] { body(0, 1); });
  else if (items > 1)
    blas::parallel_items(items, flops_per_item * static_cast<double>(items), body);
}

// The lowest failing batch item and its info, so the error names the same item however
// the batch was cut (each chunk stops at its first failure).
struct Failure {
  std::mutex mu;
  int64_t item = -1;
  lapack_int info = 0;
  void record(int64_t i, lapack_int inf) {
    std::lock_guard<std::mutex> g(mu);
    if (item < 0 || i < item) {
      item = i;
      info = inf;
    }
  }
};

template <class T>
std::string routine(const char* base) {
  return (std::is_same_v<T, float> ? "s" : "d") + std::string(base);
}

// Throws for a recorded failure: LinAlgError naming `what`, or Internal for info < 0
// (an argument LAPACK rejected: a bug here, never the caller's input).
template <class T>
void throw_if_failed(const Failure& f, const char* fn, const char* what, const char* base, int64_t items,
                     const Array& a) {
  if (f.item < 0) return;
  std::string where = items > 1 ? " in batch item " + std::to_string(f.item) : "";
  std::string shape = "; a has shape " + shape_str(a.shape());
  if (f.info < 0)
    throw Error(Status::Internal, std::string(fn) + ": LAPACK " + routine<T>(base) + " rejected its argument " +
                                      std::to_string(-f.info) + where + shape);
  throw Error(Status::LinAlgError, std::string(fn) + ": " + what + " (LAPACK " + routine<T>(base) + " info " +
                                       std::to_string(f.info) + ")" + where + shape);
}

// A workspace size LAPACK reported as a floating-point number (a float can round it
// down, hence the margin).
template <class T>
lapack_int lwork_of(T q) {
  double w = std::ceil(static_cast<double>(q) * (1.0 + 1e-6)) + 1.0;
  return static_cast<lapack_int>(std::min(w, static_cast<double>(std::numeric_limits<lapack_int>::max())));
}

// --- LAPACKE, overloaded on the element type ---------------------------------------------

constexpr int kCol = LAPACK_COL_MAJOR;

lapack_int gesv(lapack_int n, lapack_int nrhs, float* a, lapack_int* ipiv, float* b, lapack_int ldb) {
  return LAPACKE_sgesv_work(kCol, n, nrhs, a, std::max(1, n), ipiv, b, ldb);
}
lapack_int gesv(lapack_int n, lapack_int nrhs, double* a, lapack_int* ipiv, double* b, lapack_int ldb) {
  return LAPACKE_dgesv_work(kCol, n, nrhs, a, std::max(1, n), ipiv, b, ldb);
}
lapack_int getrf(lapack_int n, float* a, lapack_int* ipiv) {
  return LAPACKE_sgetrf_work(kCol, n, n, a, std::max(1, n), ipiv);
}
lapack_int getrf(lapack_int n, double* a, lapack_int* ipiv) {
  return LAPACKE_dgetrf_work(kCol, n, n, a, std::max(1, n), ipiv);
}
lapack_int potrf(lapack_int n, float* a) { return LAPACKE_spotrf_work(kCol, 'L', n, a, std::max(1, n)); }
lapack_int potrf(lapack_int n, double* a) { return LAPACKE_dpotrf_work(kCol, 'L', n, a, std::max(1, n)); }
lapack_int geqrf(lapack_int m, lapack_int n, float* a, lapack_int lda, float* tau, float* work, lapack_int lwork) {
  return LAPACKE_sgeqrf_work(kCol, m, n, a, lda, tau, work, lwork);
}
lapack_int geqrf(lapack_int m, lapack_int n, double* a, lapack_int lda, double* tau, double* work, lapack_int lwork) {
  return LAPACKE_dgeqrf_work(kCol, m, n, a, lda, tau, work, lwork);
}
lapack_int orgqr(lapack_int m, lapack_int n, lapack_int k, float* a, lapack_int lda, const float* tau, float* work,
                 lapack_int lwork) {
  return LAPACKE_sorgqr_work(kCol, m, n, k, a, lda, tau, work, lwork);
}
lapack_int orgqr(lapack_int m, lapack_int n, lapack_int k, double* a, lapack_int lda, const double* tau, double* work,
                 lapack_int lwork) {
  return LAPACKE_dorgqr_work(kCol, m, n, k, a, lda, tau, work, lwork);
}
lapack_int syevd(char jobz, char uplo, lapack_int n, float* a, float* w, float* work, lapack_int lwork,
                 lapack_int* iwork, lapack_int liwork) {
  return LAPACKE_ssyevd_work(kCol, jobz, uplo, n, a, std::max(1, n), w, work, lwork, iwork, liwork);
}
lapack_int syevd(char jobz, char uplo, lapack_int n, double* a, double* w, double* work, lapack_int lwork,
                 lapack_int* iwork, lapack_int liwork) {
  return LAPACKE_dsyevd_work(kCol, jobz, uplo, n, a, std::max(1, n), w, work, lwork, iwork, liwork);
}
lapack_int gesdd(char jobz, lapack_int m, lapack_int n, float* a, float* s, float* u, lapack_int ldu, float* vt,
                 lapack_int ldvt, float* work, lapack_int lwork, lapack_int* iwork) {
  return LAPACKE_sgesdd_work(kCol, jobz, m, n, a, std::max(1, m), s, u, ldu, vt, ldvt, work, lwork, iwork);
}
lapack_int gesdd(char jobz, lapack_int m, lapack_int n, double* a, double* s, double* u, lapack_int ldu, double* vt,
                 lapack_int ldvt, double* work, lapack_int lwork, lapack_int* iwork) {
  return LAPACKE_dgesdd_work(kCol, jobz, m, n, a, std::max(1, m), s, u, ldu, vt, ldvt, work, lwork, iwork);
}
lapack_int gelsd(lapack_int m, lapack_int n, lapack_int nrhs, float* a, float* b, lapack_int ldb, float* s, float rcond,
                 lapack_int* rank, float* work, lapack_int lwork, lapack_int* iwork) {
  return LAPACKE_sgelsd_work(kCol, m, n, nrhs, a, std::max(1, m), b, ldb, s, rcond, rank, work, lwork, iwork);
}
lapack_int gelsd(lapack_int m, lapack_int n, lapack_int nrhs, double* a, double* b, lapack_int ldb, double* s,
                 double rcond, lapack_int* rank, double* work, lapack_int lwork, lapack_int* iwork) {
  return LAPACKE_dgelsd_work(kCol, m, n, nrhs, a, std::max(1, m), b, ldb, s, rcond, rank, work, lwork, iwork);
}

// Singular values only (gesdd, jobz 'N') of a dense column-major m x n matrix, which it
// destroys. Reuses work/iwork across calls of the same size.
template <class T>
struct SingularValues {
  lapack_int m, n;
  std::vector<T> work;
  std::vector<lapack_int> iwork;
  SingularValues(lapack_int m_, lapack_int n_) : m(m_), n(n_), iwork(8 * static_cast<size_t>(std::min(m_, n_))) {
    T q = 0, dummy = 0;
    lapack_int info = gesdd('N', m, n, &dummy, &dummy, &dummy, 1, &dummy, 1, &q, -1, iwork.data());
    work.resize(info == 0 ? static_cast<size_t>(lwork_of(q)) : 1);
  }
  lapack_int run(T* a, T* s) {
    T dummy = 0;
    return gesdd('N', m, n, a, s, &dummy, 1, &dummy, 1, work.data(), static_cast<lapack_int>(work.size()),
                 iwork.data());
  }
};

// --- the functions, for one compute type --------------------------------------------------

// a and b already broadcast to the batch; b is (..., M, K) or, with k_is_vec, (..., M).
template <class T>
void solve_impl(const Array& a, const Array& b, bool vec, int64_t items, int64_t m, int64_t k, Array& out,
                const Array& a_orig) {
  lapack_int n = static_cast<lapack_int>(m), nrhs = static_cast<lapack_int>(k);
  Failure fail;
  T* o = out.data_as<T>();
  double flops = 2.0 / 3.0 * double(m) * double(m) * double(m) + 2.0 * double(m) * double(m) * double(k);
  run_items(items, flops, [&](int64_t first, int64_t last) {
    std::vector<T> A(static_cast<size_t>(m * m)), B(static_cast<size_t>(m * k));
    std::vector<lapack_int> ipiv(static_cast<size_t>(m));
    int bnd = b.ndim();
    for (int64_t it = first; it < last; ++it) {
      pack_item(a, it, A.data(), m);
      if (vec)
        pack(item_ptr(b, 1, it), b.dtype(), m, 1, b.strides()[bnd - 1], 0, B.data(), m);
      else
        pack_item(b, it, B.data(), m);
      lapack_int info = gesv(n, nrhs, A.data(), ipiv.data(), B.data(), std::max(1, n));
      if (info != 0) return fail.record(it, info);
      unpack(B.data(), m, m, k, o + it * m * k);
    }
  });
  throw_if_failed<T>(fail, "solve", "matrix is singular", "gesv", items, a_orig);
}

template <class T>
void inv_impl(const Array& a, int64_t items, int64_t m, Array& out) {
  lapack_int n = static_cast<lapack_int>(m);
  Failure fail;
  T* o = out.data_as<T>();
  // NumPy's inv is gesv against the identity too (so it fails exactly when solve would).
  run_items(items, 8.0 / 3.0 * double(m) * double(m) * double(m), [&](int64_t first, int64_t last) {
    std::vector<T> A(static_cast<size_t>(m * m)), B(static_cast<size_t>(m * m));
    std::vector<lapack_int> ipiv(static_cast<size_t>(m));
    for (int64_t it = first; it < last; ++it) {
      pack_item(a, it, A.data(), m);
      set_identity(B.data(), m);
      lapack_int info = gesv(n, n, A.data(), ipiv.data(), B.data(), std::max(1, n));
      if (info != 0) return fail.record(it, info);
      unpack(B.data(), m, m, m, o + it * m * m);
    }
  });
  throw_if_failed<T>(fail, "inv", "matrix is singular", "gesv", items, a);
}

template <class T>
void det_impl(const Array& a, int64_t items, int64_t m, Array& out) {
  lapack_int n = static_cast<lapack_int>(m);
  Failure fail;
  T* o = out.data_as<T>();
  run_items(items, 2.0 / 3.0 * double(m) * double(m) * double(m), [&](int64_t first, int64_t last) {
    std::vector<T> A(static_cast<size_t>(m * m));
    std::vector<lapack_int> ipiv(static_cast<size_t>(m));
    for (int64_t it = first; it < last; ++it) {
      pack_item(a, it, A.data(), m);
      lapack_int info = getrf(n, A.data(), ipiv.data());
      if (info < 0) return fail.record(it, info);
      if (info > 0) {  // an exact zero pivot: singular, det 0 (as NumPy)
        o[it] = T(0);
        continue;
      }
      // The product kept as mantissa and exponent: the diagonal's partial products may
      // overflow or underflow where the determinant itself does not.
      double mant = 1.0;
      long exp = 0;
      for (int64_t i = 0; i < m; ++i) {
        mant *= static_cast<double>(A[static_cast<size_t>(i + i * m)]);
        if (ipiv[static_cast<size_t>(i)] != i + 1) mant = -mant;
        int e;
        mant = std::frexp(mant, &e);
        exp += e;
      }
      exp = std::clamp(exp, -100000L, 100000L);  // beyond any double's range; keeps ldexp's int safe
      o[it] = static_cast<T>(std::ldexp(mant, static_cast<int>(exp)));
    }
  });
  throw_if_failed<T>(fail, "det", "LU factorisation failed", "getrf", items, a);
}

template <class T>
void cholesky_impl(const Array& a, int64_t items, int64_t m, Array& out) {
  lapack_int n = static_cast<lapack_int>(m);
  Failure fail;
  T* o = out.data_as<T>();
  run_items(items, double(m) * double(m) * double(m) / 3.0, [&](int64_t first, int64_t last) {
    std::vector<T> A(static_cast<size_t>(m * m));
    for (int64_t it = first; it < last; ++it) {
      pack_item(a, it, A.data(), m);
      lapack_int info = potrf(n, A.data());
      if (info != 0) return fail.record(it, info);
      T* dst = o + it * m * m;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < m; ++j) dst[i * m + j] = j <= i ? A[static_cast<size_t>(i + j * m)] : T(0);
    }
  });
  throw_if_failed<T>(fail, "cholesky", "Matrix is not positive definite", "potrf", items, a);
}

template <class T>
void qr_impl(const Array& a, int64_t items, int64_t m, int64_t n, QrMode mode, Array* q, Array& r) {
  int64_t k = std::min(m, n);
  int64_t qcols = mode == QrMode::Complete ? m : k;  // Q's columns
  int64_t rrows = mode == QrMode::Complete ? m : k;  // R's rows
  int64_t width = std::max(n, qcols);                // the buffer holds A, then Q in place
  lapack_int lm = static_cast<lapack_int>(m), ln = static_cast<lapack_int>(n), lk = static_cast<lapack_int>(k);
  lapack_int lq = static_cast<lapack_int>(qcols), lda = std::max(1, lm);
  Failure fail, fail_q;
  double flops = 4.0 * double(m) * double(n) * double(k);
  run_items(items, flops, [&](int64_t first, int64_t last) {
    std::vector<T> A(static_cast<size_t>(std::max<int64_t>(1, m * width))),
        tau(static_cast<size_t>(std::max<int64_t>(1, k)));
    T q1 = 0, q2 = 0;
    geqrf(lm, ln, A.data(), lda, tau.data(), &q1, -1);
    if (q) orgqr(lm, lq, lk, A.data(), lda, tau.data(), &q2, -1);
    std::vector<T> work(static_cast<size_t>(std::max(lwork_of(q1), lwork_of(q2))));
    lapack_int lwork = static_cast<lapack_int>(work.size());
    for (int64_t it = first; it < last; ++it) {
      pack_item(a, it, A.data(), m);
      lapack_int info = geqrf(lm, ln, A.data(), lda, tau.data(), work.data(), lwork);
      if (info != 0) return fail.record(it, info);
      T* rd = r.data_as<T>() + it * rrows * n;
      for (int64_t i = 0; i < rrows; ++i)
        for (int64_t j = 0; j < n; ++j) rd[i * n + j] = j >= i ? A[static_cast<size_t>(i + j * m)] : T(0);
      if (!q) continue;
      info = orgqr(lm, lq, lk, A.data(), lda, tau.data(), work.data(), lwork);
      if (info != 0) return fail_q.record(it, info);
      unpack(A.data(), m, m, qcols, q->data_as<T>() + it * m * qcols);
    }
  });
  throw_if_failed<T>(fail, "qr", "factorisation failed", "geqrf", items, a);
  throw_if_failed<T>(fail_q, "qr", "forming Q failed", "orgqr", items, a);
}

template <class T>
void eigh_impl(const Array& a, int64_t items, int64_t m, char uplo, Array& w, Array* v, const char* fn) {
  lapack_int n = static_cast<lapack_int>(m);
  char jobz = v ? 'V' : 'N';
  Failure fail;
  run_items(items, (v ? 9.0 : 4.0 / 3.0) * double(m) * double(m) * double(m), [&](int64_t first, int64_t last) {
    std::vector<T> A(static_cast<size_t>(m * m));
    T wq = 0;
    lapack_int iq = 0;
    syevd(jobz, uplo, n, A.data(), w.data_as<T>(), &wq, -1, &iq, -1);
    std::vector<T> work(static_cast<size_t>(lwork_of(wq)));
    std::vector<lapack_int> iwork(static_cast<size_t>(std::max(1, iq)));
    for (int64_t it = first; it < last; ++it) {
      pack_item(a, it, A.data(), m);
      lapack_int info =
          syevd(jobz, uplo, n, A.data(), w.data_as<T>() + it * m, work.data(), static_cast<lapack_int>(work.size()),
                iwork.data(), static_cast<lapack_int>(iwork.size()));
      if (info != 0) return fail.record(it, info);
      if (v) unpack(A.data(), m, m, m, v->data_as<T>() + it * m * m);
    }
  });
  throw_if_failed<T>(fail, fn, "Eigenvalues did not converge", "syevd", items, a);
}

template <class T>
void svd_impl(const Array& a, int64_t items, int64_t m, int64_t n, bool full, Array* u, Array& s, Array* vh) {
  int64_t k = std::min(m, n);
  lapack_int lm = static_cast<lapack_int>(m), ln = static_cast<lapack_int>(n);
  char jobz = !u ? 'N' : full ? 'A' : 'S';
  int64_t ucols = full ? m : k, vrows = full ? n : k;
  lapack_int ldu = std::max(1, lm), ldvt = std::max<lapack_int>(1, static_cast<lapack_int>(vrows));
  Failure fail;
  run_items(items, 10.0 * double(m) * double(n) * double(k), [&](int64_t first, int64_t last) {
    std::vector<T> A(static_cast<size_t>(m * n)), U, VT;
    if (u) {
      U.resize(static_cast<size_t>(m * ucols));
      VT.resize(static_cast<size_t>(vrows * n));
    }
    std::vector<lapack_int> iwork(static_cast<size_t>(8 * k));
    T q = 0, dummy = 0;
    T* up = u ? U.data() : &dummy;
    T* vp = u ? VT.data() : &dummy;
    gesdd(jobz, lm, ln, A.data(), s.data_as<T>(), up, u ? ldu : 1, vp, u ? ldvt : 1, &q, -1, iwork.data());
    std::vector<T> work(static_cast<size_t>(lwork_of(q)));
    for (int64_t it = first; it < last; ++it) {
      pack_item(a, it, A.data(), m);
      lapack_int info = gesdd(jobz, lm, ln, A.data(), s.data_as<T>() + it * k, up, u ? ldu : 1, vp, u ? ldvt : 1,
                              work.data(), static_cast<lapack_int>(work.size()), iwork.data());
      if (info != 0) return fail.record(it, info);
      if (u) {
        unpack(U.data(), m, m, ucols, u->data_as<T>() + it * m * ucols);
        unpack(VT.data(), vrows, vrows, n, vh->data_as<T>() + it * vrows * n);
      }
    }
  });
  throw_if_failed<T>(fail, "svd", "SVD did not converge", "gesdd", items, a);
}

// m, n >= 1; b is (M,) or (M, K); K == 0 runs one zero column (for rank and s).
template <class T>
std::vector<Array> lstsq_impl(const Array& a, const Array& b, double rcond, DType cdt) {
  int64_t m = a.shape()[0], n = a.shape()[1];
  bool vec = b.ndim() == 1;
  int64_t k = vec ? 1 : b.shape()[1];
  int64_t kk = std::max<int64_t>(k, 1);
  int64_t ldb = std::max(m, n);
  int64_t mn = std::min(m, n);
  lapack_int lm = static_cast<lapack_int>(m), ln = static_cast<lapack_int>(n), lk = static_cast<lapack_int>(kk);
  std::vector<T> A(static_cast<size_t>(m * n)), B(static_cast<size_t>(ldb * kk), T(0));
  pack_item(a, 0, A.data(), m);
  if (k > 0) {
    if (vec)
      pack(b.data(), b.dtype(), m, 1, b.strides()[0], 0, B.data(), ldb);
    else
      pack_item(b, 0, B.data(), ldb);
  }
  if (rcond < 0) rcond = static_cast<double>(std::numeric_limits<T>::epsilon()) * static_cast<double>(std::max(m, n));
  Array s = Array::empty(cdt, {mn});
  lapack_int rank = 0, info = 0;
  blas::whole_budget_call(10.0 * double(m) * double(n) * double(mn) + 4.0 * double(m) * double(n) * double(kk), [&] {
    T q = 0;
    lapack_int iq = 0;
    info = gelsd(lm, ln, lk, A.data(), B.data(), static_cast<lapack_int>(ldb), s.data_as<T>(), static_cast<T>(rcond),
                 &rank, &q, -1, &iq);
    if (info != 0) return;
    std::vector<T> work(static_cast<size_t>(lwork_of(q)));
    std::vector<lapack_int> iwork(static_cast<size_t>(std::max(1, iq)));
    info = gelsd(lm, ln, lk, A.data(), B.data(), static_cast<lapack_int>(ldb), s.data_as<T>(), static_cast<T>(rcond),
                 &rank, work.data(), static_cast<lapack_int>(work.size()), iwork.data());
  });
  if (info != 0) {
    Failure f;
    f.record(0, info);
    throw_if_failed<T>(f, "lstsq", "SVD did not converge in Linear Least Squares", "gelsd", 1, a);
  }
  Array x = Array::empty(cdt, vec ? Shape{n} : Shape{n, k});
  unpack(B.data(), ldb, n, k, x.data_as<T>());
  // NumPy reports residuals only for a full-rank overdetermined system.
  Array res;
  if (rank == n && m > n) {
    res = Array::empty(cdt, {vec ? 1 : k});
    for (int64_t j = 0; j < k; ++j) {
      double acc = 0;
      for (int64_t i = n; i < m; ++i) {
        double v = static_cast<double>(B[static_cast<size_t>(i + j * ldb)]);
        acc += v * v;
      }
      res.data_as<T>()[j] = static_cast<T>(acc);
    }
  } else {
    res = Array::empty(cdt, {0});
  }
  return {x, res, Array::scalar<int64_t>(rank), s};
}

template <class F>
auto dispatch(DType cdt, F&& f) {
  if (cdt == DType::Float32) return f(float{});
  return f(double{});
}

}  // namespace

// --- the interface --------------------------------------------------------------------------

Array solve(const Array& a, const Array& b) {
  require_square("solve", a, "a");
  check_valid("solve", b, "b");
  if (b.ndim() == 0) throw Error(Status::ShapeMismatch, "solve: b must have at least 1 dimension, got shape ()");
  int m_axis = a.ndim() - 1;
  int64_t m = a.shape()[m_axis];
  // NumPy 1.24: a stack of vectors when b.ndim == a.ndim - 1 (and a lone vector always).
  bool vec = b.ndim() == 1 || b.ndim() == a.ndim() - 1;
  int bcore = vec ? 1 : 2;
  if (b.shape()[b.ndim() - bcore] != m)
    throw Error(Status::ShapeMismatch, "solve: a of shape " + shape_str(a.shape()) + " and b of shape " +
                                           shape_str(b.shape()) + " do not match");
  Shape batch;
  if (!try_broadcast(leading(a.shape(), 2), leading(b.shape(), bcore), batch))
    throw Error(Status::ShapeMismatch, "solve: the batch dimensions of a of shape " + shape_str(a.shape()) +
                                           " and b of shape " + shape_str(b.shape()) + " do not broadcast");
  int64_t k = vec ? 1 : b.shape().back();
  lapack_dim("solve", m, a.shape());
  lapack_dim("solve", k, b.shape());
  Shape out_shape = concat(batch, vec ? Shape{m} : Shape{m, k});
  Array ab = a.broadcast_to(concat(batch, {m, m}));
  Array bb = b.broadcast_to(out_shape);
  DType cdt = compute_dtype(a.dtype(), b.dtype());
  Array out = Array::empty(cdt, out_shape);
  if (out.size() == 0) return out;
  int64_t items = shape_size(batch);
  dispatch(cdt, [&](auto t) { solve_impl<decltype(t)>(ab, bb, vec, items, m, k, out, a); });
  return out;
}

Array inv(const Array& a) {
  require_square("inv", a, "a");
  int64_t m = lapack_dim("inv", a.shape().back(), a.shape());
  DType cdt = compute_dtype(a.dtype());
  Array out = Array::empty(cdt, a.shape());
  if (out.size() == 0) return out;
  dispatch(cdt, [&](auto t) { inv_impl<decltype(t)>(a, shape_size(leading(a.shape(), 2)), m, out); });
  return out;
}

Array det(const Array& a) {
  require_square("det", a, "a");
  int64_t m = lapack_dim("det", a.shape().back(), a.shape());
  DType cdt = compute_dtype(a.dtype());
  Shape batch = leading(a.shape(), 2);
  Array out = Array::empty(cdt, batch);
  int64_t items = shape_size(batch);
  if (m == 0) {  // the empty product
    dispatch(cdt, [&](auto t) {
      using T = decltype(t);
      for (int64_t i = 0; i < items; ++i) out.data_as<T>()[i] = T(1);
    });
    return out;
  }
  if (items == 0) return out;
  dispatch(cdt, [&](auto t) { det_impl<decltype(t)>(a, items, m, out); });
  return out;
}

Array cholesky(const Array& a) {
  require_square("cholesky", a, "a");
  int64_t m = lapack_dim("cholesky", a.shape().back(), a.shape());
  DType cdt = compute_dtype(a.dtype());
  Array out = Array::empty(cdt, a.shape());
  if (out.size() == 0) return out;
  dispatch(cdt, [&](auto t) { cholesky_impl<decltype(t)>(a, shape_size(leading(a.shape(), 2)), m, out); });
  return out;
}

std::vector<Array> qr(const Array& a, std::string_view mode) { return qr(a, qr_mode(mode)); }

std::vector<Array> qr(const Array& a, QrMode md) {
  require_matrix("qr", a, "a");
  int nd = a.ndim();
  int64_t m = lapack_dim("qr", a.shape()[nd - 2], a.shape()), n = lapack_dim("qr", a.shape()[nd - 1], a.shape());
  int64_t k = std::min(m, n);
  Shape batch = leading(a.shape(), 2);
  int64_t items = shape_size(batch);
  DType cdt = compute_dtype(a.dtype());
  int64_t qcols = md == QrMode::Complete ? m : k, rrows = md == QrMode::Complete ? m : k;
  Array q = md == QrMode::R ? Array() : Array::empty(cdt, concat(batch, {m, qcols}));
  Array r = Array::empty(cdt, concat(batch, {rrows, n}));
  if (items > 0 && k == 0) {
    // Nothing to factor: R is all zeros, and the complete Q the identity (as LAPACK's orgqr).
    dispatch(cdt, [&](auto t) {
      using T = decltype(t);
      std::fill(r.data_as<T>(), r.data_as<T>() + r.size(), T(0));
      if (md == QrMode::Complete)
        for (int64_t i = 0; i < items; ++i) set_identity(q.data_as<T>() + i * m * m, m);
    });
  } else if (items > 0) {
    dispatch(cdt, [&](auto t) { qr_impl<decltype(t)>(a, items, m, n, md, q.valid() ? &q : nullptr, r); });
  }
  if (md == QrMode::R) return {r};
  return {q, r};
}

namespace {
char check_uplo(const char* fn, char uplo) {
  if (uplo == 'L' || uplo == 'l') return 'L';
  if (uplo == 'U' || uplo == 'u') return 'U';
  throw Error(Status::BadArgument, std::string(fn) + ": uplo must be 'L' or 'U', got '" + std::string(1, uplo) + "'");
}

std::vector<Array> eigh_common(const char* fn, const Array& a, char uplo, bool vectors) {
  uplo = check_uplo(fn, uplo);
  require_square(fn, a, "a");
  int64_t m = lapack_dim(fn, a.shape().back(), a.shape());
  Shape batch = leading(a.shape(), 2);
  DType cdt = compute_dtype(a.dtype());
  Array w = Array::empty(cdt, concat(batch, {m}));
  Array v = vectors ? Array::empty(cdt, a.shape()) : Array();
  if (w.size() > 0)
    dispatch(cdt,
             [&](auto t) { eigh_impl<decltype(t)>(a, shape_size(batch), m, uplo, w, vectors ? &v : nullptr, fn); });
  if (vectors) return {w, v};
  return {w};
}
}  // namespace

std::vector<Array> eigh(const Array& a, char uplo) { return eigh_common("eigh", a, uplo, true); }
Array eigvalsh(const Array& a, char uplo) { return eigh_common("eigvalsh", a, uplo, false)[0]; }

std::vector<Array> svd(const Array& a, bool full_matrices, bool compute_uv) {
  require_matrix("svd", a, "a");
  int nd = a.ndim();
  int64_t m = lapack_dim("svd", a.shape()[nd - 2], a.shape()), n = lapack_dim("svd", a.shape()[nd - 1], a.shape());
  int64_t k = std::min(m, n);
  Shape batch = leading(a.shape(), 2);
  int64_t items = shape_size(batch);
  DType cdt = compute_dtype(a.dtype());
  Array s = Array::empty(cdt, concat(batch, {k}));
  Array u, vh;
  if (compute_uv) {
    u = Array::empty(cdt, concat(batch, {m, full_matrices ? m : k}));
    vh = Array::empty(cdt, concat(batch, {full_matrices ? n : k, n}));
  }
  if (items > 0 && k == 0) {
    // An empty matrix: no singular values; the full U and Vh are identities (as NumPy).
    if (compute_uv && full_matrices)
      dispatch(cdt, [&](auto t) {
        using T = decltype(t);
        for (int64_t i = 0; i < items; ++i) {
          set_identity(u.data_as<T>() + i * m * m, m);
          set_identity(vh.data_as<T>() + i * n * n, n);
        }
      });
  } else if (items > 0) {
    dispatch(cdt, [&](auto t) {
      svd_impl<decltype(t)>(a, items, m, n, full_matrices, compute_uv ? &u : nullptr, s, compute_uv ? &vh : nullptr);
    });
  }
  if (!compute_uv) return {s};
  return {u, s, vh};
}

std::vector<Array> lstsq(const Array& a, const Array& b, double rcond) {
  check_valid("lstsq", a, "a");
  check_valid("lstsq", b, "b");
  if (a.ndim() != 2)
    throw Error(Status::ShapeMismatch, "lstsq: a must be a matrix (2 dimensions), got shape " + shape_str(a.shape()));
  if (b.ndim() != 1 && b.ndim() != 2)
    throw Error(Status::ShapeMismatch,
                "lstsq: b must be a vector or a matrix (1 or 2 dimensions), got shape " + shape_str(b.shape()));
  int64_t m = lapack_dim("lstsq", a.shape()[0], a.shape()), n = lapack_dim("lstsq", a.shape()[1], a.shape());
  if (b.shape()[0] != m)
    throw Error(Status::ShapeMismatch, "lstsq: a of shape " + shape_str(a.shape()) + " and b of shape " +
                                           shape_str(b.shape()) + " do not match (incompatible dimensions)");
  bool vec = b.ndim() == 1;
  int64_t k = vec ? 1 : lapack_dim("lstsq", b.shape()[1], b.shape());
  lapack_dim("lstsq", std::max(m, n), a.shape());
  DType cdt = compute_dtype(a.dtype(), b.dtype());
  if (m == 0 || n == 0) {
    // x is zero; with no unknowns (n == 0, rank 0 == n) and m > n, the residual is all of b.
    Array x = Array::zeros(cdt, vec ? Shape{n} : Shape{n, k});
    Array res = Array::empty(cdt, {0});
    if (n == 0 && m > 0) {
      res = Array::empty(cdt, {vec ? 1 : k});
      dispatch(cdt, [&](auto t) {
        using T = decltype(t);
        for (int64_t j = 0; j < k; ++j) {
          double acc = 0;
          for (int64_t i = 0; i < m; ++i) {
            double v = load<double>(b.data() + i * b.strides()[0] + (vec ? 0 : j * b.strides()[1]), b.dtype());
            acc += v * v;
          }
          res.data_as<T>()[j] = static_cast<T>(acc);
        }
      });
    }
    return {x, res, Array::scalar<int64_t>(0), Array::empty(cdt, {0})};
  }
  return dispatch(cdt, [&](auto t) { return lstsq_impl<decltype(t)>(a, b, rcond, cdt); });
}

// --- norm ------------------------------------------------------------------------------------

namespace {

std::string ord_str(const NormOrd& ord) {
  switch (ord.kind) {
    case NormOrd::Kind::None:
      return "None";
    case NormOrd::Kind::Fro:
      return "'fro'";
    case NormOrd::Kind::Nuc:
      return "'nuc'";
    case NormOrd::Kind::Number:
      break;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", ord.p);
  return buf;
}

// Calls f(byte offset) for each element of (shape, strides), in C order.
template <class F>
void for_each_offset(const Shape& shape, const Shape& strides, F&& f) {
  int nd = static_cast<int>(shape.size());
  for (int64_t d : shape)
    if (d == 0) return;
  std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
  int64_t off = 0;
  while (true) {
    f(off);
    int d = nd - 1;
    for (; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < shape[static_cast<size_t>(d)]) {
        off += strides[static_cast<size_t>(d)];
        break;
      }
      off -= (shape[static_cast<size_t>(d)] - 1) * strides[static_cast<size_t>(d)];
      idx[static_cast<size_t>(d)] = 0;
    }
    if (d < 0) return;
  }
}

// NaN-propagating max/min of |values|, as NumPy's maximum/minimum reductions.
struct Extreme {
  bool want_max;
  double v;
  bool nan = false;
  explicit Extreme(bool mx)
      : want_max(mx), v(mx ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity()) {}
  void add(double x) {
    if (std::isnan(x))
      nan = true;
    else if (want_max ? x > v : x < v)
      v = x;
  }
  double get() const { return nan ? std::numeric_limits<double>::quiet_NaN() : v; }
};

// One vector norm over n elements at p, p + s, ...
double vector_norm(const char* p, int64_t n, int64_t s, DType d, const NormOrd& ord) {
  double acc = 0;
  bool two = ord.kind == NormOrd::Kind::None || (ord.kind == NormOrd::Kind::Number && ord.p == 2);
  if (ord.kind == NormOrd::Kind::Number && std::isinf(ord.p)) {
    Extreme e(ord.p > 0);
    for (int64_t i = 0; i < n; ++i) e.add(std::fabs(load<double>(p + i * s, d)));
    return e.get();
  }
  if (ord.kind == NormOrd::Kind::Number && ord.p == 0) {
    for (int64_t i = 0; i < n; ++i) acc += load<double>(p + i * s, d) != 0 ? 1.0 : 0.0;
    return acc;
  }
  if (two) {
    for (int64_t i = 0; i < n; ++i) {
      double v = load<double>(p + i * s, d);
      acc += v * v;
    }
    return std::sqrt(acc);
  }
  if (ord.p == 1) {
    for (int64_t i = 0; i < n; ++i) acc += std::fabs(load<double>(p + i * s, d));
    return acc;
  }
  for (int64_t i = 0; i < n; ++i) acc += std::pow(std::fabs(load<double>(p + i * s, d)), ord.p);
  return std::pow(acc, 1.0 / ord.p);
}

// The shape left when `drop` axes are removed (kept as 1s with keepdims), and the strides
// of the remaining axes.
void outer_geometry(const Array& x, const std::vector<int>& drop, bool keepdims, Shape& outer, Shape& outer_strides,
                    Shape& result_shape) {
  for (int d = 0; d < x.ndim(); ++d) {
    bool dropped = std::find(drop.begin(), drop.end(), d) != drop.end();
    if (!dropped) {
      outer.push_back(x.shape()[static_cast<size_t>(d)]);
      outer_strides.push_back(x.strides()[static_cast<size_t>(d)]);
    }
    if (!dropped || keepdims) result_shape.push_back(dropped ? 1 : x.shape()[static_cast<size_t>(d)]);
  }
}

template <class T>
void store_all(Array& out, const std::vector<double>& v) {
  for (size_t i = 0; i < v.size(); ++i) out.data_as<T>()[i] = static_cast<T>(v[i]);
}

// Matrix norms by singular values: ord 2 (largest), -2 (smallest), 'nuc' (sum).
template <class T>
void svd_norms(const Array& x, const Shape& outer, const Shape& outer_strides, int row, int col, const NormOrd& ord,
               std::vector<double>& result) {
  int64_t rows = x.shape()[static_cast<size_t>(row)], cols = x.shape()[static_cast<size_t>(col)];
  int64_t rs = x.strides()[static_cast<size_t>(row)], cs = x.strides()[static_cast<size_t>(col)];
  lapack_int lm = lapack_dim("norm", rows, x.shape()), ln = lapack_dim("norm", cols, x.shape());
  int64_t k = std::min(rows, cols);
  int64_t items = static_cast<int64_t>(result.size());
  Failure fail;
  run_items(items, 4.0 * double(rows) * double(cols) * double(k), [&](int64_t first, int64_t last) {
    SingularValues<T> sv(lm, ln);
    std::vector<T> A(static_cast<size_t>(rows * cols)), s(static_cast<size_t>(k));
    for (int64_t it = first; it < last; ++it) {
      const char* p = x.data() + item_offset(it, outer.data(), outer_strides.data(), static_cast<int>(outer.size()));
      pack(p, x.dtype(), rows, cols, rs, cs, A.data(), rows);
      lapack_int info = sv.run(A.data(), s.data());
      if (info != 0) return fail.record(it, info);
      double r = 0;
      if (ord.kind == NormOrd::Kind::Nuc)
        for (T v : s) r += static_cast<double>(v);
      else
        r = static_cast<double>(ord.p > 0 ? s.front() : s.back());  // gesdd sorts descending
      result[static_cast<size_t>(it)] = r;
    }
  });
  throw_if_failed<T>(fail, "norm", "SVD did not converge", "gesdd", items, x);
}

[[noreturn]] void empty_extreme(const NormOrd& ord, const Array& x) {
  throw Error(Status::BadArgument, "norm: ord=" + ord_str(ord) + " of an array of shape " + shape_str(x.shape()) +
                                       " takes a maximum or minimum over no elements");
}

}  // namespace

Array norm(const Array& x, NormOrd ord, const std::vector<int>& axes, bool keepdims) {
  check_valid("norm", x, "x");
  DType cdt = compute_dtype(x.dtype());
  int nd = x.ndim();
  using K = NormOrd::Kind;
  std::vector<int> ax;
  if (axes.empty()) {
    bool flat =
        ord.kind == K::None || (ord.kind == K::Fro && nd == 2) || (ord.kind == K::Number && ord.p == 2 && nd == 1);
    if (flat) {  // the 2-norm of every element
      double acc = 0;
      for_each_offset(x.shape(), x.strides(), [&](int64_t off) {
        double v = load<double>(x.data() + off, x.dtype());
        acc += v * v;
      });
      Array out = Array::empty(cdt, keepdims ? Shape(static_cast<size_t>(nd), 1) : Shape{});
      dispatch(cdt, [&](auto t) { store_all<decltype(t)>(out, {std::sqrt(acc)}); });
      return out;
    }
    for (int d = 0; d < nd; ++d) ax.push_back(d);
  } else {
    for (int a : axes) {
      if (a < -nd || a >= nd)
        throw Error(Status::BadArgument, "norm: axis " + std::to_string(a) +
                                             " is out of bounds for an array of shape " + shape_str(x.shape()));
      ax.push_back(a < 0 ? a + nd : a);
    }
  }
  Shape outer, outer_strides, result_shape;
  std::vector<double> result;
  if (ax.size() == 1) {
    if (ord.kind == K::Fro || ord.kind == K::Nuc)
      throw Error(Status::BadArgument, "norm: invalid norm order " + ord_str(ord) + " for vectors");
    outer_geometry(x, ax, keepdims, outer, outer_strides, result_shape);
    int64_t n = x.shape()[static_cast<size_t>(ax[0])], s = x.strides()[static_cast<size_t>(ax[0])];
    result.resize(static_cast<size_t>(shape_size(outer)));
    if (n == 0 && !result.empty() && ord.kind == K::Number && std::isinf(ord.p)) empty_extreme(ord, x);
    size_t i = 0;
    for_each_offset(outer, outer_strides,
                    [&](int64_t off) { result[i++] = vector_norm(x.data() + off, n, s, x.dtype(), ord); });
  } else if (ax.size() == 2) {
    int row = ax[0], col = ax[1];
    if (row == col) throw Error(Status::BadArgument, "norm: duplicate axes given (" + std::to_string(row) + ")");
    bool number = ord.kind == K::Number;
    double p = ord.p;
    bool svd_based = ord.kind == K::Nuc || (number && (p == 2 || p == -2));
    bool sums = number && (p == 1 || p == -1 || std::isinf(p));
    if (!svd_based && !sums && number)
      throw Error(Status::BadArgument, "norm: invalid norm order " + ord_str(ord) + " for matrices");
    outer_geometry(x, ax, keepdims, outer, outer_strides, result_shape);
    result.resize(static_cast<size_t>(shape_size(outer)));
    int64_t rows = x.shape()[static_cast<size_t>(row)], cols = x.shape()[static_cast<size_t>(col)];
    int64_t rs = x.strides()[static_cast<size_t>(row)], cs = x.strides()[static_cast<size_t>(col)];
    if (!result.empty()) {
      if (svd_based && std::min(rows, cols) == 0) {
        if (ord.kind != K::Nuc) empty_extreme(ord, x);
        std::fill(result.begin(), result.end(), 0.0);  // a sum of no singular values
      } else if (svd_based) {
        dispatch(cdt, [&](auto t) { svd_norms<decltype(t)>(x, outer, outer_strides, row, col, ord, result); });
      } else if (sums) {
        // 1 / -1: the max / min column sum; inf / -inf: the max / min row sum.
        bool by_col = std::fabs(p) == 1;
        int64_t lines = by_col ? cols : rows, len = by_col ? rows : cols;
        int64_t line_stride = by_col ? cs : rs, elem_stride = by_col ? rs : cs;
        if (lines == 0) empty_extreme(ord, x);
        NormOrd one{K::Number, 1.0};
        size_t i = 0;
        for_each_offset(outer, outer_strides, [&](int64_t off) {
          Extreme e(p > 0);
          for (int64_t l = 0; l < lines; ++l)
            e.add(vector_norm(x.data() + off + l * line_stride, len, elem_stride, x.dtype(), one));
          result[i++] = e.get();
        });
      } else {  // None, 'fro'
        size_t i = 0;
        for_each_offset(outer, outer_strides, [&](int64_t off) {
          double acc = 0;
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c) {
              double v = load<double>(x.data() + off + r * rs + c * cs, x.dtype());
              acc += v * v;
            }
          result[i++] = std::sqrt(acc);
        });
      }
    }
  } else {
    throw Error(Status::BadArgument, "norm: improper number of dimensions to norm: " + std::to_string(ax.size()) +
                                         " axes of an array of shape " + shape_str(x.shape()) +
                                         " (give one axis for vector norms or two for matrix norms)");
  }
  Array out = Array::empty(cdt, result_shape);
  dispatch(cdt, [&](auto t) { store_all<decltype(t)>(out, result); });
  return out;
}

}  // namespace kiln::lapack
