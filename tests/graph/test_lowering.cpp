// Inference rewrites (graph/lowering.h): a TRP channel-scheme factor pair merged back into one
// conv computes what the pair computed -- alone, with biases, channels-last, and in a whole
// factorised network -- and only true pairs are merged; the latency plan never edits the
// caller's graph.
#include "nnslim/graph/builder.h"
#include "nnslim/graph/execute.h"
#include "nnslim/graph/factorize.h"
#include "nnslim/graph/inference_plan.h"
#include "nnslim/graph/kernels/fused_pair.h"
#include "nnslim/graph/lowering.h"
#include "nnslim/graph/shape.h"
#include "nnslim/models/zoo.h"
#include "nnslim/report/latency.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

namespace nnslim {
namespace {

using testing::max_abs_diff;

// input -> kxk conv c->r (stride/padding/dilation given) -> 1x1 conv r->n -> relu
Graph pair_graph(int64_t c, int64_t r, int64_t n, int64_t k, int64_t stride, int64_t pad,
                 int64_t dil, bool bias1, bool bias2) {
  GraphBuilder b({c, 13, 11});
  int x = b.conv(b.input(), r, k, stride, pad, "first", bias1, 1, dil);
  int y = b.conv(x, n, 1, 1, 0, "second", bias2);
  Graph g = b.build(b.relu(y, "relu"), {{"classes", "1"}});
  torch::NoGradGuard ng;
  for (auto& node : g.nodes)
    if (node.params.count("bias")) node.params["bias"].uniform_(-0.5, 0.5);
  g.to(torch::kDouble);
  return g;
}

TEST(Lowering, MergedPairEqualsThePairForEveryKernelStridePaddingAndBias) {
  struct Case {
    int64_t c, r, n, k, stride, pad, dil;
    bool b1, b2;
  };
  const Case cases[] = {
      {16, 7, 16, 3, 1, 1, 1, false, true},  // TRP channel factors after BN folding
      {5, 3, 9, 3, 2, 1, 1, false, false},   // stride 2
      {4, 6, 5, 5, 1, 0, 1, true, true},     // bias on both
      {4, 2, 6, 3, 1, 2, 2, true, false},    // dilation 2
      {3, 3, 3, 1, 1, 0, 1, false, true},    // 1x1 then 1x1
  };
  torch::manual_seed(3);
  for (const auto& k : cases) {
    SCOPED_TRACE(::testing::Message() << k.c << "->" << k.r << "->" << k.n << " kernel " << k.k
                                      << " stride " << k.stride << " dilation " << k.dil);
    Graph g = pair_graph(k.c, k.r, k.n, k.k, k.stride, k.pad, k.dil, k.b1, k.b2);
    auto x = torch::randn({2, k.c, 13, 11}, torch::kDouble);
    torch::NoGradGuard ng;
    auto want = forward(g, x, Mode::kEval);
    auto pairs = mergeable_conv_pairs(g);
    ASSERT_EQ(pairs.size(), 1u);
    merge_conv_pair(g, pairs[0]);
    validate(g);
    EXPECT_EQ(g.nodes.size(), 2u);  // merged conv + relu
    EXPECT_EQ(g.find("first"), nullptr);
    ASSERT_NE(g.find("second"), nullptr);
    EXPECT_EQ(g.find("second")->params.at("weight").sizes(),
              (std::vector<int64_t>{k.n, k.c, k.k, k.k}));
    EXPECT_LT(max_abs_diff(forward(g, x, Mode::kEval), want), 1e-10);
  }
}

TEST(Lowering, ChannelsLastWeightsStayChannelsLast) {
  torch::manual_seed(4);
  Graph g = pair_graph(16, 6, 16, 3, 1, 1, 1, false, true);
  g.to(torch::kFloat);
  for (auto& n : g.nodes)
    if (n.op == Op::kConv2d)
      n.params["weight"] = n.params["weight"].contiguous(torch::MemoryFormat::ChannelsLast);
  auto x = torch::randn({1, 16, 13, 11}).contiguous(torch::MemoryFormat::ChannelsLast);
  torch::NoGradGuard ng;
  auto want = forward(g, x, Mode::kEval);
  merge_conv_pair(g, mergeable_conv_pairs(g).at(0));
  EXPECT_TRUE(
      g.find("second")->params.at("weight").is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_LT(max_abs_diff(forward(g, x, Mode::kEval), want), 1e-4);
}

TEST(Lowering, OnlyTruePairsAreMergeable) {
  torch::manual_seed(5);
  {  // the first conv has a second reader: merging would lose its value
    GraphBuilder b({4, 8, 8});
    int x = b.conv(b.input(), 3, 3, 1, 1, "first", false);
    int y = b.conv(x, 4, 1, 1, 0, "second", true);
    int z = b.conv(x, 4, 1, 1, 0, "third", true);
    Graph g = b.build(b.add({y, z}, "add"), {{"classes", "1"}});
    EXPECT_TRUE(mergeable_conv_pairs(g).empty());
    EXPECT_THROW(merged_conv(g, {g.find("first")->id, g.find("second")->id}), c10::Error);
  }
  {  // the second conv is not pointwise, or is strided, or grouped
    GraphBuilder b({4, 8, 8});
    int x = b.conv(b.input(), 4, 3, 1, 1, "a", false);
    int y = b.conv(x, 4, 3, 1, 1, "b", false);     // 3x3 after 3x3
    int z = b.conv(y, 4, 1, 2, 0, "c", false);     // strided 1x1
    int w = b.conv(z, 4, 1, 1, 0, "d", false, 2);  // grouped 1x1
    Graph g = b.build(w, {{"classes", "1"}});
    EXPECT_TRUE(mergeable_conv_pairs(g).empty());
  }
  {  // a ReLU between the convs
    GraphBuilder b({4, 8, 8});
    int x = b.relu(b.conv(b.input(), 3, 3, 1, 1, "first", false), "relu");
    Graph g = b.build(b.conv(x, 4, 1, 1, 0, "second", true), {{"classes", "1"}});
    EXPECT_TRUE(mergeable_conv_pairs(g).empty());
  }
}

TEST(Lowering, FactorisedResnetWithEveryPairMergedComputesTheSame) {
  torch::manual_seed(6);
  Graph g = build_model("resnet20", {1, 16, 16}, 10);
  for (const auto& name : {"layer1.0.conv1", "layer2.0.conv1", "layer2.1.conv2", "layer3.2.conv1"})
    factorize_conv(g, g.find(name)->id, Scheme::kChannel, 5);
  auto x = torch::randn({3, 1, 16, 16});
  torch::NoGradGuard ng;
  auto want = forward(g, x, Mode::kEval);
  auto pairs = mergeable_conv_pairs(g);
  ASSERT_EQ(pairs.size(),
            4u);  // exactly the factorised convs (downsample 1x1s read the block input)
  for (const auto& p : pairs) merge_conv_pair(g, p);
  validate(g);
  EXPECT_TRUE(mergeable_conv_pairs(g).empty());
  EXPECT_LT(max_abs_diff(forward(g, x, Mode::kEval), want), 1e-4);
}

TEST(Lowering, LatencyPlanNeverEditsTheCallersGraph) {
  Graph g = build_model("resnet20", {1, 16, 16}, 10);
  factorize_conv(g, g.find("layer1.1.conv1")->id, Scheme::kChannel, 4);
  const size_t nodes = g.nodes.size();
  LatencyOptions o;
  o.warmup = 1;
  o.min_runs = 2;
  o.min_seconds = 0;
  o.plan_factor_pairs = false;
  EXPECT_EQ(measure_latency(g, o).merged_conv_pairs, 0);
  o.plan_factor_pairs = true;
  auto on = measure_latency(g, o);
  EXPECT_TRUE(std::isfinite(on.median_ms) && on.median_ms > 0);
  EXPECT_LE(on.merged_conv_pairs, 1);
  EXPECT_EQ(g.nodes.size(), nodes);
  EXPECT_NE(g.find("layer1.1.conv1.0"), nullptr);
}

}  // namespace
}  // namespace nnslim

namespace nnslim {
namespace {

// The fused kernel (graph/kernels/fused_pair.h) against the two eager convs: ranks that are and are
// not multiples of its 4-output blocks, widths that are and are not multiples of its 8-pixel
// vectors, kernels 3x3/5x5/3x1/1x3 with and without padding, bias or none, batch > 1.
void expect_fused_equals_pair() {
  struct Case {
    int64_t c, r, n, kh, kw, ph, pw, h, w;
    bool bias;
  };
  const Case cases[] = {
      {16, 9, 16, 3, 3, 1, 1, 32, 32, true}, {16, 4, 16, 3, 3, 1, 1, 16, 16, true},
      {32, 1, 8, 3, 3, 1, 1, 13, 11, false}, {5, 7, 3, 5, 5, 2, 2, 9, 23, true},
      {4, 6, 5, 5, 5, 0, 0, 12, 17, true},   {6, 3, 6, 3, 1, 1, 0, 10, 7, false},
      {6, 5, 4, 1, 3, 0, 1, 7, 10, true},    {3, 2, 2, 3, 3, 2, 2, 5, 5, true},
  };
  torch::manual_seed(7);
  for (const auto& k : cases) {
    SCOPED_TRACE(::testing::Message()
                 << k.c << "->" << k.r << "->" << k.n << " kernel " << k.kh << "x" << k.kw
                 << " padding " << k.ph << "," << k.pw << " input " << k.h << "x" << k.w);
    auto x = torch::randn({3, k.c, k.h, k.w});
    auto w1 = torch::randn({k.r, k.c, k.kh, k.kw});
    auto w2 = torch::randn({k.n, k.r, 1, 1});
    auto b = k.bias ? torch::randn({k.n}) : torch::Tensor();
    ASSERT_TRUE(fused_pair_supports(x, w1, w2, {1, 1}, {k.ph, k.pw}, {1, 1}, 1));
    auto want = torch::conv2d(torch::conv2d(x, w1, {}, 1, {k.ph, k.pw}), w2, b);
    auto got = fused_pair(x, w1, w2, b, {k.ph, k.pw});
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LT(max_abs_diff(got, want), 1e-4 * (1 + want.abs().max().item<double>()));
  }
}

TEST(FusedPair, EqualsTheTwoConvs) { expect_fused_equals_pair(); }

// The portable loops (used where the CPU has no AVX2/FMA) give the same results.
TEST(FusedPair, PortablePathEqualsTheTwoConvs) {
  setenv("NNSLIM_FUSED_PORTABLE", "1", 1);
  expect_fused_equals_pair();
  unsetenv("NNSLIM_FUSED_PORTABLE");
}

TEST(FusedPair, RefusesWhatItCannotCompute) {
  auto x = torch::randn({1, 4, 8, 8});
  auto w1 = torch::randn({2, 4, 3, 3});
  auto w2 = torch::randn({4, 2, 1, 1});
  EXPECT_FALSE(fused_pair_supports(x, w1, w2, {2, 2}, {1, 1}, {1, 1}, 1));  // stride
  EXPECT_FALSE(fused_pair_supports(x, w1, w2, {1, 1}, {2, 2}, {2, 2}, 1));  // dilation
  EXPECT_FALSE(fused_pair_supports(x, w1, w2, {1, 1}, {3, 3}, {1, 1}, 1));  // padding >= kernel
  EXPECT_FALSE(fused_pair_supports(x.to(torch::kDouble), w1, w2, {1, 1}, {1, 1}, {1, 1}, 1));
  EXPECT_FALSE(fused_pair_supports(torch::randn({1, 3, 8, 8}), w1, w2, {1, 1}, {1, 1}, {1, 1}, 1));
  EXPECT_THROW(fused_pair(x, w1, w2, {}, {3, 3}), c10::Error);
}

// A fused node in a graph: the executor runs the kernel for contiguous inputs without autograd,
// and falls back to the two convs otherwise (channels-last input, grad mode) with the same
// result; a bias on the first conv is folded into the second's.
TEST(FusedPair, FusedNodeInAGraphComputesThePairEveryWay) {
  torch::manual_seed(8);
  Graph g = pair_graph(16, 6, 16, 3, 1, 1, 1, /*bias1=*/true, /*bias2=*/true);
  g.to(torch::kFloat);
  auto x = torch::randn({2, 16, 13, 11});
  torch::Tensor want;
  {
    torch::NoGradGuard ng;
    want = forward(g, x, Mode::kEval);
  }
  auto pairs = mergeable_conv_pairs(g);
  ASSERT_EQ(pairs.size(), 1u);
  ASSERT_TRUE(can_fuse_conv_pair(g, pairs[0]));
  fuse_conv_pair(g, pairs[0]);
  EXPECT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.find("second")->kernel, ConvKernel::kFusedPair);
  {
    torch::NoGradGuard ng;
    EXPECT_LT(max_abs_diff(forward(g, x, Mode::kEval), want), 1e-4);
    auto xl = x.contiguous(torch::MemoryFormat::ChannelsLast);
    EXPECT_LT(max_abs_diff(forward(g, xl, Mode::kEval), want), 1e-4);
  }
  EXPECT_LT(max_abs_diff(forward(g, x, Mode::kEval).detach(), want),
            1e-4);  // grad mode: eager path
}

TEST(FusedPair, StridedPairsAreNotFused) {
  Graph g = pair_graph(5, 3, 9, 3, 2, 1, 1, false, false);
  auto pairs = mergeable_conv_pairs(g);
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_FALSE(can_fuse_conv_pair(g, pairs[0]));
  EXPECT_THROW(fuse_conv_pair(g, pairs[0]), c10::Error);
  EXPECT_EQ(g.nodes.size(), 3u);
}

}  // namespace
}  // namespace nnslim
