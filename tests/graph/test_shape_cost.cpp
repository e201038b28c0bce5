// Shape inference, validation errors and the cost counter against hand formulas.
#include "nnslim/graph/cost.h"
#include "nnslim/graph/execute.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace nnslim {
namespace {

void expect_error_contains(const std::function<void()>& f, const std::string& text) {
  try {
    f();
    ADD_FAILURE() << "no error, expected one containing: " << text;
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(Shape, InferredShapesMatchExecution) {
  Graph g = testing::fixture_all_ops();
  auto shapes = infer_shapes(g);
  // Run every node and compare its real output shape.
  std::map<int, torch::Tensor> vals{{kGraphInput, torch::randn({2, 2, 8, 8})}};
  for (const auto& n : g.nodes) {
    std::vector<torch::Tensor> ins;
    for (int i : n.inputs) ins.push_back(vals.at(i));
    vals[n.id] = run_node(n, ins, Mode::kEval);
    auto real = vals[n.id].sizes().vec();
    real.erase(real.begin());
    EXPECT_EQ(real, shapes.at(n.id)) << n.name;
  }
}

TEST(Shape, SqueezeExcitationFixtureShapesMatchExecution) {
  Graph g = testing::fixture_se_ops();
  auto shapes = infer_shapes(g);
  std::map<int, torch::Tensor> vals{{kGraphInput, torch::randn({2, 3, 16, 16})}};
  for (const auto& n : g.nodes) {
    std::vector<torch::Tensor> ins;
    for (int i : n.inputs) ins.push_back(vals.at(i));
    vals[n.id] = run_node(n, ins, Mode::kEval);
    auto real = vals[n.id].sizes().vec();
    real.erase(real.begin());
    EXPECT_EQ(real, shapes.at(n.id)) << n.name;
  }
  EXPECT_EQ(shapes.at(g.find("pool")->id), (Shape{8, 4, 4}));  // 3x3 in floor mode
  EXPECT_EQ(shapes.at(g.find("avg")->id), (Shape{12, 3, 3}));  // 2x2 in floor mode
}

TEST(Shape, ChannelOpsFixtureShapesMatchExecution) {
  Graph g = testing::fixture_channel_ops();
  auto shapes = infer_shapes(g);
  std::map<int, torch::Tensor> vals{{kGraphInput, torch::randn({2, 3, 16, 16})}};
  for (const auto& n : g.nodes) {
    std::vector<torch::Tensor> ins;
    for (int i : n.inputs) ins.push_back(vals.at(i));
    vals[n.id] = run_node(n, ins, Mode::kEval);
    auto real = vals[n.id].sizes().vec();
    real.erase(real.begin());
    EXPECT_EQ(real, shapes.at(n.id)) << n.name;
  }
  EXPECT_EQ(shapes.at(g.find("s2.x2")->id), (Shape{8, 4, 4}));
  EXPECT_EQ(shapes.at(g.find("s2.shuffle")->id), (Shape{16, 4, 4}));
}

TEST(Shape, ChannelOpsCheckTheirAttributes) {
  auto broken = [](const std::function<void(Node&)>& edit) {
    Graph g = testing::fixture_channel_ops();
    for (auto& n : g.nodes)
      if (n.name == "s1.shuffle" || n.name == "s2.x2" || n.name == "cn.norm") edit(n);
    return g;
  };
  expect_error_contains(
      [&] {
        validate(broken([](Node& n) {
          if (n.op == Op::kChannelShuffle) n.attrs.perm[0] = n.attrs.perm[1];
        }));
      },
      "node 's1.shuffle' (channel_shuffle): perm must be a permutation");
  expect_error_contains(
      [&] {
        validate(broken([](Node& n) {
          if (n.op == Op::kChannelShuffle) n.attrs.perm.pop_back();
        }));
      },
      "perm has 15 entries for 16 channels");
  expect_error_contains(
      [&] {
        validate(broken([](Node& n) {
          if (n.op == Op::kSliceChannels) n.attrs.end = 17;
        }));
      },
      "node 's2.x2' (slice_channels): channels [8, 17) are not a non-empty range of 16");
  expect_error_contains(
      [&] {
        validate(broken([](Node& n) {
          if (n.op == Op::kLayerNorm2d) n.params["bias"] = torch::zeros({3});
        }));
      },
      "node 'cn.norm' (layernorm2d): bias must have shape [8]");
}

// torch's pooling_output_shape, including "the last window starts inside the input or its left
// padding", on every small case against torch's own kernels.
TEST(Shape, CeilModePoolSizesAreTorchs) {
  for (int64_t in = 1; in <= 12; ++in)
    for (int64_t k = 1; k <= 4; ++k)
      for (int64_t s = 1; s <= 3; ++s)
        for (int64_t p = 0; 2 * p <= k; ++p)
          for (bool ceil : {false, true}) {
            const int64_t want = pool_out(in, k, s, p, ceil);
            if (in + 2 * p < k) {
              EXPECT_EQ(want, 0) << in << " " << k << " " << s << " " << p;
              continue;
            }
            auto x = torch::zeros({1, 1, in, in});
            auto got = torch::max_pool2d(x, k, s, p, 1, ceil).size(2);
            EXPECT_EQ(want, got) << "in " << in << " k " << k << " s " << s << " p " << p
                                 << " ceil " << ceil;
            EXPECT_EQ(torch::avg_pool2d(x, k, s, p, ceil).size(2), got);
          }
}

TEST(Shape, MulTakesEqualShapesOrAChannelGate) {
  GraphBuilder b({4, 6, 6});
  int x = b.conv(b.input(), 4, 1, 1, 0, "x");
  int gate = b.sigmoid(b.global_avgpool(x, "pool"), "gate");
  EXPECT_EQ(b.shape(b.mul(x, gate, "xg")), (Shape{4, 6, 6}));
  EXPECT_EQ(b.shape(b.mul(gate, x, "gx")), (Shape{4, 6, 6}));
  EXPECT_EQ(b.shape(b.mul(x, x, "xx")), (Shape{4, 6, 6}));
  EXPECT_EQ(b.shape(b.hardswish(b.flatten(x, "flat"), "hs")), (Shape{144}));
  Graph g = b.build(x);
  GraphBuilder bad({4, 6, 6});
  int y = bad.conv(bad.input(), 4, 1, 1, 0, "y");
  int other = bad.conv(bad.input(), 3, 1, 1, 0, "other");
  expect_error_contains([&] { bad.mul(y, other, "bad"); },
                        "node 'bad' (mul): inputs must have equal shapes or be CxHxW and Cx1x1");
  g.nodes.push_back(g.nodes.back());
  g.nodes.back().op = Op::kMul;
  g.nodes.back().name = "one_input";
  g.nodes.back().id = g.next_id++;
  g.nodes.back().params.clear();
  expect_error_contains([&] { validate(g); }, "node 'one_input' (mul): takes exactly two inputs");
}

TEST(Shape, ErrorsNameTheNode) {
  Graph g = testing::tiny_convnet();
  g.find("conv2")->params["weight"] = torch::randn({6, 5, 3, 3});
  expect_error_contains([&] { validate(g); }, "node 'conv2' (conv2d): weight expects 5 input");

  g = testing::tiny_convnet();
  g.find("bn2")->buffers.erase("running_var");
  expect_error_contains([&] { validate(g); }, "node 'bn2' (batchnorm2d): missing buffer");

  g = testing::tiny_convnet();
  g.find("fc")->inputs = {g.find("gap")->id};
  expect_error_contains([&] { validate(g); }, "node 'fc' (linear): expects a flat input");

  g = testing::tiny_convnet();
  g.find("pool")->inputs = {999};
  expect_error_contains([&] { validate(g); }, "node 'pool' (maxpool2d): input 999 is not defined");

  g = testing::tiny_convnet();
  g.find("relu2")->name = "relu1";
  expect_error_contains([&] { validate(g); }, "duplicate node name 'relu1'");

  g = testing::tiny_convnet();
  g.find("conv1")->attrs.stride = {0, 1};
  expect_error_contains([&] { validate(g); }, "stride must be two integers >= 1");

  GraphBuilder b({1, 4, 4});
  int a = b.conv(b.input(), 2, 1, 1, 0, "a");
  int c = b.conv(b.input(), 3, 1, 1, 0, "c");
  expect_error_contains([&] { b.add({a, c}, "bad_add"); }, "node 'bad_add' (add): inputs must");
}

// Sizes a file can set are bounded (issue 31): absurd input shapes, paddings, dilations and
// momenta are refused by name instead of overflowing the size arithmetic.
TEST(Shape, AbsurdSizesAreRefused) {
  Graph g = testing::tiny_convnet();
  g.input_shape = {1, int64_t(1) << 30, int64_t(1) << 30};
  expect_error_contains([&] { validate(g); },
                        "graph input shape 1x1073741824x1073741824: every "
                        "dimension must be in [1, 16777216]");
  g.input_shape = {4096, 4096, 4096};
  expect_error_contains([&] { validate(g); }, "has more than 2^32 entries");
  g.input_shape = {1, -8, 8};
  expect_error_contains([&] { validate(g); }, "every dimension must be in [1,");

  g = testing::tiny_convnet();
  g.find("conv1")->attrs.padding = {int64_t(1) << 40, 1};
  expect_error_contains(
      [&] { validate(g); },
      "node 'conv1' (conv2d): padding must be two integers >= 0 and <= 65536, got "
      "[1099511627776, 1]");
  g = testing::tiny_convnet();
  g.find("conv1")->attrs.dilation = {1, int64_t(1) << 62};
  expect_error_contains([&] { validate(g); }, "node 'conv1' (conv2d): dilation must be two");
  g = testing::tiny_convnet();
  g.find("conv1")->attrs.groups = int64_t(1) << 40;
  expect_error_contains([&] { validate(g); }, "node 'conv1' (conv2d): groups must be in");
  g = testing::tiny_convnet();
  g.find("pool")->attrs.kernel = {int64_t(1) << 50, 2};
  expect_error_contains([&] { validate(g); }, "node 'pool' (maxpool2d): kernel must be two");
  g = testing::tiny_convnet();
  g.find("bn1")->attrs.momentum = std::nan("");
  expect_error_contains([&] { validate(g); }, "node 'bn1' (batchnorm2d): momentum must be in");
  g = testing::tiny_convnet();
  g.find("bn1")->attrs.eps = std::numeric_limits<double>::infinity();
  expect_error_contains([&] { validate(g); }, "node 'bn1' (batchnorm2d): eps must be finite");
  // A padding that keeps every dimension in bounds but blows a value up past 2^32 entries.
  g = testing::tiny_convnet();
  g.find("conv1")->attrs.padding = {30000, 30000};
  expect_error_contains([&] { validate(g); }, "node 'conv1' (conv2d): output ");
}

TEST(Cost, ConvAndLinearHandFormulas) {
  GraphBuilder b({3, 10, 10});
  int x = b.conv(b.input(), 8, 3, 2, 1, "c1", true);  // out 8x5x5
  x = b.conv(x, 8, 3, 1, 1, "dw", false, 8);          // depthwise, 8x5x5
  x = b.bn(x, "bn");
  x = b.flatten(x, "f");
  Graph g = b.build(b.linear(x, 4, "fc"));
  auto r = count_cost(g);
  int64_t c1 = 8 * 5 * 5 * 3 * 3 * 3, dw = 8 * 5 * 5 * (8 / 8) * 3 * 3, fc = 200 * 4;
  EXPECT_EQ(r.nodes[0].macs, c1);
  EXPECT_EQ(r.nodes[1].macs, dw);
  EXPECT_EQ(r.nodes[2].macs, 0);  // BN is not counted
  EXPECT_EQ(r.nodes[4].macs, fc);
  EXPECT_EQ(r.macs, c1 + dw + fc);
  int64_t params = (8 * 3 * 9 + 8) + (8 * 9) + (8 + 8) + (200 * 4 + 4);
  EXPECT_EQ(r.params, params);  // running statistics excluded
}

TEST(Cost, ElementwiseOpsCountNoMacsAndCeilPoolsSizeTheConvAfterThem) {
  Graph g = testing::fixture_se_ops();
  auto r = count_cost(g);
  for (const auto& c : r.nodes) {
    if (c.op != Op::kConv2d && c.op != Op::kLinear) {
      EXPECT_EQ(c.macs, 0) << c.name;
    }
  }
  // b2.expand runs on the 4x4 output of the ceil-mode pool: 12 x 8 weights at 16 positions.
  for (const auto& c : r.nodes) {
    if (c.name == "b2.expand") {
      EXPECT_EQ(c.macs, 12 * 8 * 4 * 4);
    }
  }
}

TEST(Cost, ChannelOpsCountNoMacsAndLayerNormCountsItsAffineTerms) {
  Graph g = testing::fixture_channel_ops();
  auto r = count_cost(g);
  for (const auto& c : r.nodes) {
    if (c.op == Op::kChannelShuffle || c.op == Op::kSliceChannels || c.op == Op::kGELU) {
      EXPECT_EQ(c.macs, 0) << c.name;
      EXPECT_EQ(c.params, 0) << c.name;
    }
    if (c.op == Op::kLayerNorm2d) {
      EXPECT_EQ(c.macs, 0);
      EXPECT_EQ(c.params, 16);  // weight and bias over 8 channels
    }
    if (c.name == "cn.pw1") {
      EXPECT_EQ(c.macs, 32 * 8 * 8 * 8);
    }
  }
}

TEST(Cost, NonzeroCountsAreSeparate) {
  Graph g = testing::tiny_convnet();
  auto before = count_cost(g);
  {
    torch::NoGradGuard ng;
    g.find("conv2")->params["weight"].narrow(0, 0, 2).zero_();  // 2 of 6 filters
  }
  auto after = count_cost(g);
  EXPECT_EQ(after.macs, before.macs);
  EXPECT_EQ(after.params, before.params);
  int64_t removed = 2 * 4 * 9;
  EXPECT_EQ(before.nonzero_params - after.nonzero_params, removed);
  EXPECT_EQ(before.nonzero_macs - after.nonzero_macs, removed * 4 * 4);  // 4x4 output positions
}

}  // namespace
}  // namespace nnslim
