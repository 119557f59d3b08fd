// A C++ program built against kiln by another Meson project (see meson.build).
#include <kiln/kiln.hpp>

#include <cmath>
#include <cstdio>

int main() {
  kiln::Array x = kiln::eval(kiln::linspace(-3.0, 3.0, 1001));
  auto softplus = [](kiln::Expr v) { return kiln::log1p(kiln::exp(v)); };
  kiln::Array total = kiln::eval(kiln::sum(softplus(x)));
  double want = 0.0;
  for (int i = 0; i <= 1000; i++) want += std::log1p(std::exp(-3.0 + 6.0 * i / 1000));
  if (!(std::fabs(*total.data_as<double>() - want) <= 1e-9 * want)) return 1;  // NaN fails too
  kiln::Array a = kiln::eval(kiln::eye(3) * 2.0), b = kiln::eval(kiln::ones({3}));
  kiln::Array s = kiln::eval(kiln::linalg::solve(a, b));
  for (int i = 0; i < 3; i++)
    if (s.data_as<double>()[i] != 0.5) return 1;
  std::printf("consumer-cpp: kiln %s, sum(softplus(x)) = %.6f and solve() check out\n", kiln::version(),
              *total.data_as<double>());
  return 0;
}
