// Sparse convolution (graph/kernels/sparse_conv.h): both kernels compute what torch::conv2d
// computes with the same weights (kernels, strides, paddings, dilations, biases, batches, all-zero
// filters, no zeros at all); the executor runs a sparsified conv with them and falls back to dense
// under autograd or for channels-last input; the latency plan picks by time and never edits the
// caller's graph.
#include "nnslim/graph/builder.h"
#include "nnslim/graph/execute.h"
#include "nnslim/graph/inference_plan.h"
#include "nnslim/graph/kernels/sparse_conv.h"
#include "nnslim/graph/lowering.h"
#include "nnslim/models/zoo.h"
#include "nnslim/report/latency.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

namespace nnslim {
namespace {

using testing::max_abs_diff;

torch::Tensor sparse_weight(int64_t n, int64_t c, int64_t kh, int64_t kw, double zeros) {
  auto w = torch::randn({n, c, kh, kw});
  return w.masked_fill_(torch::rand(w.sizes()) < zeros, 0);
}

TEST(SparseConv, CsrHoldsTheNonzerosRowByRowInIm2colOrder) {
  auto w = torch::zeros({2, 2, 2, 3});
  w[0][1][1][2] = 5.f;  // column (1 * 2 + 1) * 3 + 2 = 11
  w[0][0][0][1] = 2.f;  // column 1
  // filter 1 is all zero
  auto s = to_sparse_conv_weight(w);
  EXPECT_EQ(s.out_channels, 2);
  EXPECT_EQ(s.in_channels, 2);
  EXPECT_EQ(s.kh, 2);
  EXPECT_EQ(s.kw, 3);
  EXPECT_TRUE(s.row_ptr.equal(torch::tensor({0, 2, 2}, torch::kLong)));
  EXPECT_TRUE(s.cols.equal(torch::tensor({1, 11}, torch::kInt)));
  EXPECT_TRUE(s.values.equal(torch::tensor({2.f, 5.f})));
  EXPECT_DOUBLE_EQ(zero_fraction(w), 22.0 / 24.0);
}

TEST(SparseConv, BothKernelsEqualDenseConvForEveryShapeStridePaddingDilationAndBias) {
  struct Case {
    int64_t b, c, n, kh, kw, sh, sw, ph, pw, dh, dw, h, w;
    double zeros;
    bool bias;
  };
  const Case cases[] = {
      {1, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 32, 32, 0.9, false},  // resnet20 stage 1, BN folded away
      {1, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 5, 45, 0.6, true},      // rows of 32 + 8 + 5 outputs
      {3, 16, 32, 3, 3, 2, 2, 1, 1, 1, 1, 17, 15, 0.9, true},   // stride 2, odd sizes, batch 3
      {2, 8, 5, 1, 1, 2, 2, 0, 0, 1, 1, 9, 9, 0.5, true},       // strided 1x1 downsample
      {1, 4, 6, 5, 5, 1, 1, 2, 2, 1, 1, 7, 8, 0.8, true},       // 5x5
      {2, 3, 4, 3, 1, 1, 1, 1, 0, 1, 1, 6, 5, 0.3, false},      // 3x1, padding on one axis
      {1, 4, 4, 3, 3, 1, 2, 2, 1, 2, 1, 9, 9, 0.7, true},       // dilation, mixed stride
      {1, 4, 4, 3, 3, 2, 1, 1, 2, 1, 2, 9, 20, 0.7,
       true},  // vertical stride, AVX2 direct, dilation
      {2, 3, 5, 3, 3, 1, 1, 2, 2, 2, 2, 11, 37, 0.5, false},  // dilation 2 on the AVX2 path
      {1, 512, 8, 3, 3, 1, 1, 1, 1, 1, 1, 2, 2, 0.98, true},  // vgg16's last stage: 2x2 maps
      {2, 5, 3, 3, 3, 1, 1, 0, 0, 1, 1, 4, 4, 0.0, true},     // no zeros at all
      {1, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, 4, 4, 1.0, true},     // all zero: output = bias
  };
  torch::manual_seed(5);
  torch::NoGradGuard ng;
  for (const auto& k : cases) {
    SCOPED_TRACE(::testing::Message() << k.c << "->" << k.n << " kernel " << k.kh << "x" << k.kw
                                      << " stride " << k.sh << "," << k.sw << " zeros " << k.zeros);
    auto x = torch::randn({k.b, k.c, k.h, k.w});
    auto w = sparse_weight(k.n, k.c, k.kh, k.kw, k.zeros);
    auto bias = k.bias ? torch::randn({k.n}) : torch::Tensor();
    auto want = torch::conv2d(x, w, bias, {k.sh, k.sw}, {k.ph, k.pw}, {k.dh, k.dw});
    auto s = to_sparse_conv_weight(w);
    for (const char* portable : {"0", "1"})  // AVX2 (where the CPU has it) and portable loops
      for (auto kernel : {SparseConvKernel::kDirect, SparseConvKernel::kIm2colCsr}) {
        SCOPED_TRACE(::testing::Message() << to_string(kernel) << " portable " << portable);
        setenv("NNSLIM_SPARSE_PORTABLE", portable, 1);
        auto got = sparse_conv2d(x, s, bias, {k.sh, k.sw}, {k.ph, k.pw}, {k.dh, k.dw}, kernel);
        ASSERT_EQ(got.sizes(), want.sizes());
        EXPECT_LT(max_abs_diff(got, want), 1e-4 * (1 + want.abs().max().item<double>()));
      }
    unsetenv("NNSLIM_SPARSE_PORTABLE");
  }
}

TEST(SparseConv, SupportsOnlyWhatTheKernelsCompute) {
  auto w = torch::randn({4, 3, 3, 3});
  auto x = torch::randn({1, 3, 8, 8});
  EXPECT_TRUE(sparse_conv_supports(x, w, 1));
  EXPECT_FALSE(sparse_conv_supports(x, w, 3));  // grouped
  EXPECT_FALSE(sparse_conv_supports(
      torch::randn({1, 3, 8, 8}).contiguous(torch::MemoryFormat::ChannelsLast), w, 1));
  EXPECT_FALSE(sparse_conv_supports(x.to(torch::kDouble), w.to(torch::kDouble), 1));
  EXPECT_FALSE(sparse_conv_supports(torch::randn({1, 2, 8, 8}), w, 1));  // channels
  auto s = to_sparse_conv_weight(w);
  EXPECT_THROW(
      sparse_conv2d(torch::randn({1, 2, 8, 8}), s, {}, {1}, {1}, {1}, SparseConvKernel::kDirect),
      c10::Error);
  EXPECT_THROW(
      sparse_conv2d(torch::randn({1, 3, 1, 1}), s, {}, {1}, {0}, {1}, SparseConvKernel::kDirect),
      c10::Error);  // smaller than the kernel
  // Integer division alone would make this one output row, read past the input (dense conv
  // rejects it too).
  EXPECT_THROW(
      sparse_conv2d(torch::randn({1, 3, 2, 8}), s, {}, {2}, {0}, {1}, SparseConvKernel::kDirect),
      c10::Error);
  EXPECT_THROW(sparse_conv2d(x, s, {}, {0}, {1}, {1}, SparseConvKernel::kDirect),
               c10::Error);  // stride 0
}

TEST(SparseConv, AStaleSparseFormIsNeverUsed) {
  // A conv sparsified, then its weight changed in place (an optimizer step) or replaced (BN
  // folding, surgery): the executor must compute with the weight as it is now.
  GraphBuilder b({3, 8, 8});
  Graph g = b.build(b.conv(b.input(), 4, 3, 1, 1, "conv", /*bias=*/true), {{"classes", "1"}});
  auto x = torch::randn({1, 3, 8, 8});
  torch::NoGradGuard ng;
  Node& conv = g.nodes[0];
  conv.params["weight"].masked_fill_(torch::rand(conv.params["weight"].sizes()) < 0.8, 0);
  sparsify_conv(conv, SparseConvKernel::kDirect);
  ASSERT_TRUE(sparse_conv_of(conv).has_value());
  conv.params["weight"].mul_(2);
  EXPECT_FALSE(sparse_conv_of(conv).has_value());
  auto want = torch::conv2d(x, conv.params["weight"], conv.params["bias"], 1, 1);
  EXPECT_LT(max_abs_diff(forward(g, x, Mode::kEval), want), 1e-5);
  sparsify_conv(conv, SparseConvKernel::kIm2colCsr);
  ASSERT_TRUE(sparse_conv_of(conv).has_value());
  conv.params["weight"] = torch::randn({4, 3, 3, 3});
  EXPECT_FALSE(sparse_conv_of(conv).has_value());
  want = torch::conv2d(x, conv.params["weight"], conv.params["bias"], 1, 1);
  EXPECT_LT(max_abs_diff(forward(g, x, Mode::kEval), want), 1e-5);
}

// resnet20 with every conv weight 90% zeros (as gRDA leaves it).
Graph sparse_resnet20(int64_t size = 32) {
  torch::manual_seed(11);
  Graph g = build_model("resnet20", {1, size, size}, 10);
  torch::NoGradGuard ng;
  for (auto& n : g.nodes)
    if (n.op == Op::kConv2d)
      n.params["weight"].masked_fill_(torch::rand(n.params["weight"].sizes()) < 0.9, 0);
  return g;
}

TEST(SparseConv, ExecutorRunsSparsifiedConvsAndFallsBackToDenseUnderAutograd) {
  Graph g = sparse_resnet20();
  auto x = torch::randn({2, 1, 32, 32});
  torch::Tensor want;
  {
    torch::NoGradGuard ng;
    want = forward(g, x, Mode::kEval);
  }
  Graph direct = g.clone(), csr = g.clone();
  int sparsified = 0;
  for (auto& n : direct.nodes)
    if (can_sparsify_conv(n)) {
      sparsify_conv(n, SparseConvKernel::kDirect);
      sparsify_conv(csr.node(n.id), SparseConvKernel::kIm2colCsr);
      ++sparsified;
    }
  EXPECT_EQ(sparsified, 21);  // 19 3x3 convs + 2 downsample 1x1s
  auto kernel = sparse_conv_of(*direct.find("layer1.0.conv1"));
  ASSERT_TRUE(kernel.has_value());
  EXPECT_EQ(kernel->kernel, SparseConvKernel::kDirect);
  {
    torch::NoGradGuard ng;
    EXPECT_LT(max_abs_diff(forward(direct, x, Mode::kEval), want), 1e-4);
    EXPECT_LT(max_abs_diff(forward(csr, x, Mode::kEval), want), 1e-4);
  }
  // Channels-last input (the sparse kernels need NCHW) runs dense.
  {
    torch::NoGradGuard ng;
    auto nhwc = x.contiguous(torch::MemoryFormat::ChannelsLast);
    EXPECT_LT(max_abs_diff(forward(direct, nhwc, Mode::kEval), want), 1e-4);
  }
  // With autograd the dense weight is used, so gradients reach it.
  auto out = forward(direct, x, Mode::kEval);
  EXPECT_TRUE(out.requires_grad());
  EXPECT_LT(max_abs_diff(out.detach(), want), 1e-4);
  out.sum().backward();
  EXPECT_TRUE(direct.find("layer1.0.conv1")->params.at("weight").grad().defined());
}

// One 64 -> 64 3x3 conv at 32x32 with 99.5% zeros (~3 nonzeros per filter against 576): the
// sparse kernels do ~1% of dense's work, a margin no timing noise closes.
Graph very_sparse_conv() {
  torch::manual_seed(2);
  GraphBuilder b({64, 32, 32});
  Graph g = b.build(b.relu(b.conv(b.input(), 64, 3, 1, 1, "conv"), "relu"), {{"classes", "1"}});
  {
    torch::NoGradGuard ng;
    auto& w = g.nodes[0].params["weight"];
    w.masked_fill_(torch::rand(w.sizes()) < 0.995, 0);
  }
  return g;
}

TEST(SparseConv, LatencyPlanPicksSparseWhereItIsFarFaster) {
  Graph g = very_sparse_conv();
  LatencyOptions o;
  o.warmup = 1;
  o.min_runs = 3;
  o.min_seconds = 0;
  o.memory_format = LatencyOptions::Format::kContiguous;
  Graph planned = g.clone();
  EXPECT_EQ(plan_sparse_convs(planned, torch::randn({1, 64, 32, 32}), o), 1);
  EXPECT_TRUE(sparse_conv_of(planned.nodes[0]).has_value());
  EXPECT_EQ(measure_latency(g, o).sparse_convs, 1);
}

TEST(SparseConv, LatencyPlanKeepsTheFunctionAndNeverEditsTheCallersGraph) {
  Graph g = sparse_resnet20(16);
  auto x = torch::randn({1, 1, 16, 16});
  LatencyOptions o;
  o.warmup = 1;
  o.min_runs = 2;
  o.min_seconds = 0;
  // Dense models are not planned at all (no candidate has >= 50% zeros).
  Graph dense = build_model("resnet20", {1, 16, 16}, 10);
  EXPECT_EQ(plan_sparse_convs(dense, x, o), 0);
  Graph planned = g.clone();
  const int64_t n = plan_sparse_convs(planned, x, o);
  EXPECT_GE(n, 0);
  EXPECT_LE(n, 21);
  int64_t marked = 0;
  for (const auto& node : planned.nodes) marked += sparse_conv_of(node).has_value();
  EXPECT_EQ(marked, n);
  {
    torch::NoGradGuard ng;
    EXPECT_LT(max_abs_diff(forward(planned, x, Mode::kEval), forward(g, x, Mode::kEval)), 1e-4);
  }
  o.plan_sparse_convs = false;
  EXPECT_EQ(measure_latency(g, o).sparse_convs, 0);
  o.plan_sparse_convs = true;
  auto r = measure_latency(g, o);
  EXPECT_TRUE(std::isfinite(r.median_ms) && r.median_ms > 0);
  for (const auto& node : g.nodes) EXPECT_FALSE(sparse_conv_of(node).has_value()) << node.name;
}

}  // namespace
TEST(SparseConv, PlanInferenceAppliesOnlyTheEnabledPlans) {
  // With the sparse plan on the conv runs sparse; with both plans off the graph is left alone.
  Graph g = very_sparse_conv();
  auto x = torch::randn({1, 64, 32, 32});
  LatencyOptions o;
  o.warmup = 1;
  o.min_runs = 3;
  o.min_seconds = 0;
  Graph on = g.clone();
  const auto plan = plan_inference(on, x, o);
  EXPECT_EQ(plan.sparse_convs, 1);
  EXPECT_EQ(plan.changes(), plan.pairs.merged + plan.pairs.fused + 1);
  EXPECT_TRUE(sparse_conv_of(on.nodes[0]).has_value());
  o.plan_sparse_convs = false;
  o.plan_factor_pairs = false;
  Graph off = g.clone();
  EXPECT_EQ(plan_inference(off, x, o).changes(), 0);
  EXPECT_FALSE(sparse_conv_of(off.nodes[0]).has_value());
}

}  // namespace nnslim
