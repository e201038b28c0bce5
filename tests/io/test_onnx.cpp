// ONNX export and import. Exported files are run in an independent runtime (OpenCV's DNN module)
// and must compute what nnslim computes; imports of PyTorch's own exports must compute what
// PyTorch computed; zoo -> ONNX -> nnslim is the identity.
#include "nnslim/graph/builder.h"
#include "nnslim/graph/coupling.h"
#include "nnslim/graph/execute.h"
#include "nnslim/graph/factorize.h"
#include "nnslim/graph/fold.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/graph/shape.h"
#include "nnslim/graph/surgery.h"
#include "nnslim/io/onnx.h"
#include "nnslim/models/zoo.h"
#include "support/fixtures.h"
#include "support/onnx_checks.h"

#include <gtest/gtest.h>

#include <functional>

#ifdef NNSLIM_HAVE_ONNX
#include <onnx/onnx_pb.h>
#endif

#include <filesystem>
#include <fstream>

namespace nnslim {
namespace {

using testing::eval;
using testing::expect_close;
using testing::max_abs_diff;
using testing::read_floats;
#ifdef NNSLIM_HAVE_OPENCV
using testing::run_opencv;
#endif

#define REQUIRE_ONNX() \
  if (!onnx_available()) GTEST_SKIP() << "built without ONNX (libonnx-dev)"

// BN with non-trivial statistics and affine terms, so that folding is really exercised.
void randomize_bn(Graph& g, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& n : g.nodes) {
    if (n.op != Op::kBatchNorm2d) continue;
    auto c = n.params.at("weight").size(0);
    n.params.at("weight").copy_(torch::rand({c}) + 0.5);
    n.params.at("bias").copy_(torch::randn({c}) * 0.1);
    n.buffers.at("running_mean").copy_(torch::randn({c}) * 0.1);
    n.buffers.at("running_var").copy_(torch::rand({c}) + 0.5);
  }
}

torch::Tensor input_for(const Graph& g, int64_t batch = 2, uint64_t seed = 7) {
  torch::manual_seed(seed);
  return torch::randn({batch, g.input_shape[0], g.input_shape[1], g.input_shape[2]});
}

#ifdef NNSLIM_HAVE_OPENCV
// Exports `g`, runs the file in OpenCV and compares with nnslim's eval output. Debian's OpenCV
// 4.6 reads Clip only in its pre-opset-11 form (bounds as attributes), so graphs with ReLU6 are
// checked at opset 10; the opset-13 form of the same graphs is covered by the round trip.
void check_in_opencv(const Graph& g, const std::string& label, bool fold = true) {
  testing::TempDir dir;
  OnnxExportOptions opt;
  opt.fold_batchnorm = fold;
  for (const auto& n : g.nodes)
    if (n.op == Op::kReLU6) opt.opset = 10;
  export_onnx(g, dir.file("m.onnx"), opt);
  auto x = input_for(g);
  expect_close(eval(g, x), run_opencv(dir.file("m.onnx"), x), label);
}
#define REQUIRE_OPENCV() REQUIRE_ONNX()
#else
#define REQUIRE_OPENCV() \
  GTEST_SKIP() << "tests built without OpenCV's DNN module (libopencv-dnn-dev)"
void check_in_opencv(const Graph&, const std::string&, bool = true) {}
#endif

struct ZooCase {
  const char* model;
  std::vector<int64_t> input;
};

void PrintTo(const ZooCase& c, std::ostream* os) { *os << c.model; }  // readable test names

class OnnxZoo : public ::testing::TestWithParam<ZooCase> {};

TEST_P(OnnxZoo, ExportRunsInOpenCvWithTheSameOutputs) {
  REQUIRE_OPENCV();
  torch::manual_seed(1);
  Graph g = build_model(GetParam().model, GetParam().input, 10);
  randomize_bn(g, 2);
  check_in_opencv(g, GetParam().model, /*fold=*/true);
  check_in_opencv(g, std::string(GetParam().model) + " (BN kept)", /*fold=*/false);
}

TEST_P(OnnxZoo, RoundTripThroughOnnxIsTheIdentity) {
  REQUIRE_ONNX();
  torch::manual_seed(1);
  Graph g = build_model(GetParam().model, GetParam().input, 10);
  randomize_bn(g, 3);
  OnnxExportOptions opt;
  opt.fold_batchnorm = false;  // structure 1:1
  Graph back = import_onnx_bytes(export_onnx_bytes(g, opt), "round trip");
  auto x = input_for(g);
  EXPECT_EQ(max_abs_diff(eval(g, x), eval(back, x)), 0.0) << GetParam().model;
  // Dropout/Identity vanish at export; everything else maps node for node, parameters bitwise.
  size_t kept = 0;
  for (const auto& n : g.nodes) kept += n.op != Op::kDropout && n.op != Op::kIdentity;
  EXPECT_EQ(back.nodes.size(), kept);
  EXPECT_EQ(back.input_shape, g.input_shape);
  EXPECT_EQ(back.meta.at("classes"), "10");
  EXPECT_EQ(back.meta.at("model"), GetParam().model);
  for (const auto& n : back.nodes)
    for (const auto& [k, t] : n.params)
      EXPECT_TRUE(torch::equal(t, g.find(n.name)->params.at(k))) << n.name;
  // The imported graph trains: it has the same trainable tensors.
  EXPECT_EQ(back.parameters().size(), g.parameters().size());
  for (const auto& t : back.parameters()) EXPECT_TRUE(t.requires_grad());
}

INSTANTIATE_TEST_SUITE_P(
    AllZooModels, OnnxZoo,
    ::testing::Values(ZooCase{"lenet5", {1, 32, 32}}, ZooCase{"vgg16", {1, 32, 32}},
                      ZooCase{"resnet20", {1, 32, 32}}, ZooCase{"resnet32", {1, 32, 32}},
                      ZooCase{"resnet56", {1, 32, 32}}, ZooCase{"resnet110", {1, 32, 32}},
                      ZooCase{"resnet18", {3, 64, 64}}, ZooCase{"resnet50", {3, 64, 64}},
                      ZooCase{"mobilenetv2", {3, 32, 32}}),
    [](const auto& info) { return std::string(info.param.model); });

TEST(Onnx, FixtureWithEveryOpRunsInOpenCv) {
  REQUIRE_OPENCV();
  Graph g = testing::fixture_all_ops(4);
  randomize_bn(g, 5);
  check_in_opencv(g, "fixture_all_ops");
  check_in_opencv(g, "fixture_all_ops (BN kept)", false);
}

// Debian's OpenCV 4.6 cannot run, at a batch above 1, a Mul that broadcasts one activation against
// another (the [N,C,1,1] gate of squeeze-excitation: an assertion in its shape code), which
// onnxruntime and PyTorch's own exports take; every other new op runs there, on this graph. The
// gated form is covered by the round trips and the PyTorch fixtures below.
TEST(Onnx, SqueezeExcitationActivationsRunInOpenCv) {
  REQUIRE_OPENCV();
  torch::manual_seed(4);
  GraphBuilder b({3, 16, 16});
  int x = b.hardswish(b.bn(b.conv(b.input(), 8, 3, 2, 1, "stem"), "stem_bn"), "stem_act");
  int y = b.silu(b.bn(b.conv(x, 8, 1, 1, 0, "c1"), "c1_bn"), "c1_act");
  x = b.mul(x, b.sigmoid(y, "sig"), "mul");  // equal shapes
  x = b.maxpool(x, 3, 2, 0, "pool", /*ceil_mode=*/true);
  x = b.hardsigmoid(b.conv(x, 6, 3, 1, 1, "c2"), "hsig");
  x = b.avgpool(x, 3, 2, 1, "avg", /*ceil_mode=*/true);
  x = b.hardswish(b.linear(b.flatten(b.global_avgpool(x, "gap"), "flat"), 10, "fc1"), "fc1_act");
  Graph g = b.build(b.linear(x, 5, "fc"));
  g.find("hsig")->attrs.alpha = 0.2;
  randomize_bn(g, 5);
  check_in_opencv(g, "squeeze-excitation activations");
  check_in_opencv(g, "squeeze-excitation activations (BN kept)", false);
}

// The squeeze-excitation ops at every opset export writes: SiLU always and HardSwish below 14
// leave as x * act(x) and come back as one node; the function and the parameters are exact.
class OnnxSeOps : public ::testing::TestWithParam<int64_t> {};

TEST_P(OnnxSeOps, RoundTripThroughOnnxIsTheIdentity) {
  REQUIRE_ONNX();
  Graph g = testing::fixture_se_ops(3);
  randomize_bn(g, 3);
  g.find("b1.se.gate")->attrs.alpha = 0.2;  // not torch's: stays a HardSigmoid with its own
  OnnxExportOptions opt;
  opt.opset = GetParam();
  opt.fold_batchnorm = false;
  OnnxImportReport report;
  Graph back = import_onnx_bytes(export_onnx_bytes(g, opt), "round trip", {}, &report);
  auto x = input_for(g);
  EXPECT_EQ(max_abs_diff(eval(g, x), eval(back, x)), 0.0);
  ASSERT_EQ(back.nodes.size(), g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &a = g.nodes[i], &b = back.nodes[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.op, b.op) << a.name;
    EXPECT_EQ(a.attrs.ceil_mode, b.attrs.ceil_mode) << a.name;
    if (a.op == Op::kHardSigmoid) {
      EXPECT_NEAR(a.attrs.alpha, b.attrs.alpha, 1e-7) << a.name;
    }
    for (const auto& [k, t] : a.params) EXPECT_TRUE(torch::equal(t, b.params.at(k))) << a.name;
  }
  EXPECT_EQ(report.fused.at("Mul(x, Sigmoid(x)) -> silu"), 2);
  if (GetParam() < 14)
    EXPECT_EQ(report.fused.at("Mul(x, HardSigmoid(x)) -> hardswish"), 4);
  else
    EXPECT_EQ(report.mapped.at("HardSwish"), 4);
  // Folded BatchNorm: the same function up to rounding.
  expect_close(eval(g, x),
               eval(import_onnx_bytes(export_onnx_bytes(g, {GetParam(), true}), "f"), x), "folded");
}

INSTANTIATE_TEST_SUITE_P(Opsets, OnnxSeOps, ::testing::Values(10, 11, 13, 14, 17),
                         [](const auto& info) { return "opset" + std::to_string(info.param); });

TEST(Onnx, CeilModePoolingNeedsOpset10) {
  REQUIRE_ONNX();
  Graph g = testing::fixture_se_ops();
  try {
    export_onnx_bytes(g, {9, true});
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("'pool'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("opset 10"), std::string::npos) << msg;
  }
  for (auto& n : g.nodes) n.attrs.ceil_mode = false;
  EXPECT_NO_THROW(export_onnx_bytes(g, {9, true}));
}

TEST(Onnx, PrunedGraphExports) {
  REQUIRE_OPENCV();
  torch::manual_seed(1);
  Graph g = build_model("resnet20", {1, 32, 32}, 10);
  randomize_bn(g, 6);
  Coupling c = analyze_coupling(g);
  std::map<int, std::vector<int64_t>> keep;
  for (int id : c.prunable())
    for (int64_t k = 0; k < c.groups[id].channels; k += 2) keep[id].push_back(k);  // odd widths too
  Graph p = prune_groups(g, c, keep);
  check_in_opencv(p, "pruned resnet20");
}

TEST(Onnx, FactorisedGraphExports) {
  REQUIRE_OPENCV();
  torch::manual_seed(1);
  Graph g = build_model("resnet20", {1, 32, 32}, 10);
  randomize_bn(g, 7);
  const Scheme schemes[] = {Scheme::kChannel, Scheme::kSpatial, Scheme::kDecouple,
                            Scheme::kChannelIn};
  int i = 0;
  std::vector<int> convs;
  for (const auto& n : g.nodes)
    if (n.op == Op::kConv2d && n.params.at("weight").size(2) == 3) convs.push_back(n.id);
  for (int id : convs) factorize_conv(g, id, schemes[i++ % 4], 3);
  check_in_opencv(g, "factorised resnet20");
}

TEST(Onnx, SparseGraphExportsDense) {
  REQUIRE_OPENCV();
  torch::manual_seed(1);
  Graph g = build_model("resnet20", {1, 32, 32}, 10);
  {
    torch::NoGradGuard no_grad;
    for (auto& t : g.parameters())
      if (t.dim() > 1) t.mul_((torch::rand_like(t) > 0.9).to(t.dtype()));
  }
  check_in_opencv(g, "90% sparse resnet20");
}

TEST(Onnx, FoldBatchnormKeepsTheFunctionAndDropsTheBnNodes) {
  torch::manual_seed(1);
  Graph g = build_model("mobilenetv2", {3, 32, 32}, 10);
  randomize_bn(g, 8);
  Graph f = fold_batchnorm(g);
  for (const auto& n : f.nodes) EXPECT_NE(n.op, Op::kBatchNorm2d) << n.name;
  auto x = input_for(g);
  expect_close(eval(g, x), eval(f, x), "folded mobilenetv2");
  // The input graph is untouched.
  EXPECT_EQ(g.find("features.0.bn")->op, Op::kBatchNorm2d);
  EXPECT_LT(f.nodes.size(), g.nodes.size());
}

// ---- import of foreign files --------------------------------------------------------------

std::string fixture(const std::string& name) {
  return std::string(NNSLIM_SOURCE_DIR) + "/tests/fixtures/onnx/" + name;
}

TEST(OnnxImport, PytorchExportComputesWhatPytorchComputed) {
  REQUIRE_ONNX();
  Graph g = import_onnx(fixture("pytorch_small.onnx"));
  EXPECT_EQ(g.input_shape, (std::vector<int64_t>{3, 16, 16}));
  EXPECT_EQ(g.meta.at("classes"), "5");
  auto x = read_floats(fixture("pytorch_small.input.bin"), {2, 3, 16, 16});
  auto want = read_floats(fixture("pytorch_small.output.bin"), {2, 5});
  expect_close(want, eval(g, x), "pytorch_small");
  // It trains like a zoo model: a few steps on random data lower the loss.
  auto params = g.parameters();
  torch::optim::SGD sgd(params, torch::optim::SGDOptions(0.05).momentum(0.9));
  auto labels = torch::tensor({1, 3}, torch::kLong);
  double first = 0, last = 0;
  for (int i = 0; i < 20; ++i) {
    sgd.zero_grad();
    auto loss = torch::cross_entropy_loss(forward(g, x, Mode::kTrain), labels);
    loss.backward();
    sgd.step();
    (i == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, first);
}

// PyTorch 1.13 hands shared initializers to convs through Identity nodes, and a static-batch
// export without constant folding computes the flatten's shape with Unsqueeze and Concat: both
// are evaluated at import, and the model computes what PyTorch computed.
TEST(OnnxImport, ConstantSubgraphsAreFoldedAtImport) {
  REQUIRE_ONNX();
  for (const char* name : {"pytorch_shared_init", "pytorch_view_static_unfolded"}) {
    OnnxImportReport report;
    Graph g = import_onnx(fixture(std::string(name) + ".onnx"), {}, &report);
    auto x = read_floats(fixture(std::string(name) + ".input.bin"), {2, 3, 16, 16});
    auto want = read_floats(fixture(std::string(name) + ".output.bin"), {2, 5});
    expect_close(want, eval(g, x), name);
    EXPECT_FALSE(report.folded.empty()) << name;
    EXPECT_EQ(report.mapped.at("Conv"), 5) << name;
  }
  OnnxImportReport report;
  import_onnx(fixture("pytorch_shared_init.onnx"), {}, &report);
  EXPECT_EQ(report.folded.at("Identity"), 1);
  import_onnx(fixture("pytorch_view_static_unfolded.onnx"), {}, &report);
  EXPECT_EQ(report.folded.at("Unsqueeze"), 2);
  EXPECT_EQ(report.folded.at("Concat"), 1);
}

// Issue 28: small models from torchvision's own blocks (Conv2dNormActivation with Hardswish /
// SiLU, SqueezeExcitation gated by Hardsigmoid / Sigmoid, ceil-mode MaxPool2d and AvgPool2d,
// x.mean([2, 3]), a Fire module), exported by PyTorch at opsets 11, 13 and 14.
struct TorchvisionBlock {
  const char* name;
  int64_t size;
  int64_t classes;
};

void PrintTo(const TorchvisionBlock& c, std::ostream* os) { *os << c.name; }

class OnnxTorchvisionBlocks : public ::testing::TestWithParam<TorchvisionBlock> {};

TEST_P(OnnxTorchvisionBlocks, ImportComputesWhatPytorchComputed) {
  REQUIRE_ONNX();
  const auto& c = GetParam();
  const std::string name = c.name;
  OnnxImportReport report;
  Graph g = import_onnx(fixture(name + ".onnx"), {}, &report);
  EXPECT_EQ(g.input_shape, (std::vector<int64_t>{3, c.size, c.size}));
  EXPECT_EQ(g.meta.at("classes"), std::to_string(c.classes));
  auto x = read_floats(fixture(name + ".input.bin"), {2, 3, c.size, c.size});
  auto want = read_floats(fixture(name + ".output.bin"), {2, c.classes});
  expect_close(want, eval(g, x), name);
  // Structural pruning stays exact through these ops: zero half of every prunable group, cut
  // those channels, same output.
  Graph masked = g.clone();
  Coupling coupling = analyze_coupling(masked);
  ASSERT_FALSE(coupling.prunable().empty()) << name;
  std::map<int, std::vector<int64_t>> keep;
  for (int id : coupling.prunable()) {
    std::vector<int64_t> drop;
    for (int64_t k = 0; k < coupling.groups[id].channels; ++k)
      (k % 2 ? drop : keep[id]).push_back(k);
    zero_channels(masked, coupling, id, drop);
  }
  Graph pruned = prune_groups(masked, coupling, keep);
  expect_close(eval(masked, x), eval(pruned, x), name + " pruned");
  // And it round-trips through nnslim's own export.
  OnnxExportOptions opt;
  opt.fold_batchnorm = false;
  expect_close(eval(g, x), eval(import_onnx_bytes(export_onnx_bytes(g, opt), "again"), x),
               name + " re-exported");
}

INSTANTIATE_TEST_SUITE_P(
    PytorchExports, OnnxTorchvisionBlocks,
    ::testing::Values(TorchvisionBlock{"pytorch_mobilev3_block", 32, 5},
                      TorchvisionBlock{"pytorch_mobilev3_block_opset14", 32, 5},
                      TorchvisionBlock{"pytorch_efficient_block_opset11_unfolded", 24, 8},
                      TorchvisionBlock{"pytorch_fire_ceil_pool", 33, 5},
                      TorchvisionBlock{"pytorch_shuffle_block", 32, 5},
                      TorchvisionBlock{"pytorch_shuffle_block_opset11", 32, 5},
                      TorchvisionBlock{"pytorch_shuffle_block_opset17_unfolded", 32, 5},
                      TorchvisionBlock{"pytorch_convnext_block", 32, 5},
                      TorchvisionBlock{"pytorch_convnext_block_opset17", 32, 5},
                      TorchvisionBlock{"pytorch_convnext_block_opset11_unfolded", 32, 5},
                      TorchvisionBlock{"pytorch_convnext_block_fresh", 32, 5},
                      TorchvisionBlock{"pytorch_split_channels_opset11", 16, 5},
                      TorchvisionBlock{"pytorch_split_channels", 16, 5}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(OnnxImport, GatedActivationsAreFusedAndReduceMeanIsPooling) {
  REQUIRE_ONNX();
  auto ops = [](const Graph& g) {
    std::map<Op, int> count;
    for (const auto& n : g.nodes) ++count[n.op];
    return count;
  };
  OnnxImportReport report;
  auto mb = ops(import_onnx(fixture("pytorch_mobilev3_block.onnx"), {}, &report));
  // 5 Hardswish modules fused; the SE gate's HardSigmoid stays (its Mul reads another value).
  EXPECT_EQ(report.fused.at("Mul(x, HardSigmoid(x)) -> hardswish"), 5);
  EXPECT_EQ(mb[Op::kHardSwish], 5);
  EXPECT_EQ(mb[Op::kHardSigmoid], 1);
  EXPECT_EQ(mb[Op::kMul], 1);
  auto mb14 = ops(import_onnx(fixture("pytorch_mobilev3_block_opset14.onnx")));
  EXPECT_EQ(mb14, mb);
  auto ef = ops(import_onnx(fixture("pytorch_efficient_block_opset11_unfolded.onnx"), {}, &report));
  EXPECT_EQ(report.fused.at("Mul(x, Sigmoid(x)) -> silu"), 4);
  EXPECT_EQ(ef[Op::kSiLU], 4);
  EXPECT_EQ(ef[Op::kSigmoid], 2);  // the SE gate and the final nn.Sigmoid
  EXPECT_EQ(ef[Op::kMul], 1);
  EXPECT_EQ(ef[Op::kGlobalAvgPool], 2);  // the SE's pool and torch.mean(x, [2, 3], keepdim=True)
  auto fire = ops(import_onnx(fixture("pytorch_fire_ceil_pool.onnx"), {}, &report));
  EXPECT_EQ(report.mapped.at("ReduceMean"), 1);
  EXPECT_EQ(fire[Op::kGlobalAvgPool], 1);  // x.mean([2, 3]): pooling then a flatten
  EXPECT_EQ(fire[Op::kFlatten], 1);
  EXPECT_EQ(fire[Op::kMaxPool2d], 2);
  EXPECT_TRUE(report.fused.empty());
}

// ShuffleNet v2's blocks become channel_shuffle and slice_channels nodes; ConvNeXt's become
// layernorm2d, 1x1 convs (its Linear layers on NHWC, with their layer scale folded in) and gelu.
TEST(OnnxImport, ShuffleAndConvNextBlocksBecomeChannelOps) {
  REQUIRE_ONNX();
  auto ops = [](const Graph& g) {
    std::map<Op, int> count;
    for (const auto& n : g.nodes) ++count[n.op];
    return count;
  };
  for (const char* name : {"pytorch_shuffle_block", "pytorch_shuffle_block_opset11",
                           "pytorch_shuffle_block_opset17_unfolded"}) {
    OnnxImportReport report;
    Graph g = import_onnx(fixture(std::string(name) + ".onnx"), {}, &report);
    auto n = ops(g);
    EXPECT_EQ(n[Op::kChannelShuffle], 3) << name;
    EXPECT_EQ(n[Op::kSliceChannels], 4) << name;  // x.chunk(2, dim=1) in two stride-1 blocks
    EXPECT_EQ(n[Op::kConcat], 3) << name;
    EXPECT_EQ(report.fused.at("Reshape/Transpose/Reshape -> channel_shuffle"), 3) << name;
    // Every branch conv's outputs can be pruned through the shuffles and the slices.
    Coupling c = analyze_coupling(g);
    EXPECT_EQ(c.prunable().size(), 9u) << name;  // stem, 7 branch convs, conv5
  }
  // torch.split: Split with its sizes as an attribute (opset 11) or an input (13); x[:, 4:].
  for (const char* name : {"pytorch_split_channels_opset11", "pytorch_split_channels"}) {
    Graph g = import_onnx(fixture(std::string(name) + ".onnx"));
    std::vector<std::pair<int64_t, int64_t>> ranges;
    for (const auto& n : g.nodes)
      if (n.op == Op::kSliceChannels) ranges.emplace_back(n.attrs.start, n.attrs.end);
    EXPECT_EQ(ranges, (std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 8}, {4, 8}})) << name;
  }
  for (const char* name :
       {"pytorch_convnext_block", "pytorch_convnext_block_opset17",
        "pytorch_convnext_block_opset11_unfolded", "pytorch_convnext_block_fresh"}) {
    OnnxImportReport report;
    Graph g = import_onnx(fixture(std::string(name) + ".onnx"), {}, &report);
    auto n = ops(g);
    // The stem's, each block's, the downsampling's and the classifier's LayerNorm2d.
    EXPECT_EQ(n[Op::kLayerNorm2d], 5) << name;
    EXPECT_EQ(n[Op::kGELU], 2) << name;
    EXPECT_EQ(n[Op::kConv2d], 8) << name;  // stem, downsampling, 3 per block
    EXPECT_EQ(n[Op::kLinear], 1) << name;
    EXPECT_EQ(n[Op::kIdentity] + n[Op::kMul], 0) << name;  // the layer scales are folded
    EXPECT_EQ(report.fused.at("MatMul + Add -> conv2d (1x1)"), 4) << name;
    EXPECT_EQ(report.fused.at("Mul(conv, [C,1,1] constant) -> conv (layer scale folded)"), 2)
        << name;
    EXPECT_EQ(report.fused.at("Div/Erf/Add/Mul/Mul -> gelu"), 2) << name;
    if (std::string(name).find("opset17") == std::string::npos)
      EXPECT_EQ(
          report.fused.at("ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add -> layernorm2d"), 5)
          << name;
    else
      EXPECT_EQ(report.mapped.at("LayerNormalization"), 5) << name;
    // Only the blocks' hidden width (4C, between the 1x1 convs) is prunable; every channel the
    // LayerNorms read is not, and says why.
    Coupling c = analyze_coupling(g);
    EXPECT_EQ(c.prunable().size(), 2u) << name;
    for (const auto& group : c.groups)
      if (group.prunable) {
        EXPECT_EQ(group.channels % 32, 0) << name;
      }
    int layernorm = 0;
    for (const auto& group : c.groups)
      layernorm += group.why_not.find("layernorm over channels") != std::string::npos;
    EXPECT_EQ(layernorm, 2) << name;  // the 8- and 16-channel streams
  }
}

// OpenCV 4.6 runs ShuffleNet's shuffle (Reshape/Transpose/Reshape) and its channel slices as
// nnslim exports them; it cannot run ConvNeXt's LayerNorm in either ONNX form (a Div of two
// activations, LayerNormalization) nor the Gather of a pruned shuffle, which onnxruntime takes.
TEST(Onnx, ShuffleBlocksRunInOpenCv) {
  REQUIRE_OPENCV();
  torch::manual_seed(6);
  GraphBuilder b({3, 16, 16});
  int x = b.relu(b.bn(b.conv(b.input(), 8, 3, 2, 1, "stem"), "stem_bn"), "stem_act");
  int l = b.relu(b.conv(b.conv(x, 8, 3, 2, 1, "b1.dw", false, 8), 8, 1, 1, 0, "b1.pw"), "b1.a");
  int r = b.relu(b.bn(b.conv(x, 8, 3, 2, 1, "b2.conv"), "b2.bn"), "b2.a");
  x = b.channel_shuffle(b.concat({l, r}, "cat1"), 2, "shuffle1");
  int x2 = b.relu(b.conv(b.slice_channels(x, 8, 16, "x2"), 8, 1, 1, 0, "b3.pw"), "b3.a");
  x = b.channel_shuffle(b.concat({b.slice_channels(x, 0, 8, "x1"), x2}, "cat2"), 4, "shuffle2");
  Graph g = b.build(b.linear(b.flatten(b.global_avgpool(x, "gap"), "flat"), 5, "fc"));
  randomize_bn(g, 6);
  check_in_opencv(g, "shuffle blocks");
  check_in_opencv(g, "shuffle blocks (BN kept)", false);
}

// The channel ops at every opset export writes: exact, node for node, and pruned (a shuffle
// that is no longer regular leaves as a Gather and comes back as the same permutation).
class OnnxChannelOps : public ::testing::TestWithParam<int64_t> {};

TEST_P(OnnxChannelOps, RoundTripThroughOnnxIsTheIdentity) {
  REQUIRE_ONNX();
  Graph g = testing::fixture_channel_ops(3);
  randomize_bn(g, 3);
  g.find("cn.norm")->attrs.eps = 1e-6;
  OnnxExportOptions opt;
  opt.opset = GetParam();
  opt.fold_batchnorm = false;
  OnnxImportReport report;
  Graph back = import_onnx_bytes(export_onnx_bytes(g, opt), "round trip", {}, &report);
  auto x = input_for(g);
  EXPECT_EQ(max_abs_diff(eval(g, x), eval(back, x)), 0.0);
  ASSERT_EQ(back.nodes.size(), g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &a = g.nodes[i], &b = back.nodes[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.op, b.op) << a.name;
    EXPECT_EQ(a.attrs.perm, b.attrs.perm) << a.name;
    EXPECT_EQ(a.attrs.start, b.attrs.start) << a.name;
    EXPECT_EQ(a.attrs.end, b.attrs.end) << a.name;
    if (a.op == Op::kLayerNorm2d) {
      EXPECT_NEAR(a.attrs.eps, b.attrs.eps, 1e-12) << a.name;
    }
    for (const auto& [k, t] : a.params) EXPECT_TRUE(torch::equal(t, b.params.at(k))) << a.name;
  }
  // Pruned: keep every other channel of each prunable group.
  Coupling c = analyze_coupling(g);
  std::map<int, std::vector<int64_t>> keep;
  for (int id : c.prunable()) {
    std::vector<int64_t> drop;
    for (int64_t k = 0; k < c.groups[id].channels; ++k) (k % 2 ? drop : keep[id]).push_back(k);
    zero_channels(g, c, id, drop);
  }
  Graph pruned = prune_groups(g, c, keep);
  expect_close(eval(g, x), eval(pruned, x), "pruned");
  Graph pruned_back = import_onnx_bytes(export_onnx_bytes(pruned, opt), "pruned");
  EXPECT_EQ(max_abs_diff(eval(pruned, x), eval(pruned_back, x)), 0.0);
  EXPECT_EQ(pruned_back.find("s1.shuffle")->attrs.perm, pruned.find("s1.shuffle")->attrs.perm);
}

INSTANTIATE_TEST_SUITE_P(Opsets, OnnxChannelOps, ::testing::Values(9, 11, 13, 17),
                         [](const auto& info) { return "opset" + std::to_string(info.param); });

TEST(OnnxCli, ImportReportsFusedActivations) {
  REQUIRE_ONNX();
  testing::TempDir dir;
  std::string out;
  ASSERT_EQ(testing::run_cli("import " + fixture("pytorch_mobilev3_block.onnx") + " --out " +
                                 dir.file("m.nnslim"),
                             &out),
            0)
      << out;
  EXPECT_NE(out.find("fused: Mul(x, HardSigmoid(x)) -> hardswish x5"), std::string::npos) << out;
  EXPECT_NE(out.find("HardSigmoid x6"), std::string::npos) << out;
}

#ifdef NNSLIM_HAVE_ONNX
// Padded ceil-mode average pooling whose last window would start in the right padding: torch
// drops that window, a Pad + AveragePool(ceil_mode=1) keeps it. Export refuses to write it and
// import refuses to read it, rather than change the output size.
TEST(Onnx, PaddedCeilAvgPoolWithoutAnOnnxFormIsRefused) {
  REQUIRE_ONNX();
  GraphBuilder b({2, 5, 5});
  int x = b.avgpool(b.conv(b.input(), 2, 1, 1, 0, "c"), 2, 2, 1, "avg", /*ceil_mode=*/true);
  Graph g = b.build(x);
  EXPECT_EQ(infer_shapes(g).at(x), (Shape{2, 3, 3}));  // torch: 3, not 4
  try {
    export_onnx_bytes(g);
    ADD_FAILURE() << "exported";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("'avg'"), std::string::npos);
  }
  g.find("avg")->attrs.ceil_mode = false;
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(export_onnx_bytes(g)));
  for (auto& n : *m.mutable_graph()->mutable_node())
    if (n.op_type() == "AveragePool") {
      auto* a = n.add_attribute();
      a->set_name("ceil_mode");
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(1);
    }
  try {
    import_onnx_bytes(m.SerializeAsString(), "ceil.onnx");
    ADD_FAILURE() << "imported";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("right padding"), std::string::npos)
        << e.what_without_backtrace();
  }
}
#endif

#ifdef NNSLIM_HAVE_ONNX
// From opset 18 ReduceMean takes its axes as an input; other axes are refused, naming the node.
TEST(OnnxImport, ReduceMeanAxesAsAnInput) {
  REQUIRE_ONNX();
  std::ifstream f(fixture("pytorch_fire_ceil_pool.onnx"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  auto with_axes = [&](std::vector<int64_t> axes) {
    onnx::ModelProto m;
    EXPECT_TRUE(m.ParseFromString(bytes));
    m.mutable_opset_import(0)->set_version(18);
    for (auto& n : *m.mutable_graph()->mutable_node()) {
      if (n.op_type() != "ReduceMean") continue;
      n.clear_attribute();
      auto* keep = n.add_attribute();
      keep->set_name("keepdims");
      keep->set_type(onnx::AttributeProto::INT);
      keep->set_i(0);
      auto* t = m.mutable_graph()->add_initializer();
      t->set_name("mean_axes");
      t->set_data_type(onnx::TensorProto::INT64);
      t->add_dims(static_cast<int64_t>(axes.size()));
      for (int64_t a : axes) t->add_int64_data(a);
      n.add_input("mean_axes");
    }
    return m.SerializeAsString();
  };
  Graph g = import_onnx_bytes(with_axes({-1, -2}), "axes.onnx");
  auto x = read_floats(fixture("pytorch_fire_ceil_pool.input.bin"), {2, 3, 33, 33});
  auto want = read_floats(fixture("pytorch_fire_ceil_pool.output.bin"), {2, 5});
  expect_close(want, eval(g, x), "ReduceMean with an axes input");
  try {
    import_onnx_bytes(with_axes({1}), "axes.onnx");
    FAIL() << "a mean over channels was accepted";
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("(ReduceMean): only the mean over H and W"), std::string::npos) << msg;
  }
}
#endif

TEST(OnnxImport, UnsupportedNodesAreAllListed) {
  REQUIRE_ONNX();
  try {
    import_onnx(fixture("pytorch_view_flatten.onnx"));
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    for (const char* part : {"/Shape", "(Shape)", "/Gather", "(Gather)", "/Unsqueeze", "/Reshape"})
      EXPECT_NE(msg.find(part), std::string::npos) << part << " missing in: " << msg;
  }
}

TEST(OnnxImport, CorruptAndTruncatedFilesFailClearly) {
  REQUIRE_ONNX();
  std::ifstream f(fixture("pytorch_small.onnx"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  for (size_t cut : {bytes.size() / 2, size_t{7}}) {
    try {
      import_onnx_bytes(bytes.substr(0, cut), "cut.onnx");
      FAIL() << "truncated at " << cut << " should fail";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what_without_backtrace()).find("cut.onnx"), std::string::npos);
    }
  }
  EXPECT_THROW(import_onnx_bytes("this is not a protobuf \xff\xff\xff", "junk.onnx"), c10::Error);
  EXPECT_THROW(import_onnx("/nonexistent/model.onnx"), c10::Error);
}

// Values a graph cannot compute with are refused at import, naming the node.
TEST(OnnxImport, NonFiniteWeightsAndNegativeVarianceAreRefused) {
  REQUIRE_ONNX();
  OnnxExportOptions keep_bn;
  keep_bn.fold_batchnorm = false;
  auto refused = [&](Graph g, const std::string& expect) {
    try {
      import_onnx_bytes(export_onnx_bytes(g, keep_bn), "bad.onnx");
      ADD_FAILURE() << "accepted: " << expect;
    } catch (const c10::Error& e) {
      std::string msg = e.what_without_backtrace();
      EXPECT_NE(msg.find(expect), std::string::npos) << msg;
      EXPECT_NE(msg.find("bad.onnx"), std::string::npos) << msg;
    }
  };
  Graph g = build_model("lenet5", {1, 32, 32}, 10);
  g.find("conv1")->params.at("weight").detach().view({-1})[3] = NAN;
  refused(g, "NaN or Inf");
  Graph r = build_model("resnet20", {1, 32, 32}, 10);
  for (auto& n : r.nodes)
    if (n.op == Op::kBatchNorm2d) {
      n.buffers.at("running_var")[0] = -1.0;
      break;
    }
  refused(r, "var >= 0");
}

#ifdef NNSLIM_HAVE_ONNX
// Structurally broken models that parse: an opset no ONNX release has, a value written twice.
TEST(OnnxImport, UnknownOpsetAndDoublyWrittenValuesAreRefused) {
  REQUIRE_ONNX();
  auto bytes = export_onnx_bytes(build_model("lenet5", {1, 32, 32}, 10));
  auto refused = [&](const std::function<void(onnx::ModelProto&)>& edit,
                     const std::string& expect) {
    onnx::ModelProto m;
    ASSERT_TRUE(m.ParseFromString(bytes));
    edit(m);
    try {
      import_onnx_bytes(m.SerializeAsString(), "bad.onnx");
      ADD_FAILURE() << "accepted: " << expect;
    } catch (const c10::Error& e) {
      std::string msg = e.what_without_backtrace();
      EXPECT_NE(msg.find(expect), std::string::npos) << msg;
      EXPECT_NE(msg.find("bad.onnx"), std::string::npos) << msg;
    }
  };
  refused([](onnx::ModelProto& m) { m.mutable_opset_import(0)->set_version(99); }, "opset 99");
  refused(
      [](onnx::ModelProto& m) {
        auto* g = m.mutable_graph();
        g->mutable_node(1)->set_output(0, g->node(0).output(0));
      },
      "already defines");
  // The unedited model still imports.
  EXPECT_NO_THROW(import_onnx_bytes(bytes, "good.onnx"));
}
#endif

#ifdef NNSLIM_HAVE_ONNX
// Nodes without the inputs or outputs their op needs are refused naming the node and op, before
// anything reads them by position; negative Pads (cropping) are refused, not folded into a wrong
// padding (issue 31).
TEST(OnnxImport, MalformedNodesAndNegativePadsAreRefused) {
  REQUIRE_ONNX();
  auto bytes = export_onnx_bytes(build_model("lenet5", {1, 32, 32}, 10));
  auto refused = [&](const std::function<void(onnx::ModelProto&)>& edit,
                     const std::vector<std::string>& expect) {
    onnx::ModelProto m;
    ASSERT_TRUE(m.ParseFromString(bytes));
    edit(m);
    try {
      import_onnx_bytes(m.SerializeAsString(), "bad.onnx");
      ADD_FAILURE() << "accepted: " << expect[0];
    } catch (const c10::Error& e) {
      std::string msg = e.what_without_backtrace();
      for (const auto& part : expect) EXPECT_NE(msg.find(part), std::string::npos) << msg;
      EXPECT_NE(msg.find("bad.onnx"), std::string::npos) << msg;
    }
  };
  auto first = [](onnx::ModelProto& m, const char* op) {
    for (auto& n : *m.mutable_graph()->mutable_node())
      if (n.op_type() == op) return &n;
    throw std::runtime_error(std::string("no ") + op);
  };
  refused([&](onnx::ModelProto& m) { first(m, "Conv")->clear_output(); }, {"(Conv) has no output"});
  refused([&](onnx::ModelProto& m) { first(m, "Relu")->clear_input(); },
          {"(Relu) has 0 input(s); Relu needs at least 1"});
  refused(
      [&](onnx::ModelProto& m) {
        auto* c = first(m, "Conv");
        std::string x = c->input(0);
        c->clear_input();
        c->add_input(x);
      },
      {"(Conv) has 1 input(s); Conv needs at least 2"});
  // Ops only the pattern fusion reads (GELU and LayerNorm pieces), without their inputs.
  for (const char* op : {"Erf", "Sub", "Pow", "Div", "Sqrt", "ReduceMean"})
    refused(
        [&](onnx::ModelProto& m) {
          auto* n = m.mutable_graph()->add_node();
          n->set_op_type(op);
          n->set_name(std::string("lonely_") + op);
          n->add_output(std::string("out_") + op);
        },
        {std::string("node 'lonely_") + op + "' (" + op + ") has 0 input(s)"});
  // Pad(-1) then Conv: a crop, which no conv padding expresses.
  refused(
      [&](onnx::ModelProto& m) {
        auto* g = m.mutable_graph();
        auto* t = g->add_initializer();
        t->set_name("neg_pads");
        t->set_data_type(onnx::TensorProto::INT64);
        t->add_dims(8);
        for (int64_t v : {0, 0, -1, -1, 0, 0, -1, -1}) t->add_int64_data(v);
        auto* c = first(m, "Conv");
        auto* pad = g->add_node();
        pad->set_op_type("Pad");
        pad->set_name("crop");
        pad->add_input(c->input(0));
        pad->add_input("neg_pads");
        pad->add_output("cropped");
        for (int i = g->node_size() - 1; i > 0; --i) g->mutable_node()->SwapElements(i, i - 1);
        first(m, "Conv")->set_input(0, "cropped");
      },
      {"node 'crop' (Pad)", "negative pads (cropping) are not supported"});
  refused(
      [&](onnx::ModelProto& m) {
        auto* c = first(m, "Conv");
        for (auto& a : *c->mutable_attribute())
          if (a.name() == "pads")
            for (int i = 0; i < a.ints_size(); ++i) a.set_ints(i, -1);
      },
      {"(Conv)", "negative pads are not valid"});
  EXPECT_NO_THROW(import_onnx_bytes(bytes, "good.onnx"));
}
#endif

TEST(OnnxImport, InputShapeOverride) {
  REQUIRE_ONNX();
  torch::manual_seed(1);
  Graph g = build_model("resnet20", {1, 32, 32}, 10);
  auto bytes = export_onnx_bytes(g);
  // A fully convolutional body accepts another resolution when asked to.
  Graph other = import_onnx_bytes(bytes, "m.onnx", {{1, 48, 48}});
  EXPECT_EQ(other.input_shape, (std::vector<int64_t>{1, 48, 48}));
  EXPECT_EQ(eval(other, input_for(other)).sizes(), (std::vector<int64_t>{2, 10}));
}

TEST(OnnxCli, ExportImportRoundTrip) {
  REQUIRE_ONNX();
  testing::TempDir dir;
  torch::manual_seed(1);
  Graph g = testing::fixture_all_ops(3);
  save_graph(g, dir.file("m.nnslim"));
  std::string out;
  ASSERT_EQ(
      testing::run_cli("export " + dir.file("m.nnslim") + " --onnx " + dir.file("m.onnx"), &out), 0)
      << out;
  EXPECT_NE(out.find("BatchNorm folded"), std::string::npos) << out;
  ASSERT_EQ(
      testing::run_cli("import " + dir.file("m.onnx") + " --out " + dir.file("back.nnslim"), &out),
      0)
      << out;
  Graph back = load_graph(dir.file("back.nnslim"));
  auto x = input_for(g);
  expect_close(eval(g, x), eval(back, x), "cli round trip");
  // Refuses to overwrite without --force, and bad options are usage errors.
  EXPECT_EQ(
      testing::run_cli("import " + dir.file("m.onnx") + " --out " + dir.file("back.nnslim"), &out),
      2);
  EXPECT_EQ(
      testing::run_cli(
          "export " + dir.file("m.nnslim") + " --onnx " + dir.file("x.onnx") + " --opset 8", &out),
      2);
  EXPECT_EQ(
      testing::run_cli("import " + dir.file("m.nnslim") + " --out " + dir.file("y.nnslim"), &out),
      1);
  EXPECT_FALSE(std::filesystem::exists(dir.file("y.nnslim")));
}

}  // namespace
}  // namespace nnslim
