// numpy.linalg over LAPACKE (OpenBLAS's LAPACK): the same names, argument conventions,
// result shapes and dtypes as NumPy 1.24.
//   - Any dtype in: bool and integers compute in float64, float32 stays float32, float64
//     stays float64. Any strides in (operands are copied into LAPACK's layout, which it
//     overwrites anyway). Results are new C-contiguous arrays.
//   - Leading dimensions are a batch ("...", M, N), as NumPy's gufuncs; batch items run in
//     parallel on kiln's arena, each LAPACK call on one thread (threads.hpp); a single
//     big problem may use the whole thread budget inside OpenBLAS.
//   - Errors throw kiln::Error before anything is returned: ShapeMismatch (naming the
//     shapes) for non-square or mismatched operands, BadArgument for a bad mode/ord/axis,
//     LinAlgError for a singular or not positive definite matrix or a routine that did
//     not converge (with LAPACK's info, and which batch item).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "array.hpp"

namespace kiln::lapack {

// x with a @ x == b. a: (..., M, M). b: (M,) or (..., M, K); as NumPy 1.24, b is a stack
// of vectors when b.ndim == a.ndim - 1. Batch dimensions broadcast.
Array solve(const Array& a, const Array& b);
Array inv(const Array& a);
// det of (..., M, M): shape (...). Singular matrices give 0, not an error (as NumPy).
Array det(const Array& a);
// Lower-triangular L with a = L @ L^T (a: (..., M, M); only its lower triangle is read).
Array cholesky(const Array& a);
// mode "reduced" (default): {Q (..., M, K), R (..., K, N)}, K = min(M, N); "complete":
// {Q (..., M, M), R (..., M, N)}; "r": {R (..., K, N)}.
enum class QrMode : uint8_t { Reduced, Complete, R };
// The mode's name as NumPy spells it; BadArgument for anything else. (Inline: the parser
// checks modes where no LAPACK is linked, as in the fuzzing build.)
inline QrMode qr_mode(std::string_view mode) {
  if (mode == "reduced") return QrMode::Reduced;
  if (mode == "complete") return QrMode::Complete;
  if (mode == "r") return QrMode::R;
  throw Error(Status::BadArgument, "qr: mode must be 'reduced', 'complete' or 'r', got '" + std::string(mode) + "'");
}
std::vector<Array> qr(const Array& a, QrMode mode);
std::vector<Array> qr(const Array& a, std::string_view mode = "reduced");
// Eigenvalues in ascending order and eigenvectors (columns) of a symmetric matrix, from
// its lower ('L') or upper ('U') triangle: {w (..., M), v (..., M, M)}.
std::vector<Array> eigh(const Array& a, char uplo = 'L');
Array eigvalsh(const Array& a, char uplo = 'L');
// {U, S, Vh} with a = U @ diag(S) @ Vh, S descending; compute_uv false: {S}.
std::vector<Array> svd(const Array& a, bool full_matrices = true, bool compute_uv = true);
// Least squares (2-D a (M, N), b (M,) or (M, K)), as numpy.linalg.lstsq with
// rcond=None when rcond < 0 (eps * max(M, N)): {x, residuals, rank (int64 0-d), s}.
std::vector<Array> lstsq(const Array& a, const Array& b, double rcond = -1.0);

// numpy.linalg.norm's ord: None, 'fro', 'nuc', or a number (inf and -inf included).
struct NormOrd {
  enum class Kind { None, Fro, Nuc, Number } kind = Kind::None;
  double p = 0.0;
};
// axes empty: None (the 2-norm of the flattened array, or for ord given, a vector norm of
// 1-D x / a matrix norm of 2-D x, as NumPy); one axis: vector norms; two axes: matrix
// norms. Negative axes count from the end.
Array norm(const Array& x, NormOrd ord = {}, const std::vector<int>& axes = {}, bool keepdims = false);

}  // namespace kiln::lapack
