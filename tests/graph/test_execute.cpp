// Every op of the graph executor against torch's functional result, and train/eval semantics.
#include "nnslim/graph/builder.h"
#include "nnslim/graph/execute.h"
#include "nnslim/models/zoo.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

namespace nnslim {
namespace {

using testing::max_abs_diff;

Node make(Op op, std::vector<int> inputs = {kGraphInput}) {
  Node n;
  n.op = op;
  n.name = "n";
  n.inputs = std::move(inputs);
  return n;
}

TEST(Execute, ConvMatchesTorch) {
  torch::manual_seed(1);
  auto x = torch::randn({2, 4, 9, 7}, torch::kDouble);
  Node n = make(Op::kConv2d);
  n.attrs.stride = {2, 1};
  n.attrs.padding = {1, 2};
  n.attrs.dilation = {1, 2};
  n.attrs.groups = 2;
  n.params["weight"] = torch::randn({6, 2, 3, 3}, torch::kDouble);
  n.params["bias"] = torch::randn({6}, torch::kDouble);
  auto want = torch::conv2d(x, n.params["weight"], n.params["bias"], {2, 1}, {1, 2}, {1, 2}, 2);
  EXPECT_LT(max_abs_diff(run_node(n, {x}, Mode::kEval), want), 1e-12);
}

TEST(Execute, BatchNormEvalAndTrain) {
  torch::manual_seed(2);
  auto x = torch::randn({4, 3, 5, 5}, torch::kDouble);
  Node n = make(Op::kBatchNorm2d);
  n.params["weight"] = torch::rand({3}, torch::kDouble);
  n.params["bias"] = torch::randn({3}, torch::kDouble);
  n.buffers["running_mean"] = torch::randn({3}, torch::kDouble);
  n.buffers["running_var"] = torch::rand({3}, torch::kDouble) + 0.5;
  auto rm = n.buffers["running_mean"].clone(), rv = n.buffers["running_var"].clone();
  auto want_eval =
      torch::batch_norm(x, n.params["weight"], n.params["bias"], rm, rv, false, 0.1, 1e-5, false);
  EXPECT_LT(max_abs_diff(run_node(n, {x}, Mode::kEval), want_eval), 1e-12);
  auto want_train =
      torch::batch_norm(x, n.params["weight"], n.params["bias"], rm, rv, true, 0.1, 1e-5, false);
  EXPECT_LT(max_abs_diff(run_node(n, {x}, Mode::kTrain), want_train), 1e-12);
  // Running statistics are updated in place in train mode, exactly as torch does.
  EXPECT_LT(max_abs_diff(n.buffers["running_mean"], rm), 1e-12);
  EXPECT_LT(max_abs_diff(n.buffers["running_var"], rv), 1e-12);
}

TEST(Execute, ElementwiseAndPoolingOps) {
  torch::manual_seed(3);
  auto x = torch::randn({2, 3, 8, 8}, torch::kDouble) * 5;
  EXPECT_EQ(max_abs_diff(run_node(make(Op::kReLU), {x}, Mode::kEval), torch::relu(x)), 0);
  EXPECT_LT(max_abs_diff(run_node(make(Op::kReLU6), {x}, Mode::kEval), x.clamp(0, 6)), 1e-15);
  Node mp = make(Op::kMaxPool2d);
  mp.attrs.kernel = {3, 3};
  mp.attrs.stride = {2, 2};
  mp.attrs.padding = {1, 1};
  EXPECT_LT(max_abs_diff(run_node(mp, {x}, Mode::kEval), torch::max_pool2d(x, 3, 2, 1)), 1e-15);
  Node ap = mp;
  ap.op = Op::kAvgPool2d;
  EXPECT_LT(max_abs_diff(run_node(ap, {x}, Mode::kEval), torch::avg_pool2d(x, 3, 2, 1)), 1e-12);
  EXPECT_LT(max_abs_diff(run_node(make(Op::kGlobalAvgPool), {x}, Mode::kEval),
                         torch::adaptive_avg_pool2d(x, {1, 1})),
            1e-12);
  EXPECT_TRUE(run_node(make(Op::kFlatten), {x}, Mode::kEval).equal(x.reshape({2, -1})));
  EXPECT_TRUE(run_node(make(Op::kIdentity), {x}, Mode::kEval).equal(x));
  auto y = torch::randn_like(x), z = torch::randn_like(x);
  EXPECT_LT(max_abs_diff(run_node(make(Op::kAdd, {0, 1, 2}), {x, y, z}, Mode::kEval), x + y + z),
            1e-12);
  EXPECT_TRUE(
      run_node(make(Op::kConcat, {0, 1}), {x, y}, Mode::kEval).equal(torch::cat({x, y}, 1)));
}

TEST(Execute, SqueezeExcitationOpsMatchTorch) {
  torch::manual_seed(4);
  auto x = torch::randn({2, 3, 7, 7}, torch::kDouble) * 5;
  auto run = [&](const Node& n, std::vector<torch::Tensor> in) {
    return run_node(n, in, Mode::kEval);
  };
  EXPECT_LT(max_abs_diff(run(make(Op::kSigmoid), {x}), torch::sigmoid(x)), 1e-15);
  EXPECT_LT(max_abs_diff(run(make(Op::kHardSigmoid), {x}), (x / 6 + 0.5).clamp(0, 1)), 1e-15);
  Node hs = make(Op::kHardSigmoid);  // ONNX's defaults
  hs.attrs.alpha = 0.2;
  hs.attrs.beta = 0.5;
  EXPECT_LT(max_abs_diff(run(hs, {x}), (x * 0.2 + 0.5).clamp(0, 1)), 1e-15);
  EXPECT_LT(max_abs_diff(run(make(Op::kHardSwish), {x}), x * (x + 3).clamp(0, 6) / 6), 1e-14);
  EXPECT_LT(max_abs_diff(run(make(Op::kSiLU), {x}), x * torch::sigmoid(x)), 1e-14);
  auto gate = torch::rand({2, 3, 1, 1}, torch::kDouble), y = torch::randn_like(x);
  EXPECT_TRUE(run(make(Op::kMul, {0, 1}), {x, gate}).equal(x * gate));
  EXPECT_TRUE(run(make(Op::kMul, {0, 1}), {gate, x}).equal(x * gate));
  EXPECT_TRUE(run(make(Op::kMul, {0, 1}), {x, y}).equal(x * y));
  // Ceil-mode pooling, torch's own kernels (7x7: the last window is a partial one).
  Node mp = make(Op::kMaxPool2d);
  mp.attrs.kernel = {3, 3};
  mp.attrs.stride = {2, 2};
  mp.attrs.padding = {0, 0};
  mp.attrs.ceil_mode = true;
  auto m = run(mp, {x});
  EXPECT_EQ(m.sizes(), (std::vector<int64_t>{2, 3, 3, 3}));
  EXPECT_TRUE(m.equal(torch::max_pool2d(x, 3, 2, 0, 1, true)));
  Node ap = mp;
  ap.op = Op::kAvgPool2d;
  ap.attrs.kernel = {2, 2};
  ap.attrs.padding = {1, 1};
  EXPECT_TRUE(run(ap, {x}).equal(torch::avg_pool2d(x, 2, 2, 1, true, true)));
}

TEST(Execute, ShuffleNetAndConvNextOpsMatchTorch) {
  torch::manual_seed(5);
  auto x = torch::randn({2, 6, 3, 4}, torch::kDouble) * 3;
  auto run = [&](const Node& n, std::vector<torch::Tensor> in) {
    return run_node(n, in, Mode::kEval);
  };
  // torchvision's channel_shuffle: view [N, g, C/g, H, W], transpose(1, 2), flatten.
  GraphBuilder b({6, 3, 4});
  Graph g = b.build(b.channel_shuffle(b.input(), 3, "shuffle"));
  const Node& shuffle = g.nodes.back();
  EXPECT_EQ(shuffle.attrs.perm, (std::vector<int64_t>{0, 2, 4, 1, 3, 5}));
  auto want = x.view({2, 3, 2, 3, 4}).transpose(1, 2).contiguous().view({2, 6, 3, 4});
  EXPECT_TRUE(run(shuffle, {x}).equal(want));
  Node slice = make(Op::kSliceChannels);
  slice.attrs.start = 2;
  slice.attrs.end = 5;
  EXPECT_TRUE(run(slice, {x}).equal(x.narrow(1, 2, 3)));
  // LayerNorm over the channels of every pixel (biased variance, eps inside the root).
  Node ln = make(Op::kLayerNorm2d);
  ln.attrs.eps = 1e-6;
  ln.params["weight"] = torch::rand({6}, torch::kDouble) + 0.5;
  ln.params["bias"] = torch::randn({6}, torch::kDouble);
  auto mean = x.mean(1, true), var = (x - mean).pow(2).mean(1, true);
  auto norm = (x - mean) / (var + 1e-6).sqrt() * ln.params["weight"].view({1, 6, 1, 1}) +
              ln.params["bias"].view({1, 6, 1, 1});
  EXPECT_LT(max_abs_diff(run(ln, {x}), norm), 1e-12);
  EXPECT_LT(max_abs_diff(run(make(Op::kGELU), {x}), 0.5 * x * (1 + torch::erf(x / std::sqrt(2.0)))),
            1e-14);
}

TEST(Execute, InPlaceActivationsSpareSharedValues) {
  // HardSwish and SiLU write into a fresh input nobody else reads, outside autograd only; the
  // conv output here is also read by the Mul, so it must not change.
  torch::manual_seed(10);
  GraphBuilder b({2, 4, 4});
  int c = b.conv(b.input(), 2, 1, 1, 0, "c");
  int h = b.hardswish(b.conv(b.input(), 2, 1, 1, 0, "d"), "h");  // free: in place
  int s = b.silu(c, "s");                                        // shared: not in place
  Graph g = b.build(b.mul(b.mul(h, s, "m1"), c, "m2"));
  g.to(torch::kDouble);
  auto x = torch::randn({2, 2, 4, 4}, torch::kDouble);
  auto cv = torch::conv2d(x, g.find("c")->params.at("weight"));
  auto dv = torch::conv2d(x, g.find("d")->params.at("weight"));
  auto want = torch::hardswish(dv) * torch::silu(cv) * cv;
  EXPECT_LT(max_abs_diff(forward(g, x, Mode::kEval), want), 1e-12);
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_abs_diff(forward(g, x, Mode::kEval), want), 1e-12);
}

TEST(Execute, LinearAndDropout) {
  torch::manual_seed(4);
  auto x = torch::randn({5, 7}, torch::kDouble);
  Node n = make(Op::kLinear);
  n.params["weight"] = torch::randn({3, 7}, torch::kDouble);
  n.params["bias"] = torch::randn({3}, torch::kDouble);
  EXPECT_LT(max_abs_diff(run_node(n, {x}, Mode::kEval),
                         torch::linear(x, n.params["weight"], n.params["bias"])),
            1e-12);
  Node d = make(Op::kDropout);
  d.attrs.p = 0.5;
  EXPECT_TRUE(run_node(d, {x}, Mode::kEval).equal(x));  // inactive in eval mode
  auto big = torch::ones({10000}, torch::kDouble);
  auto out = run_node(d, {big}, Mode::kTrain);
  double zeros = (out == 0).sum().item<double>() / 10000.0;
  EXPECT_NEAR(zeros, 0.5, 0.05);
  EXPECT_TRUE(((out == 0) | (out == 2)).all().item<bool>());  // survivors scaled by 1/(1-p)
}

TEST(Execute, ForwardEqualsHandWrittenComposition) {
  Graph g = testing::tiny_convnet(5);
  g.to(torch::kDouble);
  torch::manual_seed(6);
  auto x = torch::randn({3, 1, 8, 8}, torch::kDouble);
  auto p = [&](const char* node, const char* key) { return g.find(node)->params.at(key); };
  auto bn = [&](const torch::Tensor& t, const char* node) {
    const Node* n = g.find(node);
    return torch::batch_norm(t, n->params.at("weight"), n->params.at("bias"),
                             n->buffers.at("running_mean"), n->buffers.at("running_var"), false,
                             0.1, 1e-5, false);
  };
  auto h = torch::relu(bn(torch::conv2d(x, p("conv1", "weight"), {}, 1, 1), "bn1"));
  h = torch::max_pool2d(h, 2, 2);
  h = torch::relu(bn(torch::conv2d(h, p("conv2", "weight"), p("conv2", "bias"), 1, 1), "bn2"));
  h = torch::linear(h.mean({2, 3}), p("fc", "weight"), p("fc", "bias"));
  EXPECT_LT(max_abs_diff(forward(g, x, Mode::kEval), h), 1e-12);
}

TEST(Execute, GradientsReachEveryParameter) {
  Graph g = testing::fixture_all_ops(7);
  auto x = torch::randn({4, 2, 8, 8});
  forward(g, x, Mode::kTrain).sum().backward();
  for (const auto& [name, t] : g.named_parameters()) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_GT(t.grad().abs().sum().item<double>(), 0) << name;
  }
}

TEST(Execute, InPlaceReluDoesNotCorruptSharedValues) {
  // x feeds both an identity->relu path and the add: an in-place relu on the identity's output
  // would change x. Compare against a purely functional evaluation.
  torch::manual_seed(8);
  GraphBuilder b({2, 4, 4});
  int c = b.conv(b.input(), 2, 1, 1, 0, "c");
  int i = b.identity(c, "id");
  int r = b.relu(i, "r");
  Graph g = b.build(b.add({r, c}, "add"));
  g.to(torch::kDouble);
  auto x = torch::randn({1, 2, 4, 4}, torch::kDouble);
  auto cv = torch::conv2d(x, g.find("c")->params.at("weight"));
  EXPECT_LT(max_abs_diff(forward(g, x, Mode::kEval), torch::relu(cv) + cv), 1e-12);
}

TEST(Execute, InPlaceAddEqualsFunctionalAddAndSparesSharedValues) {
  // Inference (no autograd) adds into the first input when nobody else reads it; with autograd
  // on every Add allocates. Both must give the same bits, on a residual network and on a graph
  // whose Add inputs are read elsewhere too (conv c feeds the add and the relu after it).
  torch::manual_seed(9);
  GraphBuilder b({2, 4, 4});
  int c = b.conv(b.input(), 2, 1, 1, 0, "c");
  int d = b.conv(b.input(), 2, 1, 1, 0, "d");
  int s = b.add({c, d}, "s");
  int r = b.relu(c, "r");
  Graph g = b.build(b.add({s, r}, "out"));
  auto same_with_and_without_autograd = [](const Graph& net, const torch::Tensor& x) {
    torch::Tensor functional = forward(net, x, Mode::kEval).detach();
    torch::NoGradGuard no_grad;
    return forward(net, x, Mode::kEval).equal(functional);
  };
  EXPECT_TRUE(same_with_and_without_autograd(g, torch::randn({3, 2, 4, 4})));
  EXPECT_TRUE(same_with_and_without_autograd(build_model("resnet20", {1, 28, 28}, 10),
                                             torch::randn({2, 1, 28, 28})));
}

TEST(Execute, RejectsWrongInputShape) {
  Graph g = testing::tiny_convnet();
  EXPECT_THROW(forward(g, torch::randn({1, 1, 9, 8}), Mode::kEval), c10::Error);
  EXPECT_THROW(forward(g, torch::randn({1, 8, 8}), Mode::kEval), c10::Error);
}

}  // namespace
}  // namespace nnslim
