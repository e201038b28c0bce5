#include "nnslim/report/comparison.h"

#include "nnslim/core/json.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/report/svg.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace nnslim {

namespace fs = std::filesystem;

namespace {

Json read_json(const std::string& path) {
  std::ifstream f(path);
  TORCH_CHECK(f, "cannot open '", path,
              "' (is this a 'nnslim train' or 'nnslim compress' output directory?)");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return Json::parse(ss.str());
  } catch (const c10::Error& e) {  // without LibTorch's backtrace
    TORCH_CHECK(false, path, ": not valid JSON: ", e.what_without_backtrace());
  }
}

double number_or_none(const Json& j, const char* key) {
  const Json* v = j.find(key);
  return v && v->is_number() && v->num() > 0 ? v->num() : ReportEntry::kNone;
}

int64_t integer_or_zero(const Json& j, const char* key) {
  const Json* v = j.find(key);
  return v && v->is_number() ? v->integer() : 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// factorize_conv replaces conv X by conv "X.0" (the rank outputs) feeding conv "X.1" (the old
// outputs). A pair is recognised by that structure, not by name alone ("downsample.0" is a
// plain conv followed by its BN "downsample.1").
bool is_factor_pair(const Graph& g, const Node& first) {
  if (first.op != Op::kConv2d || !ends_with(first.name, ".0")) return false;
  const Node* second = g.find(first.name.substr(0, first.name.size() - 1) + "1");
  return second && second->op == Op::kConv2d && second->inputs.size() == 1 &&
         second->inputs[0] == first.id;
}

std::vector<LayerStat> layer_stats(const Graph& g) {
  std::vector<LayerStat> out;
  std::map<int, size_t> pair_of_second;  // id of an "X.1" conv -> index of its entry in out
  for (const auto& n : g.nodes) {
    if (n.op != Op::kConv2d && n.op != Op::kLinear) continue;
    const auto& w = n.params.at("weight");
    LayerStat s;
    s.name = n.name;
    s.width = w.size(0);
    s.density = w.numel() ? w.ne(0).sum().item<double>() / w.numel() : 1.0;
    auto pending = pair_of_second.find(n.id);
    if (pending != pair_of_second.end()) {  // the second half of a factorised conv
      auto& f = out[pending->second];
      f.width = s.width;
      f.density = (f.density + s.density) / 2;
      continue;
    }
    if (is_factor_pair(g, n)) {
      s.name = n.name.substr(0, n.name.size() - 2);
      s.rank = s.width;
      pair_of_second[g.find(n.name.substr(0, n.name.size() - 1) + "1")->id] = out.size();
    }
    out.push_back(s);
  }
  return out;
}

std::string fixed(double v, const char* f) {
  if (!std::isfinite(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

struct Column {
  const char* head;
  std::string (*cell)(const ReportEntry&);
};

const Column kColumns[] = {
    {"run", [](const ReportEntry& e) { return e.label; }},
    {"method",
     [](const ReportEntry& e) { return e.method.empty() ? std::string("(trained)") : e.method; }},
    {"params", [](const ReportEntry& e) { return human_count(e.params); }},
    {"MACs", [](const ReportEntry& e) { return human_count(e.macs); }},
    {"nonzero params", [](const ReportEntry& e) { return human_count(e.nonzero_params); }},
    {"file", [](const ReportEntry& e) { return human_count(e.file_bytes) + "B"; }},
    {"top-1 %", [](const ReportEntry& e) { return fixed(e.top1, "%.2f"); }},
    {"latency b1 ms", [](const ReportEntry& e) { return fixed(e.latency_ms, "%.3f"); }},
    {"latency b64 ms", [](const ReportEntry& e) { return fixed(e.latency_ms_batch64, "%.2f"); }},
};

const ReportEntry* reference(const std::vector<ReportEntry>& entries) {
  for (const auto& e : entries)
    if (e.method.empty()) return &e;
  return entries.empty() ? nullptr : &entries.front();
}

// Per-layer plots of one entry against the reference: widths if they changed, ranks if
// factorised, density if sparse.
std::string layer_plots(const ReportEntry& e, const ReportEntry& ref) {
  std::vector<std::string> cats;
  std::vector<double> ref_width, width, rank, density;
  std::map<std::string, const LayerStat*> mine;
  for (const auto& l : e.layers) mine[l.name] = &l;
  bool widths_changed = false, factorised = false, sparse = false;
  for (const auto& r : ref.layers) {
    auto it = mine.find(r.name);
    if (it == mine.end()) continue;
    const LayerStat& l = *it->second;
    cats.push_back(r.name);
    ref_width.push_back(static_cast<double>(r.width));
    width.push_back(static_cast<double>(l.width));
    rank.push_back(l.rank >= 0 ? static_cast<double>(l.rank) : ReportEntry::kNone);
    density.push_back(l.density);
    widths_changed |= l.width != r.width;
    factorised |= l.rank >= 0;
    sparse |= l.density < 0.95;
  }
  std::string out;
  if (widths_changed)
    out += bars_svg(cats, {{ref.label, ref_width}, {e.label, width}},
                    {e.label + ": output channels per layer", "channels"});
  if (factorised)
    out += bars_svg(cats, {{ref.label + " (full width)", ref_width}, {e.label + " rank", rank}},
                    {e.label + ": rank of each factorised layer", "rank"});
  if (sparse)
    out += bars_svg(cats, {{e.label, density}},
                    {e.label + ": nonzero fraction of each layer's weight", "density"});
  return out;
}

}  // namespace

std::string human_count(double v) {
  char buf[32];
  if (!std::isfinite(v)) return "-";
  if (v >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  else if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fK", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

ReportEntry load_report_entry(const std::string& dir) {
  ReportEntry e;
  e.dir = dir;
  e.label = fs::path(dir).lexically_normal().filename().string();
  if (e.label.empty()) e.label = fs::path(dir).lexically_normal().parent_path().filename().string();
  Json s = read_json((fs::path(dir) / "summary.json").string());
  const Json* m = s.find("method");
  if (m && m->is_string()) e.method = m->str();
  if (const Json* v = s.find("model"); v && v->is_string()) e.model = v->str();
  if (const Json* v = s.find("dataset"); v && v->is_string()) e.dataset = v->str();
  const Json& stats = s.has("after") ? s.get("after") : s;  // compress: the compressed model
  e.params = integer_or_zero(stats, "params");
  e.macs = integer_or_zero(stats, "macs");
  e.nonzero_params =
      stats.has("nonzero_params") ? integer_or_zero(stats, "nonzero_params") : e.params;
  e.top1 = number_or_none(stats, "top1");
  e.latency_ms = number_or_none(stats, "latency_ms");
  e.latency_ms_batch64 = number_or_none(stats, "latency_ms_batch64");
  std::string model = (fs::path(dir) / "model.nnslim").string();
  std::string unified = (fs::path(dir) / "model.unified.nnslim").string();
  e.file_bytes = static_cast<int64_t>(fs::file_size(fs::exists(unified) ? unified : model));
  e.layers = layer_stats(load_graph(model));
  return e;
}

std::string comparison_table(const std::vector<ReportEntry>& entries) {
  std::vector<size_t> w;
  for (const auto& c : kColumns) {
    size_t n = std::string(c.head).size();
    for (const auto& e : entries) n = std::max(n, c.cell(e).size());
    w.push_back(n);
  }
  std::ostringstream os;
  auto line = [&](auto cell) {
    for (size_t i = 0; i < w.size(); ++i) {
      std::string t = cell(i);
      os << (i ? "  " : "")
         << (i < 2 ? t + std::string(w[i] - t.size(), ' ') : std::string(w[i] - t.size(), ' ') + t);
    }
    os << "\n";
  };
  line([&](size_t i) { return std::string(kColumns[i].head); });
  for (const auto& e : entries) line([&](size_t i) { return kColumns[i].cell(e); });
  return os.str();
}

std::string comparison_html(const std::vector<ReportEntry>& entries, const std::string& title) {
  std::ostringstream os;
  os << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
     << xml_escape(title)
     << "</"
        "title>\n<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:"
        "collapse}"
        "td,th{padding:4px 10px;border-bottom:1px solid "
        "#ddd;text-align:right}td:nth-child(-n+2),th:nth-child(-n+2)"
        "{text-align:left}svg{margin:8px 8px 8px 0;border:1px solid "
        "#eee}.note{color:#666;font-size:90%}</style>\n"
        "<script>window.addEventListener('error',function(e){document.body.dataset.errors=("
        "document.body.dataset.errors||'')"
        "+e.message+';';});window.addEventListener('load',function(){document.body.dataset.plots="
        "document.querySelectorAll('svg.plot').length;document.body.dataset.marks=document."
        "querySelectorAll("
        "'svg.plot circle.point, svg.plot rect.bar').length;});</script>\n</head><body>\n<h1>"
     << xml_escape(title) << "</h1>\n<table><tr>";
  for (const auto& c : kColumns) os << "<th>" << xml_escape(c.head) << "</th>";
  os << "</tr>\n";
  for (const auto& e : entries) {
    os << "<tr>";
    for (const auto& c : kColumns) os << "<td>" << xml_escape(c.cell(e)) << "</td>";
    os << "</tr>\n";
  }
  os << "</table>\n<p class=\"note\">MACs count Conv and Linear multiply-accumulates only (dense); "
        "nonzero "
        "params count weights that are not exactly zero. File: the model file's measured size on "
        "disk. "
        "Latency: median inference time measured when the run was made (BatchNorm "
        "folded).</p>\n<h2>Trade-offs</h2>\n";
  std::vector<PlotPoint> by_macs, by_latency;
  for (const auto& e : entries) {
    by_macs.push_back({static_cast<double>(e.macs), e.top1, e.label});
    if (std::isfinite(e.latency_ms)) by_latency.push_back({e.latency_ms, e.top1, e.label});
  }
  os << scatter_svg(by_macs, {"top-1 against MACs (dashed: Pareto front)", "MACs (log scale)",
                              "top-1 %", true, true});
  if (!by_latency.empty())
    os << scatter_svg(by_latency, {"top-1 against latency at batch 1", "latency, ms (log scale)",
                                   "top-1 %", true, true});
  const ReportEntry* ref = reference(entries);
  if (ref) {
    os << "\n<h2>Per-layer structure against " << xml_escape(ref->label) << "</h2>\n";
    for (const auto& e : entries) {
      if (&e == ref) continue;
      std::string plots = layer_plots(e, *ref);
      os << "<h3>" << xml_escape(e.label) << "</h3>\n"
         << (plots.empty()
                 ? "<p class=\"note\">same layer widths, no factorised or sparse layers</p>"
                 : plots)
         << "\n";
    }
  }
  os << "</body></html>\n";
  return os.str();
}

}  // namespace nnslim
