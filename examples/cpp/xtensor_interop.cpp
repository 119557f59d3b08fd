// xtensor containers in and out of kiln, without copies.
//
// kiln::adopt() makes a kiln::Array over an xtensor container's own memory (xt::xtensor,
// xt::xarray, or xt::adapt over a buffer), so a container is an input with no copy, and
// kiln::eval(expr, container) writes the result straight into one. The container must
// outlive the Array and not be resized meanwhile.
//
//   xtensor_interop      (exit status 0 when kiln's results equal xtensor's)
#include <kiln/kiln.hpp>
#include <kiln/xtensor.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>
#include <xtensor/xadapt.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAILED", what.c_str());
  if (!ok) failures++;
}

}  // namespace

int main() {
  const size_t rows = 400, cols = 300;
  xt::xtensor<double, 2> a = xt::zeros<double>({rows, cols});
  xt::xtensor<double, 2> b = xt::zeros<double>({rows, cols});
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++) {
      a(i, j) = 0.01 * static_cast<double>(i) - 1.0;
      b(i, j) = 0.02 * static_cast<double>(j) + 0.5;
    }

  // In: the Arrays are views of the containers' memory.
  kiln::Array ka = kiln::adopt(a), kb = kiln::adopt(b);
  check(ka.data() == reinterpret_cast<char*>(a.data()) && ka.shape() == kiln::Shape{400, 300},
        "adopt() wraps an xt::xtensor without copying");

  // Out: kiln writes into an xtensor container; xtensor computes the same expression.
  xt::xtensor<double, 2> out = xt::zeros<double>({rows, cols});
  const double* out_memory = out.data();
  kiln::eval(kiln::sqrt(ka * ka + kb * kb) * kiln::exp(-ka), out);
  xt::xtensor<double, 2> want = xt::sqrt(a * a + b * b) * xt::exp(-a);
  check(out.data() == out_memory, "eval(expr, container) writes into the container's own memory");
  check(xt::allclose(out, want, 1e-14, 0.0), "kiln's sqrt(a*a + b*b) * exp(-a) equals xtensor's");

  // A reduction back into a 1-D container: the column means, a.mean(axis=0).
  xt::xtensor<double, 1> col_mean = xt::zeros<double>({cols});
  kiln::eval(kiln::mean(ka, 0), col_mean);
  check(xt::allclose(col_mean, xt::mean(a, {0}), 1e-14, 0.0), "mean(a, axis=0) into an xt::xtensor equals xtensor's");

  // xt::adapt over a plain buffer works the same way, here as float32 in and out.
  std::vector<float> raw(1000);
  for (size_t i = 0; i < raw.size(); i++) raw[i] = static_cast<float>(i) * 0.5f;
  auto adapted = xt::adapt(raw, {raw.size()});
  kiln::Array kr = kiln::adopt(adapted);
  check(kr.dtype() == kiln::DType::Float32 && kr.data() == reinterpret_cast<char*>(raw.data()),
        "adopt() of xt::adapt(std::vector<float>) is a float32 view of the vector");
  kiln::eval(kiln::where(kr > 100, 100.0f, kr), adapted);  // clamps in place
  bool clamped = true;
  for (size_t i = 0; i < raw.size(); i++) clamped = clamped && raw[i] == std::min(static_cast<float>(i) * 0.5f, 100.0f);
  check(clamped, "where(r > 100, 100, r) in place in the adapted vector");

  std::printf("%s\n", failures ? "FAILED" : "all checks passed");
  return failures ? 1 : 0;
}
