// nnslim report: compares run directories in a table and an HTML page with SVG plots.
#include "common.h"

#include "nnslim/report/comparison.h"

#include <iostream>

namespace nnslim::cli {

int cmd_report(const std::vector<std::string>& args) {
  std::string out, title = "nnslim comparison";
  bool force = false;
  std::vector<std::string> dirs;
  ArgParser p(
      "report", "nnslim report DIR... [--out report.html] [--title TEXT]",
      "Compares the runs in the given directories (outputs of 'nnslim train' and\n"
      "'nnslim compress': summary.json + model.nnslim). Prints a table (params, MACs,\n"
      "nonzero params, file size on disk, top-1, latency at batch 1 and 64) and, with\n"
      "--out, writes a self-contained HTML page with SVG plots: top-1 against MACs and\n"
      "its Pareto front, top-1 against latency, and per-layer widths, ranks and density of\n"
      "each compressed model against the trained baseline.");
  p.rest("DIR", &dirs, "run directories, in table order");
  p.option("out", &out, "FILE.html", "the HTML report to write");
  p.option("title", &title, "TEXT", "page title");
  p.flag("force", &force, "overwrite an existing --out file that is not an HTML page");
  if (!p.parse(args)) return 0;
  if (dirs.empty()) throw UsageError("give at least one run directory");
  if (!out.empty()) {
    std::vector<std::string> inputs;
    for (const auto& d : dirs) inputs.push_back(d + "/summary.json");
    check_out_file(out, "out", inputs, OutKind::Html, force);
  }
  std::vector<ReportEntry> entries;
  for (const auto& d : dirs) entries.push_back(load_report_entry(d));
  std::cout << comparison_table(entries);
  if (!out.empty()) {
    write_text(out, comparison_html(entries, title));
    std::cout << "wrote " << out << "\n";
  }
  return 0;
}

}  // namespace nnslim::cli
