// Model zoo: parameter and MAC counts against hand-derived formulas, shapes for other inputs.
#include "nnslim/graph/cost.h"
#include "nnslim/graph/execute.h"
#include "nnslim/models/zoo.h"

#include <gtest/gtest.h>

namespace nnslim {
namespace {

int64_t conv_p(int64_t in, int64_t out, int64_t k, int64_t groups = 1) {
  return out * in / groups * k * k;
}
int64_t bn_p(int64_t c) { return 2 * c; }

// CIFAR ResNet-(6n+2) on CxHxW input (H, W divisible by 4), closed form.
void cifar_resnet_cost(int n, int64_t c_in, int64_t h, int64_t classes, int64_t& params,
                       int64_t& macs) {
  params = conv_p(c_in, 16, 3) + bn_p(16);
  macs = conv_p(c_in, 16, 3) * h * h;
  int64_t widths[] = {16, 32, 64}, in = 16, size = h;
  for (int s = 0; s < 3; ++s) {
    int64_t w = widths[s];
    for (int i = 0; i < n; ++i) {
      bool down = s > 0 && i == 0;
      if (down) size /= 2;
      params += conv_p(in, w, 3) + conv_p(w, w, 3) + 2 * bn_p(w);
      macs += (conv_p(in, w, 3) + conv_p(w, w, 3)) * size * size;
      if (down || in != w) {
        params += conv_p(in, w, 1) + bn_p(w);
        macs += conv_p(in, w, 1) * size * size;
      }
      in = w;
    }
  }
  params += 64 * classes + classes;
  macs += 64 * classes;
}

TEST(Zoo, CifarResNetsMatchClosedForm) {
  for (auto [name, n] : std::vector<std::pair<std::string, int>>{
           {"resnet20", 3}, {"resnet32", 5}, {"resnet56", 9}, {"resnet110", 18}}) {
    int64_t params, macs;
    cifar_resnet_cost(n, 3, 32, 10, params, macs);
    auto r = count_cost(build_model(name, {3, 32, 32}, 10));
    EXPECT_EQ(r.params, params) << name;
    EXPECT_EQ(r.macs, macs) << name;
  }
  // The well-known figures: ResNet-20 on CIFAR-10 has 0.27M params and 40.8M MACs.
  auto r20 = count_cost(build_model("resnet20", {3, 32, 32}, 10));
  EXPECT_NEAR(r20.params / 1e6, 0.27, 0.005);
  EXPECT_NEAR(r20.macs / 1e6, 40.8, 0.2);
}

TEST(Zoo, Vgg16AndLenet) {
  auto v = count_cost(build_model("vgg16", {3, 32, 32}, 10));
  int64_t cfg[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
  int64_t in = 3, size = 32, params = 0, macs = 0;
  for (auto w : cfg) {
    if (!w) {
      size /= 2;
      continue;
    }
    params += conv_p(in, w, 3) + bn_p(w);
    macs += conv_p(in, w, 3) * size * size;
    in = w;
  }
  params += 512 * 10 + 10;
  macs += 512 * 10;
  EXPECT_EQ(v.params, params);
  EXPECT_EQ(v.macs, macs);

  auto l = count_cost(build_model("lenet5", {1, 32, 32}, 10));
  int64_t lp =
      (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10);
  int64_t lm = 6 * 25 * 28 * 28 + 16 * 6 * 25 * 10 * 10 + 400 * 120 + 120 * 84 + 84 * 10;
  EXPECT_EQ(l.params, lp);
  EXPECT_EQ(l.macs, lm);
}

TEST(Zoo, ImageNetResNetsMatchTorchvisionParamCounts) {
  // torchvision: resnet18 11,689,512 and resnet50 25,557,032 params at 1000 classes.
  EXPECT_EQ(count_cost(build_model("resnet18", {3, 64, 64}, 1000)).params, 11689512);
  EXPECT_EQ(count_cost(build_model("resnet50", {3, 64, 64}, 1000)).params, 25557032);
  // At 224x224 resnet18 has 1.82G MACs (the usual "1.8 GFLOPs").
  EXPECT_NEAR(count_cost(build_model("resnet18", {3, 224, 224}, 1000)).macs / 1e9, 1.82, 0.01);
}

TEST(Zoo, MobileNetV2Structure) {
  Graph g = build_model("mobilenetv2", {3, 32, 32}, 10);
  // CIFAR MobileNetV2 (stem stride 1): about 2.24M params.
  auto r = count_cost(g);
  EXPECT_NEAR(r.params / 1e6, 2.24, 0.01);
  int adds = 0, depthwise = 0;
  for (const auto& n : g.nodes) {
    adds += n.op == Op::kAdd;
    depthwise += n.op == Op::kConv2d && n.attrs.groups > 1;
  }
  EXPECT_EQ(depthwise, 17);  // one per inverted-residual block
  EXPECT_EQ(adds, 10);       // blocks with stride 1 and equal widths
}

TEST(Zoo, EveryModelRunsOnItsSmallestInputs) {
  for (const auto& name : model_names()) {
    Graph g = build_model(name, {1, 32, 32}, 7);
    auto y = forward(g, torch::randn({2, 1, 32, 32}), Mode::kEval);
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 7})) << name;
    EXPECT_EQ(g.classes(), 7);
  }
}

TEST(Zoo, UnknownModelAndTooSmallInput) {
  try {
    build_model("resnet21", {1, 32, 32}, 10);
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("known: lenet5"), std::string::npos);
  }
  EXPECT_THROW(build_model("lenet5", {1, 8, 8}, 10), c10::Error);
}

TEST(Zoo, InitialisationFollowsTorchvision) {
  torch::manual_seed(0);
  Graph g = build_model("resnet56", {3, 32, 32}, 10);
  const auto& w = g.find("layer3.0.conv2")->params.at("weight");  // 64 out, 3x3
  EXPECT_NEAR(w.std().item<double>(), std::sqrt(2.0 / (64 * 9)), 0.005);
  EXPECT_TRUE(g.find("layer3.0.bn2")->params.at("weight").eq(1).all().item<bool>());
  EXPECT_TRUE(g.find("layer3.0.bn2")->params.at("bias").eq(0).all().item<bool>());
}

}  // namespace
}  // namespace nnslim
