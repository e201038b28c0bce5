// The comparison report: entries read from run directories, the text table, the SVG plots, and
// the HTML page rendered by a real headless browser (Debian's chromium).
#include "nnslim/core/json.h"
#include "nnslim/graph/coupling.h"
#include "nnslim/graph/factorize.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/graph/surgery.h"
#include "nnslim/models/zoo.h"
#include "nnslim/report/comparison.h"
#include "nnslim/report/svg.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

namespace nnslim {
namespace {

namespace fs = std::filesystem;

// A run directory as `nnslim train` (method empty) or `nnslim compress` would leave it.
std::string make_run(const testing::TempDir& root, const std::string& name, const Graph& g,
                     const std::string& method, double top1, double latency) {
  std::string dir = root.file(name);
  fs::create_directories(dir);
  save_graph(g, dir + "/model.nnslim");
  Json stats = Json::object();
  stats.set("params", int64_t{1000});
  stats.set("macs", static_cast<int64_t>(100000 / (latency + 0.1)));
  stats.set("nonzero_params", int64_t{800});
  stats.set("top1", top1);
  stats.set("latency_ms", latency);
  stats.set("latency_ms_batch64", latency * 20);
  Json s = Json::object();
  if (method.empty()) {
    s = stats;
    s.set("model", "tiny");
  } else {
    s.set("method", method);
    s.set("before", stats);
    s.set("after", stats);
  }
  std::ofstream(dir + "/summary.json") << s.dump(2);
  return dir;
}

struct Runs {
  testing::TempDir root;
  std::vector<std::string> dirs;
  Runs() {
    Graph base = testing::tiny_convnet(1);
    dirs.push_back(make_run(root, "baseline", base, "", 90.0, 1.0));
    Coupling c = analyze_coupling(base);
    std::map<int, std::vector<int64_t>> keep;
    for (int id : c.prunable()) keep[id] = {0, 1};
    dirs.push_back(make_run(root, "pruned", prune_groups(base, c, keep), "magnitude", 88.5, 0.5));
    Graph f = base.clone();
    factorize_conv(f, f.find("conv2")->id, Scheme::kChannel, 2);
    dirs.push_back(make_run(root, "trp", f, "trp", 89.0, 0.7));
    Graph sparse = base.clone();
    {
      torch::NoGradGuard ng;
      sparse.find("conv2")->params.at("weight").mul_(
          (torch::arange(sparse.find("conv2")->params.at("weight").numel()) % 5 == 0)
              .reshape(sparse.find("conv2")->params.at("weight").sizes())
              .to(torch::kFloat));
    }
    dirs.push_back(make_run(root, "grda", sparse, "grda", 89.5, 0.9));
  }
  std::vector<ReportEntry> entries() const {
    std::vector<ReportEntry> e;
    for (const auto& d : dirs) e.push_back(load_report_entry(d));
    return e;
  }
};

TEST(Report, EntriesReadSummaryAndModel) {
  Runs runs;
  auto e = runs.entries();
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0].label, "baseline");
  EXPECT_EQ(e[0].method, "");
  EXPECT_EQ(e[1].method, "magnitude");
  EXPECT_DOUBLE_EQ(e[1].top1, 88.5);
  EXPECT_EQ(e[1].file_bytes, static_cast<int64_t>(fs::file_size(runs.dirs[1] + "/model.nnslim")));
  // Per-layer structure comes from the saved model.
  EXPECT_EQ(e[0].layers.size(), 3u);  // conv1, conv2, fc
  EXPECT_EQ(e[1].layers[0].width, 2);
  const auto& conv2 = e[2].layers[1];
  EXPECT_EQ(conv2.name, "conv2");
  EXPECT_EQ(conv2.rank, 2);
  EXPECT_EQ(conv2.width, 6);
  EXPECT_NEAR(e[3].layers[1].density, 0.2, 0.02);
}

// "layer2.0.downsample.0" is a plain conv (its BN is "downsample.1"), not half of a factorised
// pair: ranks are recognised by structure, not by name.
TEST(Report, DownsampleConvsAreNotMistakenForFactorisedPairs) {
  testing::TempDir root;
  torch::manual_seed(0);
  Graph g = build_model("resnet20", {1, 32, 32}, 10);
  ReportEntry e = load_report_entry(make_run(root, "r20", g, "", 90, 1));
  ASSERT_EQ(e.layers.size(), 22u);  // 19 3x3 convs + 2 downsample convs + fc
  for (const auto& l : e.layers) EXPECT_EQ(l.rank, -1) << l.name;
  factorize_conv(g, g.find("layer3.1.conv1")->id, Scheme::kChannel, 4);
  ReportEntry f = load_report_entry(make_run(root, "r20f", g, "trp", 90, 1));
  ASSERT_EQ(f.layers.size(), 22u);
  int ranked = 0;
  for (const auto& l : f.layers) ranked += l.rank == 4 && l.name == "layer3.1.conv1";
  EXPECT_EQ(ranked, 1);
}

TEST(Report, MissingOrBrokenSummaryNamesTheFile) {
  testing::TempDir dir;
  try {
    load_report_entry(dir.path);
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("summary.json"), std::string::npos);
  }
  std::ofstream(dir.file("summary.json")) << "{ not json";
  EXPECT_THROW(load_report_entry(dir.path), c10::Error);
}

TEST(Report, TableHasOneRowPerRun) {
  Runs runs;
  std::string t = comparison_table(runs.entries());
  EXPECT_NE(t.find("top-1 %"), std::string::npos);
  EXPECT_NE(t.find("latency b64 ms"), std::string::npos);
  for (const char* label : {"baseline", "pruned", "trp", "grda"})
    EXPECT_NE(t.find(label), std::string::npos);
  EXPECT_EQ(std::count(t.begin(), t.end(), '\n'), 5);
}

TEST(Report, ParetoFrontKeepsUndominatedPoints) {
  std::vector<PlotPoint> p{{10, 90, "a"}, {5, 91, "b"}, {7, 89, "c"}, {2, 80, "d"}, {20, 92, "e"}};
  auto f = pareto_front(p);
  std::vector<size_t> want{3, 1,
                           4};  // d (2, 80), b (5, 91), e (20, 92); a and c are dominated by b
  EXPECT_EQ(f, want);
}

TEST(Report, SvgEscapesLabels) {
  std::string svg = scatter_svg({{1, 2, "<a&b>"}}, {"t", "x", "y"});
  EXPECT_NE(svg.find("&lt;a&amp;b&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("<a&b>"), std::string::npos);
}

std::string chromium() {
  for (const char* c : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (fs::exists(c)) return c;
  return "";
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

int run_chromium(const std::string& args) {
  std::string cmd = "timeout 120 " + chromium() +
                    " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run "
                    "--hide-scrollbars " +
                    args;
  return std::system(cmd.c_str());
}

// The page loads without script errors, every plot is drawn, and a screenshot of it holds far
// more than a blank page of the same size.
TEST(Report, HtmlRendersInHeadlessChromium) {
  if (chromium().empty())
    GTEST_SKIP() << "chromium not installed (scripts/install-deps.sh installs it)";
  Runs runs;
  testing::TempDir out;
  std::string html = out.file("report.html");
  std::ofstream(html) << comparison_html(runs.entries(), "test report");
  std::ofstream(out.file("blank.html")) << "<!DOCTYPE html><html><body></body></html>";

  ASSERT_EQ(run_chromium("--dump-dom file://" + html + " > " + out.file("dom.html") + " 2> " +
                         out.file("err.txt")),
            0)
      << slurp(out.file("err.txt"));
  std::string dom = slurp(out.file("dom.html"));
  EXPECT_EQ(dom.find("data-errors"), std::string::npos) << dom.substr(0, 400);
  // 2 scatter plots + pruned widths + trp ranks (widths unchanged) + grda density = 5.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dom, m, std::regex("data-plots=\"(\\d+)\""))) << dom.substr(0, 400);
  EXPECT_EQ(std::stoi(m[1]), 5);
  ASSERT_TRUE(std::regex_search(dom, m, std::regex("data-marks=\"(\\d+)\"")));
  EXPECT_GT(std::stoi(m[1]), 8 + 4);  // 8 points + bars

  ASSERT_EQ(run_chromium("--window-size=1280,2400 --screenshot=" + out.file("shot.png") +
                         " file://" + html + " 2> " + out.file("err2.txt")),
            0)
      << slurp(out.file("err2.txt"));
  ASSERT_EQ(run_chromium("--window-size=1280,2400 --screenshot=" + out.file("blank.png") +
                         " file://" + out.file("blank.html") + " 2> /dev/null"),
            0);
  auto shot = fs::file_size(out.file("shot.png")), blank = fs::file_size(out.file("blank.png"));
  EXPECT_EQ(slurp(out.file("shot.png")).substr(1, 3), "PNG");
  EXPECT_GT(shot, 5 * blank) << "screenshot " << shot << " bytes, blank page " << blank;
}

TEST(ReportCli, WritesTableAndPage) {
  Runs runs;
  std::string out;
  std::string args = "report";
  for (const auto& d : runs.dirs) args += " " + d;
  ASSERT_EQ(testing::run_cli(args + " --out " + runs.root.file("r.html"), &out), 0) << out;
  EXPECT_NE(out.find("magnitude"), std::string::npos);
  EXPECT_TRUE(fs::exists(runs.root.file("r.html")));
  EXPECT_EQ(testing::run_cli("report", &out), 2);
  EXPECT_EQ(testing::run_cli("report " + runs.root.file("nope"), &out), 1);
}

}  // namespace
}  // namespace nnslim
