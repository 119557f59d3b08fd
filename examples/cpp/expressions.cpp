// Writing fused expressions with kiln's C++ builder.
//
// An expression is a value (kiln::Expr) built over several statements; nothing runs
// until kiln::eval(), which plans the whole graph and runs it as one parallel SIMD pass
// (plus one for each reduction whose result the rest needs). Shown here: a lazy
// expression assembled step by step, a user-defined function composed from existing ops,
// reductions (full and along an axis), views (a strided slice, a transpose) as inputs
// without copies, evaluation into an existing array, and an error.
//
//   expressions      (exit status 0 when every result matches a plain loop)
#include <kiln/kiln.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAILED", what.c_str());
  if (!ok) failures++;
}

bool close(double got, double want, double tol = 1e-12) { return std::fabs(got - want) <= tol * (std::fabs(want) + 1.0); }  // NaN: false

bool same_bytes(const kiln::Array& a, const kiln::Array& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), static_cast<size_t>(a.size()) * a.itemsize()) == 0;
}

// A user-defined function is a plain C++ function of Exprs: it composes existing ops into
// more graph, which fuses with whatever surrounds it.
auto softplus = [](kiln::Expr x) { return kiln::log1p(kiln::exp(x)); };

}  // namespace

int main() {
  const int64_t rows = 300, cols = 500;
  kiln::Array m = kiln::Array::empty(kiln::DType::Float64, {rows, cols});
  double* mv = m.data_as<double>();
  for (int64_t i = 0; i < rows * cols; i++) mv[i] = std::sin(0.01 * static_cast<double>(i));

  // 1. A lazy expression over several statements: standardise, then a leaky ReLU, then
  //    softplus. mean() and std() are reductions; kiln computes them first and fuses
  //    everything else into one pass.
  kiln::Expr x = m;
  kiln::Expr standardised = (x - kiln::mean(x)) / kiln::std(x);
  kiln::Expr leaky = kiln::where(standardised > 0, standardised, 0.1 * standardised);
  kiln::Expr result = softplus(leaky);
  std::printf("%s", kiln::explain(result).c_str());
  kiln::Array r = kiln::eval(result);

  double mean = 0.0, var = 0.0;
  for (int64_t i = 0; i < rows * cols; i++) mean += mv[i];
  mean /= static_cast<double>(rows * cols);
  for (int64_t i = 0; i < rows * cols; i++) var += (mv[i] - mean) * (mv[i] - mean);
  double sd = std::sqrt(var / static_cast<double>(rows * cols));
  bool all_close = r.shape() == kiln::Shape{rows, cols};
  for (int64_t i = 0; i < rows * cols && all_close; i++) {
    double s = (mv[i] - mean) / sd, l = s > 0 ? s : 0.1 * s;
    all_close = close(r.data_as<double>()[i], std::log1p(std::exp(l)));
  }
  check(all_close, "softplus(leaky_relu(standardise(m))) matches the loop");

  // 2. Reductions: along an axis (NumPy's axis=, keepdims=) and of a whole expression.
  kiln::Array row_max = kiln::eval(kiln::max(m, 1));
  kiln::Array energy = kiln::eval(kiln::sum(m * m));
  bool rows_ok = row_max.shape() == kiln::Shape{rows};
  for (int64_t i = 0; i < rows && rows_ok; i++) {
    double best = mv[i * cols];
    for (int64_t j = 1; j < cols; j++) best = std::fmax(best, mv[i * cols + j]);
    rows_ok = row_max.data_as<double>()[i] == best;
  }
  check(rows_ok, "max(m, axis=1) matches the loop");
  double want_energy = 0.0;
  for (int64_t i = 0; i < rows * cols; i++) want_energy += mv[i] * mv[i];
  check(close(*energy.data_as<double>(), want_energy), "sum(m * m) matches the loop");

  // 3. Views are inputs without copies: every second row, and the transpose.
  kiln::Array even_rows = m.slice(0, 0, rows, 2);  // m[::2], shares m's memory
  kiln::Array mt = m.transpose();                   // m.T, shares m's memory
  check(even_rows.data() == m.data() && mt.data() == m.data(), "slice and transpose share the array's memory");
  kiln::Array evens = kiln::eval(kiln::sqrt(kiln::abs(even_rows)) + 1);
  kiln::Array col_sums = kiln::eval(kiln::sum(mt, 1));  // sums over m's rows: m.sum(axis=0)
  bool views_ok = evens.shape() == kiln::Shape{rows / 2, cols} && col_sums.shape() == kiln::Shape{cols};
  for (int64_t i = 0; i < rows / 2 && views_ok; i++)
    for (int64_t j = 0; j < cols && views_ok; j++)
      views_ok = close(evens.data_as<double>()[i * cols + j], std::sqrt(std::fabs(mv[2 * i * cols + j])) + 1);
  for (int64_t j = 0; j < cols && views_ok; j++) {
    double s = 0.0;
    for (int64_t i = 0; i < rows; i++) s += mv[i * cols + j];
    views_ok = close(col_sums.data_as<double>()[j], s);
  }
  check(views_ok, "expressions over m[::2] and m.T match the loop");

  // 4. Into an existing array (NumPy's out=), here in place: m = m * 2 - 1.
  kiln::Array before = m.copy();
  kiln::eval(m * 2 - 1, m);
  bool in_place = true;
  for (int64_t i = 0; i < rows * cols && in_place; i++) in_place = mv[i] == before.data_as<double>()[i] * 2 - 1;
  check(in_place, "eval(m * 2 - 1, m) works in place");

  // 5. Errors are kiln::Error, with a status and a message naming the problem; the
  //    output is untouched.
  kiln::Array wrong = kiln::Array::zeros(kiln::DType::Float64, {rows, cols + 1});
  kiln::Array snapshot = m.copy();
  try {
    kiln::eval(m + wrong, m);
    check(false, "a shape mismatch throws");
  } catch (const kiln::Error& e) {
    std::printf("m + wrong: %s\n", e.what());
    check(e.status() == kiln::Status::ShapeMismatch && same_bytes(m, snapshot), "a shape mismatch throws, m untouched");
  }

  std::printf("%s\n", failures ? "FAILED" : "all checks passed");
  return failures ? 1 : 0;
}
