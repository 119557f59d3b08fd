// Line charts as SVG, for `kiln bench --suite --plot FILE.svg`: written directly, so the
// charts need no plotting package on the machine.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace kiln::cli {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y)
  bool dashed = false;
};

struct Chart {
  std::string title, x_label, y_label;
  bool log_x = false;
  std::vector<Series> series;
};

// Charts side by side in one SVG document. Throws kiln::Error if the file cannot be written.
void write_svg(const std::string& path, const std::vector<Chart>& charts);

}  // namespace kiln::cli
