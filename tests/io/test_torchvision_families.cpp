// Issue 28: every CNN family of torchvision's classification zoo, as PyTorch itself exports it.
// tests/torchvision/export_families.py builds a small member of each family from torchvision's
// own classes and exports it at opsets 11 to 17, with and without constant folding (ctest runs
// it first, as the fixture `torchvision_exports`, into build/torchvision-exports). For each
// family:
//   - every export imports and computes what PyTorch computed on the same input;
//   - the plain export (opset 13, folded) prunes by magnitude to half of its MACs, and the pruned
//     graph computes exactly what the masked original computes;
//   - the imported and the pruned graph export back to ONNX (ONNX's checker runs inside the
//     export) and OpenCV's DNN module computes what nnslim computes, except where Debian's
//     OpenCV 4.6 lacks an op (named below).
#include "nnslim/graph/cost.h"
#include "nnslim/graph/coupling.h"
#include "nnslim/graph/surgery.h"
#include "nnslim/io/onnx.h"
#include "nnslim/methods/importance.h"
#include "nnslim/methods/pruning_plan.h"
#include "support/fixtures.h"
#include "support/onnx_checks.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace nnslim {
namespace {

using testing::eval;
using testing::expect_close;
using testing::read_floats;

// The families export_families.py writes (its FAMILIES, in its order).
const std::vector<std::string>& families() {
  static const std::vector<std::string> names = {"alexnet",
                                                 "vgg_bn",
                                                 "resnet_basic",
                                                 "resnet_bottleneck",
                                                 "wide_resnet",
                                                 "resnext",
                                                 "squeezenet1_0",
                                                 "squeezenet1_1",
                                                 "densenet",
                                                 "googlenet",
                                                 "inception_v3",
                                                 "mobilenet_v2",
                                                 "mobilenet_v3_small",
                                                 "mobilenet_v3_large",
                                                 "efficientnet",
                                                 "efficientnet_v2",
                                                 "mnasnet",
                                                 "shufflenet_v2",
                                                 "regnet_x",
                                                 "regnet_y",
                                                 "convnext"};
  return names;
}

struct Export {
  std::string stem, family;
  int64_t opset = 0;
  bool folded = true;
  int64_t size = 0, classes = 0;
};

// The exports' folder (the environment variable of that name overrides the build's), "" when it
// holds no manifest yet.
std::string exports_dir() {
  const char* env = std::getenv("NNSLIM_TORCHVISION_EXPORTS");
  std::string dir = env ? env : NNSLIM_TORCHVISION_EXPORTS;
  return std::ifstream(dir + "/manifest.tsv").good() ? dir : "";
}

std::vector<Export> read_manifest(const std::string& dir) {
  std::ifstream f(dir + "/manifest.tsv");
  std::vector<Export> rows;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    std::istringstream in(line);
    Export e;
    int folded = 1;
    in >> e.stem >> e.family >> e.opset >> folded >> e.size >> e.classes;
    e.folded = folded != 0;
    rows.push_back(e);
  }
  return rows;
}

#define REQUIRE_EXPORTS()                                                                      \
  if (!onnx_available()) GTEST_SKIP() << "built without ONNX (libonnx-dev)";                   \
  if (exports_dir().empty())                                                                   \
  GTEST_SKIP() << "no torchvision exports yet: run through ctest, which exports the families " \
                  "first (tests/torchvision/export_families.py)"

// The manifest lists exactly the families above, each at opsets 11-17, folded and not.
TEST(TorchvisionFamilies, ExportsCoverEveryFamilyAtEveryOpset) {
  REQUIRE_EXPORTS();
  std::map<std::string, std::set<std::pair<int64_t, bool>>> seen;
  for (const auto& e : read_manifest(exports_dir())) seen[e.family].insert({e.opset, e.folded});
  std::set<std::string> want(families().begin(), families().end()), got;
  for (const auto& [family, variants] : seen) {
    got.insert(family);
    EXPECT_EQ(variants.size(), 14u) << family;
  }
  EXPECT_EQ(got, want);
}

class TorchvisionFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchvisionFamily, ImportsAtEveryOpsetAndComputesWhatPytorchComputed) {
  REQUIRE_EXPORTS();
  const std::string dir = exports_dir();
  int variants = 0;
  for (const auto& e : read_manifest(dir)) {
    if (e.family != GetParam()) continue;
    ++variants;
    OnnxImportReport report;
    Graph g = import_onnx(dir + "/" + e.stem + ".onnx", {}, &report);
    EXPECT_EQ(g.input_shape, (std::vector<int64_t>{3, e.size, e.size})) << e.stem;
    EXPECT_EQ(g.meta.at("classes"), std::to_string(e.classes)) << e.stem;
    auto x = read_floats(dir + "/" + e.family + ".input.bin", {2, 3, e.size, e.size});
    auto want = read_floats(dir + "/" + e.family + ".output.bin", {2, e.classes});
    ASSERT_TRUE(x.defined() && want.defined());
    expect_close(want, eval(g, x), e.stem);
    EXPECT_GT(report.mapped.at("Conv"), 0) << e.stem;
  }
  EXPECT_EQ(variants, 14);
}

// Debian's OpenCV 4.6 cannot run ConvNeXt's LayerNorm (either ONNX form) nor the Gather that a
// pruned channel shuffle exports as (docs/RESULTS.md, torchvision coverage).
bool opencv_runs(const std::string& family, bool pruned) {
  return family != "convnext" && !(pruned && family == "shufflenet_v2");
}

#ifdef NNSLIM_HAVE_OPENCV
void expect_opencv_agrees(const Graph& g, const torch::Tensor& x, const std::string& label) {
  testing::TempDir tmp;
  OnnxExportOptions opt;
  for (const auto& n : g.nodes)  // OpenCV 4.6 reads Clip only in its opset-10 form
    if (n.op == Op::kReLU6) opt.opset = 10;
  export_onnx(g, tmp.file("m.onnx"), opt);
  // One image: OpenCV 4.6 broadcasts squeeze-excitation's [N,C,1,1] gate only at batch 1.
  auto one = x.slice(0, 0, 1);
  expect_close(eval(g, one), testing::run_opencv(tmp.file("m.onnx"), one), label + " in OpenCV");
}
#endif

TEST_P(TorchvisionFamily, PrunesToHalfTheMacsExactlyAndExportsBack) {
  REQUIRE_EXPORTS();
  const std::string family = GetParam(), dir = exports_dir();
  const std::string stem = family + "_op13";  // the plain call users make
  Graph g = import_onnx(dir + "/" + stem + ".onnx");
  const int64_t size = g.input_shape[1];
  auto x = read_floats(dir + "/" + family + ".input.bin", {2, 3, size, size});
  ASSERT_TRUE(x.defined());

  // Magnitude pruning (L1, per group) to half of the MACs, as `nnslim compress --method
  // magnitude --target-macs 0.5` plans it; masked first, then cut.
  Coupling coupling = analyze_coupling(g);
  ASSERT_FALSE(coupling.prunable().empty()) << family;
  auto scores = channel_importance(g, coupling, Criterion::kL1);
  KeepPlan plan = plan_for_macs(g, coupling, scores, 0.5, PlanOptions{});
  Graph masked = g.clone();
  for (const auto& [id, keep] : plan) {
    std::set<int64_t> kept(keep.begin(), keep.end());
    std::vector<int64_t> drop;
    for (int64_t k = 0; k < coupling.groups[id].channels; ++k)
      if (!kept.count(k)) drop.push_back(k);
    zero_channels(masked, coupling, id, drop);
  }
  Graph pruned = prune_groups(masked, coupling, plan);
  const double fraction = static_cast<double>(count_cost(pruned).macs) / count_cost(g).macs;
  EXPECT_NEAR(fraction, 0.5, 0.01) << family;
  expect_close(eval(masked, x), eval(pruned, x), family + " pruned vs masked");

  // Back to ONNX (checked by ONNX's checker inside the export) and into nnslim again.
  OnnxExportOptions keep_bn;
  keep_bn.fold_batchnorm = false;
  for (const Graph* graph : {&g, &pruned}) {
    const std::string label = family + (graph == &pruned ? " pruned" : " imported");
    Graph back = import_onnx_bytes(export_onnx_bytes(*graph, keep_bn), label);
    expect_close(eval(*graph, x), eval(back, x), label + " re-imported");
#ifdef NNSLIM_HAVE_OPENCV
    if (opencv_runs(family, graph == &pruned)) expect_opencv_agrees(*graph, x, label);
#endif
  }
}

INSTANTIATE_TEST_SUITE_P(PytorchExports, TorchvisionFamily, ::testing::ValuesIn(families()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace nnslim
