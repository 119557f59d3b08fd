#include "linalg.hpp"

#include <cmath>

#include "error.hpp"

namespace kiln {

int linalg_results(const LinalgSpec& s) {
  if (s.fn == Linalg::qr && s.qr_mode == lapack::QrMode::R) return 1;
  if (s.fn == Linalg::svd && !s.compute_uv) return 1;
  return linalg_info(s.fn).results;
}

LinalgSpec qr_spec(std::string_view mode) {
  LinalgSpec s;
  s.fn = Linalg::qr;
  s.qr_mode = lapack::qr_mode(mode);
  return s;
}

LinalgSpec eigh_spec(Linalg fn, std::string_view uplo) {
  LinalgSpec s;
  s.fn = fn;
  if (uplo != "L" && uplo != "U")
    throw Error(Status::BadArgument, std::string(linalg_info(fn).name) + ": UPLO must be 'L' or 'U', got '" +
                                         std::string(uplo) + "'");
  s.uplo = uplo[0];
  return s;
}

LinalgSpec svd_spec(bool full_matrices, bool compute_uv) {
  LinalgSpec s;
  s.fn = Linalg::svd;
  s.full_matrices = full_matrices;
  s.compute_uv = compute_uv;
  return s;
}

LinalgSpec lstsq_spec(double rcond) {
  LinalgSpec s;
  s.fn = Linalg::lstsq;
  if (std::isnan(rcond)) throw Error(Status::BadArgument, "lstsq: rcond must be a number, got nan");
  s.rcond = rcond < 0 ? -1.0 : rcond;
  return s;
}

LinalgSpec norm_spec(std::string_view ord_name, bool ord_is_number, double p, const std::vector<int>& axes,
                     bool keepdims) {
  LinalgSpec s;
  s.fn = Linalg::norm;
  if (ord_is_number) {
    if (std::isnan(p)) throw Error(Status::BadArgument, "norm: ord must be a number, inf, 'fro' or 'nuc', got nan");
    s.ord.kind = lapack::NormOrd::Kind::Number;
    s.ord.p = p;
  } else if (ord_name == "fro") {
    s.ord.kind = lapack::NormOrd::Kind::Fro;
  } else if (ord_name == "nuc") {
    s.ord.kind = lapack::NormOrd::Kind::Nuc;
  } else if (!ord_name.empty()) {
    throw Error(Status::BadArgument, "norm: invalid ord '" + std::string(ord_name) + "' (a number, inf, 'fro' or 'nuc')");
  }
  if (axes.size() > 2) throw Error(Status::BadArgument, "norm: axis must be None, an integer or a pair of integers");
  if (axes.size() == 2 && axes[0] == axes[1]) throw Error(Status::BadArgument, "norm: the two axes are the same");
  if (s.ord.kind == lapack::NormOrd::Kind::Fro || s.ord.kind == lapack::NormOrd::Kind::Nuc) {
    if (axes.size() == 1)
      throw Error(Status::BadArgument, std::string("norm: ord '") + (s.ord.kind == lapack::NormOrd::Kind::Fro ? "fro" : "nuc") +
                                           "' is a matrix norm; it needs two axes, not one");
  }
  s.axes = axes;
  s.keepdims = keepdims;
  return s;
}

namespace {
// As the expression language writes a float literal (shortest round-trip form, inf).
std::string number_text(double v) { return scalar_text(Scalar::of_float(v)); }
}  // namespace

std::string linalg_keywords(const LinalgSpec& s) {
  std::string k;
  switch (s.fn) {
    case Linalg::qr:
      if (s.qr_mode == lapack::QrMode::Complete) k = ", mode='complete'";
      if (s.qr_mode == lapack::QrMode::R) k = ", mode='r'";
      break;
    case Linalg::eigh: case Linalg::eigvalsh:
      if (s.uplo == 'U') k = ", UPLO='U'";
      break;
    case Linalg::svd:
      if (!s.full_matrices) k += ", full_matrices=False";
      if (!s.compute_uv) k += ", compute_uv=False";
      break;
    case Linalg::lstsq:
      if (s.rcond >= 0) k = ", rcond=" + number_text(s.rcond);
      break;
    case Linalg::norm:
      if (s.ord.kind == lapack::NormOrd::Kind::Fro) k = ", ord='fro'";
      if (s.ord.kind == lapack::NormOrd::Kind::Nuc) k = ", ord='nuc'";
      if (s.ord.kind == lapack::NormOrd::Kind::Number) k = ", ord=" + number_text(s.ord.p);
      if (s.axes.size() == 1) k += ", axis=" + std::to_string(s.axes[0]);
      if (s.axes.size() == 2) k += ", axis=(" + std::to_string(s.axes[0]) + ", " + std::to_string(s.axes[1]) + ")";
      if (s.keepdims) k += ", keepdims=True";
      break;
    default: break;
  }
  return k;
}

std::string linalg_subscript(const LinalgSpec& s) {
  return linalg_results(s) > 1 ? "[" + std::to_string(s.part) + "]" : "";
}

std::string linalg_key(const LinalgSpec& s) {
  return std::string(linalg_info(s.fn).name) + linalg_keywords(s) + linalg_subscript(s);
}

LinalgTyping resolve_linalg_types(const LinalgSpec& s, const DType* operands, int n) {
  if (s.fn == Linalg::matmul) {
    DType d = promote(operands[0], operands[1]);
    return {d, d};
  }
  bool single = true;
  for (int i = 0; i < n; ++i) single = single && operands[i] == DType::Float32;
  DType f = single ? DType::Float32 : DType::Float64;
  if (s.fn == Linalg::lstsq && s.part == 2) return {f, DType::Int64};
  return {f, f};
}

Shape matmul_shape(const Shape& a, const Shape& b) {
  auto fail = [&](const std::string& why) {
    throw Error(Status::ShapeMismatch, "matmul: " + why + " (shapes " + shape_str(a) + " @ " + shape_str(b) + ")");
  };
  if (a.empty() || b.empty()) fail("operands must have at least one dimension; 0-d arrays and scalars have none");
  int64_t k1 = a.back(), k2 = b.size() == 1 ? b[0] : b[b.size() - 2];
  if (k1 != k2)
    fail("inner dimensions differ: " + std::to_string(k1) + " (last of the first) vs " + std::to_string(k2) +
         (b.size() == 1 ? " (the second's only)" : " (second-to-last of the second)"));
  Shape batch_a(a.begin(), a.end() - std::min<size_t>(a.size(), 2)), batch_b(b.begin(), b.end() - std::min<size_t>(b.size(), 2));
  Shape batch;
  if (!try_broadcast(batch_a, batch_b, batch)) fail("batch dimensions " + shape_str(batch_a) + " and " + shape_str(batch_b) + " do not broadcast");
  Shape out = batch;
  if (a.size() >= 2) out.push_back(a[a.size() - 2]);
  if (b.size() >= 2) out.push_back(b.back());
  return out;
}

}  // namespace kiln
