#include "nnslim/report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <sstream>

namespace nnslim {

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::vector<size_t> pareto_front(const std::vector<PlotPoint>& points) {
  std::vector<size_t> order(points.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return points[a].x != points[b].x ? points[a].x < points[b].x : points[a].y > points[b].y;
  });
  std::vector<size_t> front;
  double best = -std::numeric_limits<double>::infinity();
  for (size_t i : order)
    if (points[i].y > best) {
      front.push_back(i);
      best = points[i].y;
    }
  return front;
}

namespace {

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// Tick label: 3 significant digits with K/M/G suffixes for large values.
std::string tick_text(double v) {
  char buf[32];
  double a = std::fabs(v);
  if (a >= 1e9)
    std::snprintf(buf, sizeof buf, "%.3gG", v / 1e9);
  else if (a >= 1e6)
    std::snprintf(buf, sizeof buf, "%.3gM", v / 1e6);
  else if (a >= 1e3)
    std::snprintf(buf, sizeof buf, "%.3gK", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

struct Axis {
  double lo, hi;
  bool log;
  double pos(double v, double a, double b) const {  // maps v to [a, b]
    double t = log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo))
                   : (v - lo) / (hi - lo);
    return a + t * (b - a);
  }
  std::vector<double> ticks() const {
    std::vector<double> t;
    if (log) {
      for (double d = std::pow(10, std::floor(std::log10(lo))); d <= hi * 1.0001; d *= 10)
        for (double m : {1.0, 2.0, 5.0})
          if (d * m >= lo * 0.9999 && d * m <= hi * 1.0001) t.push_back(d * m);
    } else {
      double step = std::pow(10, std::floor(std::log10((hi - lo) / 5)));
      if ((hi - lo) / step > 10) step *= 2;
      if ((hi - lo) / step > 10) step *= 2.5;
      for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) t.push_back(v);
    }
    return t;
  }
};

Axis make_axis(std::vector<double> v, bool log) {
  v.erase(std::remove_if(v.begin(), v.end(),
                         [&](double x) { return !std::isfinite(x) || (log && x <= 0); }),
          v.end());
  if (v.empty()) return {log ? 1.0 : 0.0, log ? 10.0 : 1.0, log};
  auto [mn, mx] = std::minmax_element(v.begin(), v.end());
  double lo = *mn, hi = *mx;
  if (log) {
    lo /= 1.3;
    hi *= 1.3;
  } else {
    double pad = hi > lo ? (hi - lo) * 0.1 : std::max(1.0, std::fabs(hi) * 0.05);
    lo -= pad;
    hi += pad;
  }
  return {lo, hi, log};
}

const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                          "#9467bd", "#8c564b", "#e377c2", "#17becf"};

void frame(std::ostringstream& os, int w, int h, const std::string& title) {
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"" << w << "\" height=\""
     << h << "\" viewBox=\"0 0 " << w << " " << h
     << "\" font-family=\"sans-serif\" font-size=\"11\">"
     << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
     << "<text x=\"" << w / 2
     << "\" y=\"16\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">"
     << xml_escape(title) << "</text>";
}

}  // namespace

std::string scatter_svg(const std::vector<PlotPoint>& points, const ScatterOptions& o) {
  const double L = 64, R = o.width - 16, T = 28, B = o.height - 40;
  std::vector<double> xs, ys;
  for (const auto& p : points) {
    xs.push_back(p.x);
    ys.push_back(p.y);
  }
  Axis ax = make_axis(xs, o.log_x), ay = make_axis(ys, false);
  std::ostringstream os;
  frame(os, o.width, o.height, o.title);
  os << "<g stroke=\"#ddd\">";
  for (double t : ax.ticks())
    os << "<line x1=\"" << fmt(ax.pos(t, L, R)) << "\" y1=\"" << T << "\" x2=\""
       << fmt(ax.pos(t, L, R)) << "\" y2=\"" << B << "\"/>";
  for (double t : ay.ticks())
    os << "<line x1=\"" << L << "\" y1=\"" << fmt(ay.pos(t, B, T)) << "\" x2=\"" << R << "\" y2=\""
       << fmt(ay.pos(t, B, T)) << "\"/>";
  os << "</g><g fill=\"#333\">";
  for (double t : ax.ticks())
    os << "<text x=\"" << fmt(ax.pos(t, L, R)) << "\" y=\"" << B + 14
       << "\" text-anchor=\"middle\">" << tick_text(t) << "</text>";
  for (double t : ay.ticks())
    os << "<text x=\"" << L - 6 << "\" y=\"" << fmt(ay.pos(t, B, T) + 4)
       << "\" text-anchor=\"end\">" << tick_text(t) << "</text>";
  os << "<text x=\"" << (L + R) / 2 << "\" y=\"" << o.height - 6 << "\" text-anchor=\"middle\">"
     << xml_escape(o.x_label) << "</text>"
     << "<text transform=\"translate(14," << (T + B) / 2
     << ") rotate(-90)\" text-anchor=\"middle\">" << xml_escape(o.y_label) << "</text></g>"
     << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << R - L << "\" height=\"" << B - T
     << "\" fill=\"none\" stroke=\"#333\"/>";
  if (o.pareto && points.size() > 1) {
    os << "<polyline class=\"pareto\" fill=\"none\" stroke=\"#999\" stroke-dasharray=\"4 3\" "
          "points=\"";
    for (size_t i : pareto_front(points))
      os << fmt(ax.pos(points[i].x, L, R)) << "," << fmt(ay.pos(points[i].y, B, T)) << " ";
    os << "\"/>";
  }
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    if (!std::isfinite(p.x) || !std::isfinite(p.y) || (o.log_x && p.x <= 0)) continue;
    double x = ax.pos(p.x, L, R), y = ay.pos(p.y, B, T);
    os << "<circle class=\"point\" cx=\"" << fmt(x) << "\" cy=\"" << fmt(y) << "\" r=\"5\" fill=\""
       << kPalette[i % 8] << "\"><title>" << xml_escape(p.label) << ": " << tick_text(p.x) << ", "
       << tick_text(p.y) << "</title></circle><text x=\"" << fmt(x + 7) << "\" y=\"" << fmt(y - 6)
       << "\" fill=\"" << kPalette[i % 8] << "\">" << xml_escape(p.label) << "</text>";
  }
  os << "</svg>";
  return os.str();
}

std::string bars_svg(const std::vector<std::string>& categories,
                     const std::vector<BarSeries>& series, const BarOptions& o) {
  const double L = 56, R = o.width - 10, T = 40, B = o.height - 70;
  std::vector<double> all{0.0};
  for (const auto& s : series)
    for (double v : s.values)
      if (std::isfinite(v)) all.push_back(v);
  Axis ay{0.0, *std::max_element(all.begin(), all.end()) * 1.08, false};
  if (ay.hi <= 0) ay.hi = 1;
  std::ostringstream os;
  frame(os, o.width, o.height, o.title);
  for (size_t s = 0; s < series.size(); ++s)  // legend
    os << "<rect x=\"" << L + 150 * s << "\" y=\"22\" width=\"10\" height=\"10\" fill=\""
       << kPalette[s % 8] << "\"/><text x=\"" << L + 150 * s + 14 << "\" y=\"31\">"
       << xml_escape(series[s].name) << "</text>";
  os << "<g stroke=\"#ddd\">";
  for (double t : ay.ticks())
    os << "<line x1=\"" << L << "\" y1=\"" << fmt(ay.pos(t, B, T)) << "\" x2=\"" << R << "\" y2=\""
       << fmt(ay.pos(t, B, T)) << "\"/>";
  os << "</g><g fill=\"#333\">";
  for (double t : ay.ticks())
    os << "<text x=\"" << L - 6 << "\" y=\"" << fmt(ay.pos(t, B, T) + 4)
       << "\" text-anchor=\"end\">" << tick_text(t) << "</text>";
  os << "<text transform=\"translate(14," << (T + B) / 2
     << ") rotate(-90)\" text-anchor=\"middle\">" << xml_escape(o.y_label) << "</text></g>";
  const double slot = categories.empty() ? 1 : (R - L) / categories.size();
  const double bar = std::max(1.0, slot * 0.8 / std::max<size_t>(1, series.size()));
  for (size_t c = 0; c < categories.size(); ++c) {
    for (size_t s = 0; s < series.size(); ++s) {
      if (c >= series[s].values.size() || !std::isfinite(series[s].values[c])) continue;
      double v = series[s].values[c], x = L + c * slot + slot * 0.1 + s * bar, y = ay.pos(v, B, T);
      os << "<rect class=\"bar\" x=\"" << fmt(x) << "\" y=\"" << fmt(y) << "\" width=\"" << fmt(bar)
         << "\" height=\"" << fmt(B - y) << "\" fill=\"" << kPalette[s % 8] << "\"><title>"
         << xml_escape(categories[c]) << " (" << xml_escape(series[s].name) << "): " << tick_text(v)
         << "</title></rect>";
    }
    if (categories.size() <= 64)
      os << "<text transform=\"translate(" << fmt(L + (c + 0.5) * slot) << "," << B + 6
         << ") rotate(60)\" font-size=\"9\">" << xml_escape(categories[c]) << "</text>";
  }
  os << "<line x1=\"" << L << "\" y1=\"" << B << "\" x2=\"" << R << "\" y2=\"" << B
     << "\" stroke=\"#333\"/></svg>";
  return os.str();
}

}  // namespace nnslim
