// The unified kernel reached from the executor (ConvKernel::kUnified, graph/lowering.h): a model
// loaded from the compact unified file runs through it and computes the dense conv of the
// decoded weight; autograd, a changed weight or a saved file run dense; clones keep the choice.
#include "nnslim/graph/builder.h"
#include "nnslim/graph/execute.h"
#include "nnslim/graph/kernels/unified_conv.h"
#include "nnslim/graph/lowering.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/graph/unified_file.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

namespace nnslim {
namespace {

// One 8 -> 8 3x3 conv whose 1x4xK blocks are in turn pruned, unified (one magnitude, own
// signs) and free, listed as unified in the metadata (what the unify method leaves).
Graph unified_conv_graph() {
  torch::manual_seed(5);
  GraphBuilder b({8, 10, 10});
  Graph g = b.build(b.relu(b.conv(b.input(), 8, 3, 1, 1, "conv", /*bias=*/true), "relu"),
                    {{"classes", "1"}});
  torch::NoGradGuard ng;
  auto& w = g.nodes[0].params["weight"];
  BlockPartition part(w.sizes().vec(), {1, 4, 0});
  auto blocks = part.to_blocks(w).clone();
  for (int64_t i = 0; i < part.blocks(); ++i) {
    if (i % 3 == 0) blocks[i].zero_();
    if (i % 3 == 1) blocks[i].copy_(blocks[i].sign() * blocks[i][0].abs());
  }
  w.copy_(part.from_blocks(blocks));
  g.meta[kUnifyBlocksMeta] = "conv=" + part.block().str();
  return g;
}

TEST(UnifiedKernel, ForwardOfAModelLoadedFromTheCompactFileRunsTheUnifiedKernel) {
  testing::TempDir dir;
  Graph g = unified_conv_graph();
  save_unified(g, dir.file("m.unified.nnslim"));
  Graph back = load_unified(dir.file("m.unified.nnslim"));
  EXPECT_EQ(back.nodes[0].kernel, ConvKernel::kDense);  // loading alone changes nothing
  EXPECT_EQ(use_unified_kernels(back), 1);
  const Node& conv = back.nodes[0];
  EXPECT_EQ(conv.kernel, ConvKernel::kUnified);
  ASSERT_NE(unified_conv_of(conv), nullptr);
  const auto& layer = conv.kernel_data->unified_layer;
  EXPECT_GT(layer.count(BlockState::kUnified), 0);
  EXPECT_GT(layer.count(BlockState::kPruned), 0);
  EXPECT_GT(layer.count(BlockState::kFree), 0);

  auto x = torch::randn({2, 8, 10, 10});
  torch::NoGradGuard ng;
  const auto& bias = conv.params.at("bias");
  auto got = forward(back, x, Mode::kEval);
  // The executor ran the unified kernel (bit for bit what it computes)...
  EXPECT_TRUE(got.equal(torch::relu(unified_conv2d(x, layer, conv.attrs, bias))));
  // ...which is the dense conv of the decoded weight, within float rounding.
  auto dense = torch::relu(torch::conv2d(x, unified_to_weight(layer), bias, 1, 1));
  EXPECT_LT(testing::max_abs_diff(got, dense), 1e-5);
  EXPECT_LT(testing::max_abs_diff(got, forward(g, x, Mode::kEval)), 1e-5);
}

TEST(UnifiedKernel, RunsDenseUnderAutogradOrOnceTheWeightChangedAndIsNeverSaved) {
  testing::TempDir dir;
  Graph g = unified_conv_graph();
  ASSERT_EQ(use_unified_kernels(g), 1);
  auto x = torch::randn({1, 8, 10, 10});
  // Autograd: the dense weight is used, so gradients reach it.
  auto out = forward(g, x, Mode::kEval);
  out.sum().backward();
  EXPECT_TRUE(g.nodes[0].params.at("weight").grad().defined());
  // A clone keeps the kernel, for its own (copied) weight.
  Graph copy = g.clone();
  EXPECT_EQ(copy.nodes[0].kernel, ConvKernel::kUnified);
  EXPECT_NE(unified_conv_of(copy.nodes[0]), nullptr);
  // Files never hold the choice.
  save_graph(g, dir.file("m.nnslim"));
  EXPECT_EQ(load_graph(dir.file("m.nnslim")).nodes[0].kernel, ConvKernel::kDense);
  // A weight changed in place (an optimizer step): stale, the conv runs dense on the new weight.
  torch::NoGradGuard ng;
  auto& w = copy.nodes[0].params["weight"];
  w.add_(0.5);
  EXPECT_EQ(unified_conv_of(copy.nodes[0]), nullptr);
  auto want = torch::relu(torch::conv2d(x, w, copy.nodes[0].params["bias"], 1, 1));
  EXPECT_LT(testing::max_abs_diff(forward(copy, x, Mode::kEval), want), 1e-5);
  // A layer that is not the conv's weight is refused.
  EXPECT_THROW(
      use_unified_kernel(copy.nodes[0], unified_from_weight(torch::randn({8, 8, 3, 3}), {1, 4, 0})),
      c10::Error);
}

TEST(UnifiedKernel, CloneKeepsASparseKernelToo) {
  GraphBuilder b({3, 8, 8});
  Graph g = b.build(b.conv(b.input(), 4, 3, 1, 1, "conv", /*bias=*/true), {{"classes", "1"}});
  torch::NoGradGuard ng;
  g.nodes[0].params["weight"].masked_fill_(torch::rand({4, 3, 3, 3}) < 0.8, 0);
  sparsify_conv(g.nodes[0], SparseConvKernel::kIm2colCsr);
  Graph copy = g.clone();
  auto s = sparse_conv_of(copy.nodes[0]);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->kernel, SparseConvKernel::kIm2colCsr);
  auto x = torch::randn({1, 3, 8, 8});
  EXPECT_LT(testing::max_abs_diff(forward(copy, x, Mode::kEval), forward(g, x, Mode::kEval)), 1e-6);
}

}  // namespace
}  // namespace nnslim
