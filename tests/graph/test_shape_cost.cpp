// Shape inference, validation errors and the cost counter against hand formulas.
#include "nnslim/graph/cost.h"
#include "nnslim/graph/execute.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

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
