// The comparison report: one row per run directory (a `nnslim train` or `nnslim compress`
// output), as a text table and as a self-contained HTML page with SVG plots (top-1 against MACs
// with its Pareto front, top-1 against latency, per-layer widths / ranks / density).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace nnslim {

struct LayerStat {
  std::string name;    // conv/linear name; a factorised pair is reported under its original name
  int64_t width = 0;   // output channels / features
  int64_t rank = -1;   // factorised: the inner rank (width of "<name>.0"), else -1
  double density = 1;  // nonzero fraction of the weight
};

struct ReportEntry {
  static constexpr double kNone = std::numeric_limits<double>::quiet_NaN();
  std::string dir, label, method, model, dataset;
  int64_t params = 0, macs = 0, nonzero_params = 0;
  int64_t file_bytes =
      0;  // measured size of the model file on disk (the compact unified file if any)
  double top1 = kNone, latency_ms = kNone, latency_ms_batch64 = kNone;
  std::vector<LayerStat> layers;
};

// Reads DIR/summary.json (train or compress) and DIR/model.nnslim. The label is the directory's
// name. Throws c10::Error naming the file when either is missing or malformed.
ReportEntry load_report_entry(const std::string& dir);

// Fixed-width text table: label, method, params, MACs, nonzero params, file size, top-1,
// latency at batch 1 and 64.
std::string comparison_table(const std::vector<ReportEntry>& entries);

// The HTML page. The first entry without a method (a trained baseline), or else the first
// entry, is the reference for per-layer plots.
std::string comparison_html(const std::vector<ReportEntry>& entries, const std::string& title);

// A count as people read it: 1.23G, 4.56M, 7.8K, 12 ("-" when not finite).
std::string human_count(double v);

}  // namespace nnslim
