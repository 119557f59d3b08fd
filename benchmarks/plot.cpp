#include "plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "kiln/kiln.hpp"

namespace kiln::cli {

namespace {

constexpr double kWidth = 560, kHeight = 380;                          // one chart
constexpr double kLeft = 64, kRight = 190, kTop = 40, kBottom = 50;   // margins around the plot area
const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#7f7f7f", "#17becf"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// About five round tick values covering [lo, hi].
std::vector<double> linear_ticks(double lo, double hi, double min_step = 0) {
  double step = std::pow(10.0, std::floor(std::log10((hi - lo) / 5)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if ((hi - lo) / (step * m) <= 6) {
      step *= m;
      break;
    }
  step = std::max(step, min_step);
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) t.push_back(v);
  return t;
}

void draw_chart(std::ostringstream& svg, const Chart& c, double x0) {
  double x_lo = INFINITY, x_hi = -INFINITY, y_hi = 0;
  for (const Series& s : c.series)
    for (auto [x, y] : s.points) {
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_hi = std::max(y_hi, y);
    }
  if (!(x_lo < x_hi)) x_hi = x_lo + 1;
  if (y_hi <= 0) y_hi = 1;
  y_hi *= 1.08;
  auto fx = [&](double x) { return c.log_x ? std::log10(x) : x; };
  const double w = kWidth - kLeft - kRight, h = kHeight - kTop - kBottom;
  auto px = [&](double x) { return x0 + kLeft + w * (fx(x) - fx(x_lo)) / (fx(x_hi) - fx(x_lo)); };
  auto py = [&](double y) { return kTop + h * (1 - y / y_hi); };

  svg << "<text x='" << x0 + kWidth / 2 << "' y='22' text-anchor='middle' font-size='15'>" << escape(c.title)
      << "</text>\n";
  svg << "<rect x='" << x0 + kLeft << "' y='" << kTop << "' width='" << w << "' height='" << h
      << "' fill='none' stroke='#333'/>\n";
  for (double v : linear_ticks(0, y_hi)) {
    svg << "<line x1='" << x0 + kLeft << "' x2='" << x0 + kLeft + w << "' y1='" << py(v) << "' y2='" << py(v)
        << "' stroke='#ddd'/>\n";
    svg << "<text x='" << x0 + kLeft - 6 << "' y='" << py(v) + 4 << "' text-anchor='end' font-size='11'>" << number(v)
        << "</text>\n";
  }
  std::vector<double> xt;
  if (c.log_x)
    for (double d = std::ceil(std::log10(x_lo)); d <= std::floor(std::log10(x_hi)) + 1e-9; ++d) xt.push_back(std::pow(10, d));
  else
    xt = linear_ticks(x_lo, x_hi, 1);  // linear x axes count threads
  for (double v : xt) {
    std::string label = c.log_x ? "1e" + number(std::log10(v)) : number(v);
    svg << "<line x1='" << px(v) << "' x2='" << px(v) << "' y1='" << kTop << "' y2='" << kTop + h
        << "' stroke='#eee'/>\n";
    svg << "<text x='" << px(v) << "' y='" << kTop + h + 16 << "' text-anchor='middle' font-size='11'>" << label
        << "</text>\n";
  }
  svg << "<text x='" << x0 + kLeft + w / 2 << "' y='" << kHeight - 12 << "' text-anchor='middle' font-size='12'>"
      << escape(c.x_label) << "</text>\n";
  svg << "<text transform='translate(" << x0 + 16 << "," << kTop + h / 2
      << ") rotate(-90)' text-anchor='middle' font-size='12'>" << escape(c.y_label) << "</text>\n";
  for (size_t i = 0; i < c.series.size(); ++i) {
    const Series& s = c.series[i];
    const char* color = kColors[i % (sizeof kColors / sizeof kColors[0])];
    svg << "<polyline fill='none' stroke='" << color << "' stroke-width='2'"
        << (s.dashed ? " stroke-dasharray='6,4'" : "") << " points='";
    for (auto [x, y] : s.points) svg << px(x) << "," << py(y) << " ";
    svg << "'/>\n";
    for (auto [x, y] : s.points)
      svg << "<circle cx='" << px(x) << "' cy='" << py(y) << "' r='3' fill='" << color << "'/>\n";
    double ly = kTop + 12 + 18 * static_cast<double>(i);
    svg << "<line x1='" << x0 + kWidth - kRight + 10 << "' x2='" << x0 + kWidth - kRight + 30 << "' y1='" << ly
        << "' y2='" << ly << "' stroke='" << color << "' stroke-width='2'" << (s.dashed ? " stroke-dasharray='6,4'" : "")
        << "/>\n";
    svg << "<text x='" << x0 + kWidth - kRight + 34 << "' y='" << ly + 4 << "' font-size='11'>" << escape(s.name)
        << "</text>\n";
  }
}

}  // namespace

void write_svg(const std::string& path, const std::vector<Chart>& charts) {
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << kWidth * static_cast<double>(charts.size())
      << "' height='" << kHeight << "' font-family='sans-serif'>\n<rect width='100%' height='100%' fill='white'/>\n";
  for (size_t i = 0; i < charts.size(); ++i) draw_chart(svg, charts[i], kWidth * static_cast<double>(i));
  svg << "</svg>\n";
  // Written whole to a temporary name and renamed, so a failure never leaves half a chart.
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << svg.str();
    if (!f.flush()) {
      std::remove(tmp.c_str());
      throw Error(Status::IOError, "cannot write the chart to '" + path + "'");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(Status::IOError, "cannot write the chart to '" + path + "'");
  }
}

}  // namespace kiln::cli
