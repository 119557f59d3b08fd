#include "gemm.hpp"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <numeric>
#include <type_traits>

#include "error.hpp"
#include "linalg.hpp"
#include "runtime.hpp"
#include "threads.hpp"

namespace kiln::blas {

namespace {

// A matrix operand as BLAS sees it: element (i, j) at base + i * row + j * col (elements).
struct Matrix {
  Array view;  // holds the memory (a copy's, when the layout needed one)
  const char* base = nullptr;
  int64_t row = 0, col = 0;  // element strides
  Shape batch_strides;       // bytes, per batch dimension of the result (0: broadcast)
  // BLAS form: NoTrans with leading dimension `ld` (rows contiguous) or Trans (columns).
  bool trans = false;
  int64_t ld = 0;
};

// Views a (..., R, C) array's last two dimensions as BLAS can take them, if it can.
bool blas_layout(const Array& x, int64_t rows, int64_t cols, Matrix& m) {
  const int nd = x.ndim();
  const int64_t item = static_cast<int64_t>(x.itemsize());
  int64_t rs = x.strides()[nd - 2], cs = x.strides()[nd - 1];
  if (rs % item || cs % item) return false;
  rs /= item, cs /= item;
  // Strides of length-1 dimensions are arbitrary (NumPy leaves them so): choose the ones
  // that make the layout valid.
  if (cols == 1) cs = 1;
  if (rows == 1) rs = std::max<int64_t>(cols, 1);
  if (cs == 1 && rs >= std::max<int64_t>(cols, 1)) {
    m.trans = false;
    m.ld = rs;
  } else if (rs == 1 && cs >= std::max<int64_t>(rows, 1)) {
    m.trans = true;
    m.ld = cs;
  } else {
    return false;
  }
  m.row = m.trans ? 1 : m.ld;
  m.col = m.trans ? m.ld : 1;
  return m.ld <= INT_MAX;
}

// The operand's last two dimensions as a matrix of the result's batch shape; a copy
// when its layout is not one BLAS takes (or, for integer kernels, never needed).
Matrix operand(const Array& x, const Shape& batch, bool for_blas) {
  Shape full = batch;
  full.push_back(x.shape()[x.ndim() - 2]);
  full.push_back(x.shape()[x.ndim() - 1]);
  Array v = x.broadcast_to(full);
  Matrix m;
  int64_t rows = full[full.size() - 2], cols = full.back();
  if (for_blas && !blas_layout(v, rows, cols, m)) {
    v = x.copy().broadcast_to(full);
    KILN_ASSERT(blas_layout(v, rows, cols, m));
  }
  if (!for_blas) {
    m.row = v.strides()[v.ndim() - 2];  // integer kernels take byte strides
    m.col = v.strides()[v.ndim() - 1];
  }
  m.base = v.data();
  m.batch_strides.assign(v.strides().begin(), v.strides().end() - 2);
  m.view = std::move(v);
  return m;
}

const char* at_batch(const Matrix& m, const Shape& batch, int64_t index) {
  const char* p = m.base;
  for (size_t d = batch.size(); d-- > 0;) {
    p += (index % batch[d]) * m.batch_strides[d];
    index /= batch[d];
  }
  return p;
}

// An item at p (memcpy: wrapped memory need not be aligned). A bool is any nonzero byte, as
// NumPy reads them: a view of uint8 as bool may hold others than 0 and 1.
template <class T> T item(const char* p) {
  if constexpr (std::is_same_v<T, bool>) {
    return *reinterpret_cast<const unsigned char*>(p) != 0;
  } else {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  }
}

// Exact integer (wrapping, as NumPy's) and bool (or of ands) products over rows
// [r0, r1) and columns [c0, c1); strides in bytes; C rows are contiguous.
template <class T>
void small_kernel(const char* a, int64_t ar, int64_t ac, const char* b, int64_t br, int64_t bc, T* c, int64_t ldc,
                  int64_t r0, int64_t r1, int64_t c0, int64_t c1, int64_t k) {
  // Unsigned arithmetic wraps where signed overflow would be undefined.
  using U = typename std::conditional_t<std::is_same_v<T, bool>, std::type_identity<bool>, std::make_unsigned<T>>::type;
  for (int64_t i = r0; i < r1; ++i) {
    U* row = reinterpret_cast<U*>(c + i * ldc);
    for (int64_t j = c0; j < c1; ++j) row[j] = U{};
    for (int64_t p = 0; p < k; ++p) {
      const T aip = item<T>(a + i * ar + p * ac);
      if (!aip) continue;
      const char* brow = b + p * br;
      for (int64_t j = c0; j < c1; ++j) {
        const T bpj = item<T>(brow + j * bc);
        if constexpr (std::is_same_v<T, bool>) row[j] = row[j] || bpj;
        else row[j] = static_cast<U>(row[j] + static_cast<U>(aip) * static_cast<U>(bpj));
      }
    }
  }
}

}  // namespace

TileGrid tile_grid(int64_t batch, int64_t m, int64_t n, int64_t k, int threads) {
  TileGrid g;
  // Below ~4 MFLOP an item is one tile; with many items per thread, so is each.
  double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (threads <= 1 || batch >= 4 * threads || flops < 4e6) return g;
  // Enough tiles per item that every thread gets as many: 3 items on 2 threads are 6
  // tiles, not 2 items on one thread and 1 on the other.
  int64_t want = threads / std::gcd(batch, static_cast<int64_t>(threads));
  // Of the ways to cut into `want` tiles (tiles at least 64 wide), the one whose tiles
  // pack the least per flop: packing is (m_t + n_t) K, work 2 m_t n_t K.
  double best = 0;
  for (int64_t r = 1; r <= want; ++r) {
    if (want % r) continue;
    int64_t c = want / r;
    if ((r > 1 && m / r < 64) || (c > 1 && n / c < 64)) continue;
    double mt = static_cast<double>(m) / r, nt = static_cast<double>(n) / c;
    double cost = (mt + nt) / (mt * nt);
    // Ties go to more rows: a tile of whole rows is one contiguous block of the result
    // (SGEMM 2000^3 on 2 threads: 2 column halves 0.95x a direct cblas call, 2 row halves
    // 0.99-1.00x).
    if (best == 0 || cost <= best) best = cost, g.rows = r, g.cols = c;
  }
  return g;
}

void matmul(const Array& a, const Array& b, const Array& out, const std::function<void(const Tile&)>& after) {
  Shape shape = matmul_shape(a.shape(), b.shape());
  KILN_ASSERT(out.shape() == shape && out.is_c_contiguous() && a.dtype() == out.dtype() && b.dtype() == out.dtype());
  // 1-D operands as a row / a column; the result as (..., M, N).
  Array a2 = a.ndim() == 1 ? a.reshape({1, a.shape()[0]}) : a;
  Array b2 = b.ndim() == 1 ? b.reshape({b.shape()[0], 1}) : b;
  const int64_t m = a2.shape()[a2.ndim() - 2], k = a2.shape().back(), n = b2.shape().back();
  Shape batch = shape;
  batch.resize(shape.size() - (a.ndim() == 1 ? 0 : 1) - (b.ndim() == 1 ? 0 : 1));
  int64_t items = shape_size(batch);
  if (items == 0 || m == 0 || n == 0) return;
  char* c = out.data();
  const int64_t item = static_cast<int64_t>(out.itemsize());
  if (k == 0) {  // an empty sum: zeros
    std::memset(c, 0, static_cast<size_t>(items * m * n * item));
    if (after)
      for (int64_t i = 0; i < items; ++i) after({i, 0, m, 0, n});
    return;
  }
  const DType dt = out.dtype();
  const bool use_blas = dt == DType::Float32 || dt == DType::Float64;
  if (use_blas && (m > INT_MAX || n > INT_MAX || k > INT_MAX))
    throw Error(Status::BadArgument, "matmul: dimensions of " + shape_str(a.shape()) + " @ " + shape_str(b.shape()) +
                                         " exceed BLAS's 32-bit sizes");
  Matrix A = operand(a2, batch, use_blas), B = operand(b2, batch, use_blas);
  TileGrid grid = tile_grid(items, m, n, k, Runtime::instance().num_threads());
  const int64_t per_item = grid.rows * grid.cols;
  auto tile_of = [&](int64_t t) {
    int64_t i = t / per_item, r = (t % per_item) / grid.cols, cc = t % grid.cols;
    return Tile{i, m * r / grid.rows, m * (r + 1) / grid.rows, n * cc / grid.cols, n * (cc + 1) / grid.cols};
  };
  double flops = 2.0 * static_cast<double>(items) * m * n * k;
  auto compute = [&](const Tile& tile) {
    const char* pa = at_batch(A, batch, tile.batch);
    const char* pb = at_batch(B, batch, tile.batch);
    char* pc = c + tile.batch * m * n * item;
    const int tm = static_cast<int>(tile.row1 - tile.row0), tn = static_cast<int>(tile.col1 - tile.col0);
    if (use_blas) {
      auto ta = A.trans ? CblasTrans : CblasNoTrans, tb = B.trans ? CblasTrans : CblasNoTrans;
      int64_t ao = tile.row0 * A.row, bo = tile.col0 * B.col, co = tile.row0 * n + tile.col0;
      if (dt == DType::Float64)
        cblas_dgemm(CblasRowMajor, ta, tb, tm, tn, static_cast<int>(k), 1.0, reinterpret_cast<const double*>(pa) + ao,
                    static_cast<int>(A.ld), reinterpret_cast<const double*>(pb) + bo, static_cast<int>(B.ld), 0.0,
                    reinterpret_cast<double*>(pc) + co, static_cast<int>(n));
      else
        cblas_sgemm(CblasRowMajor, ta, tb, tm, tn, static_cast<int>(k), 1.0f, reinterpret_cast<const float*>(pa) + ao,
                    static_cast<int>(A.ld), reinterpret_cast<const float*>(pb) + bo, static_cast<int>(B.ld), 0.0f,
                    reinterpret_cast<float*>(pc) + co, static_cast<int>(n));
      return;
    }
    auto run = [&](auto* typed) {
      using T = std::remove_pointer_t<decltype(typed)>;
      small_kernel<T>(pa, A.row, A.col, pb, B.row, B.col, reinterpret_cast<T*>(pc), n, tile.row0, tile.row1, tile.col0,
                      tile.col1, k);
    };
    switch (dt) {
      case DType::Bool: run(static_cast<bool*>(nullptr)); break;
      case DType::Int32: run(static_cast<int32_t*>(nullptr)); break;
      case DType::Int64: run(static_cast<int64_t*>(nullptr)); break;
      default: KILN_ASSERT(false);
    }
  };
  parallel_items(items * per_item, flops, [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t) {
      // The epilogue runs over the tile right after it is made: a tile of whole rows is one
      // contiguous block of the result, written moments ago. (Making a tile a few hundred
      // rows at a time, each block's epilogue after it, measured no faster: 4000 x 250 x
      // 4000 at 2 threads, 71.3 ms whole vs 71.9 in blocks of 512 rows, 77.7 of 128; each
      // block packs its panel of B again.)
      Tile tile = tile_of(t);
      compute(tile);
      if (after) after(tile);
    }
  });
}

}  // namespace kiln::blas
