// Small, dependency-free SVG plots for reports: a scatter plot (with an optional Pareto front)
// and a grouped bar chart. Each returns one self-contained <svg> element.
#pragma once

#include <string>
#include <vector>

namespace nnslim {

struct PlotPoint {
  double x = 0, y = 0;
  std::string label;  // shown next to the point and as its tooltip
};

struct ScatterOptions {
  std::string title, x_label, y_label;
  bool log_x = false;
  bool pareto = false;  // draw the front of points no other point beats (lower x, higher y)
  int width = 560, height = 360;
};

std::string scatter_svg(const std::vector<PlotPoint>& points, const ScatterOptions& options);

struct BarSeries {
  std::string name;            // legend entry
  std::vector<double> values;  // one per category (NaN = absent)
};

struct BarOptions {
  std::string title, y_label;
  int width = 720, height = 300;
};

// Bars grouped by category (e.g. per-layer widths of the dense and the pruned model).
std::string bars_svg(const std::vector<std::string>& categories,
                     const std::vector<BarSeries>& series, const BarOptions& options);

// Escapes &, <, >, " and ' for HTML/SVG text and attributes.
std::string xml_escape(const std::string& s);

// Indices of the points on the Pareto front (minimal x, maximal y), sorted by x.
std::vector<size_t> pareto_front(const std::vector<PlotPoint>& points);

}  // namespace nnslim
