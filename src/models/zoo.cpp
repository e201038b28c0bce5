#include "nnslim/models/zoo.h"

#include "nnslim/graph/builder.h"

#include <c10/util/Exception.h>

#include <functional>

namespace nnslim {

namespace {

using Builder = GraphBuilder;

int conv_bn(Builder& b, int x, int64_t out, int64_t k, int64_t s, int64_t p,
            const std::string& conv_name, const std::string& bn_name, int64_t groups = 1) {
  return b.bn(b.conv(x, out, k, s, p, conv_name, false, groups), bn_name);
}

int classifier(Builder& b, int x, int64_t classes) {
  x = b.global_avgpool(x, "avgpool");
  x = b.flatten(x, "flatten");
  return b.linear(x, classes, "fc");
}

Graph lenet5(Builder& b, int64_t classes) {
  // LeNet-5 on 32x32 inputs (MNIST zero-padded), with ReLU and max-pooling.
  int x = b.relu(b.conv(b.input(), 6, 5, 1, 0, "conv1", true), "relu1");
  x = b.maxpool(x, 2, 2, 0, "pool1");
  x = b.relu(b.conv(x, 16, 5, 1, 0, "conv2", true), "relu2");
  x = b.maxpool(x, 2, 2, 0, "pool2");
  x = b.flatten(x, "flatten");
  x = b.relu(b.linear(x, 120, "fc1"), "relu3");
  x = b.relu(b.linear(x, 84, "fc2"), "relu4");
  return b.build(b.linear(x, classes, "fc3"));
}

Graph vgg16(Builder& b, int64_t classes) {
  const int64_t kPool = 0;
  const int64_t cfg[] = {64,    64,  kPool, 128, 128,   kPool, 256, 256, 256,
                         kPool, 512, 512,   512, kPool, 512,   512, 512, kPool};
  int x = b.input();
  int conv_i = 0, pool_i = 0;
  for (int64_t w : cfg) {
    if (w == kPool) {
      x = b.maxpool(x, 2, 2, 0, "features.pool" + std::to_string(pool_i++));
      continue;
    }
    std::string p = "features." + std::to_string(conv_i++);
    x = b.relu(conv_bn(b, x, w, 3, 1, 1, p + ".conv", p + ".bn"), p + ".relu");
  }
  x = b.flatten(x, "flatten");
  return b.build(b.linear(x, classes, "fc"));
}

// CIFAR-style BasicBlock: conv3x3-BN-ReLU-conv3x3-BN (+ shortcut) then ReLU.
int basic_block(Builder& b, int x, int64_t out, int64_t stride, const std::string& p) {
  int y = b.relu(conv_bn(b, x, out, 3, stride, 1, p + ".conv1", p + ".bn1"), p + ".relu1");
  y = conv_bn(b, y, out, 3, 1, 1, p + ".conv2", p + ".bn2");
  int sc = x;
  if (stride != 1 || b.channels(x) != out)
    sc = conv_bn(b, x, out, 1, stride, 0, p + ".downsample.0", p + ".downsample.1");
  return b.relu(b.add({y, sc}, p + ".add"), p + ".relu2");
}

Graph cifar_resnet(Builder& b, int blocks, int64_t classes) {
  int x = b.relu(conv_bn(b, b.input(), 16, 3, 1, 1, "conv1", "bn1"), "relu");
  const int64_t widths[] = {16, 32, 64};
  for (int s = 0; s < 3; ++s)
    for (int i = 0; i < blocks; ++i)
      x = basic_block(b, x, widths[s], (s > 0 && i == 0) ? 2 : 1,
                      "layer" + std::to_string(s + 1) + "." + std::to_string(i));
  return b.build(classifier(b, x, classes));
}

// torchvision Bottleneck (ResNet v1.5: the stride sits on the 3x3 conv), expansion 4.
int bottleneck(Builder& b, int x, int64_t planes, int64_t stride, const std::string& p) {
  int64_t out = planes * 4;
  int y = b.relu(conv_bn(b, x, planes, 1, 1, 0, p + ".conv1", p + ".bn1"), p + ".relu1");
  y = b.relu(conv_bn(b, y, planes, 3, stride, 1, p + ".conv2", p + ".bn2"), p + ".relu2");
  y = conv_bn(b, y, out, 1, 1, 0, p + ".conv3", p + ".bn3");
  int sc = x;
  if (stride != 1 || b.channels(x) != out)
    sc = conv_bn(b, x, out, 1, stride, 0, p + ".downsample.0", p + ".downsample.1");
  return b.relu(b.add({y, sc}, p + ".add"), p + ".relu3");
}

Graph imagenet_resnet(Builder& b, bool use_bottleneck, std::vector<int> layers, int64_t classes) {
  int x = b.relu(conv_bn(b, b.input(), 64, 7, 2, 3, "conv1", "bn1"), "relu");
  x = b.maxpool(x, 3, 2, 1, "maxpool");
  const int64_t planes[] = {64, 128, 256, 512};
  for (int s = 0; s < 4; ++s)
    for (int i = 0; i < layers[s]; ++i) {
      std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(i);
      int64_t stride = (s > 0 && i == 0) ? 2 : 1;
      x = use_bottleneck ? bottleneck(b, x, planes[s], stride, p)
                         : basic_block(b, x, planes[s], stride, p);
    }
  return b.build(classifier(b, x, classes));
}

Graph mobilenetv2(Builder& b, int64_t classes) {
  struct Stage {
    int64_t t, c, n, s;
  };
  const Stage stages[] = {{1, 16, 1, 1}, {6, 24, 2, 1},  {6, 32, 3, 2}, {6, 64, 4, 2},
                          {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int x = b.relu6(conv_bn(b, b.input(), 32, 3, 1, 1, "features.0.conv", "features.0.bn"),
                  "features.0.relu");
  int block = 1;
  for (const auto& st : stages)
    for (int i = 0; i < st.n; ++i, ++block) {
      std::string p = "features." + std::to_string(block);
      int64_t in = b.channels(x), stride = i == 0 ? st.s : 1, hidden = in * st.t;
      int y = x;
      if (st.t != 1)
        y = b.relu6(conv_bn(b, y, hidden, 1, 1, 0, p + ".expand", p + ".expand_bn"),
                    p + ".expand_relu");
      y = b.relu6(conv_bn(b, y, hidden, 3, stride, 1, p + ".dw", p + ".dw_bn", hidden),
                  p + ".dw_relu");
      y = conv_bn(b, y, st.c, 1, 1, 0, p + ".project", p + ".project_bn");
      x = (stride == 1 && in == st.c) ? b.add({y, x}, p + ".add") : y;
    }
  std::string p = "features." + std::to_string(block);
  x = b.relu6(conv_bn(b, x, 1280, 1, 1, 0, p + ".conv", p + ".bn"), p + ".relu");
  return b.build(classifier(b, x, classes));
}

struct ZooEntry {
  const char* name;
  std::function<Graph(Builder&, int64_t)> make;
};

const std::vector<ZooEntry>& zoo() {
  static const std::vector<ZooEntry> entries = {
      {"lenet5", lenet5},
      {"vgg16", vgg16},
      {"resnet20", [](Builder& b, int64_t k) { return cifar_resnet(b, 3, k); }},
      {"resnet32", [](Builder& b, int64_t k) { return cifar_resnet(b, 5, k); }},
      {"resnet56", [](Builder& b, int64_t k) { return cifar_resnet(b, 9, k); }},
      {"resnet110", [](Builder& b, int64_t k) { return cifar_resnet(b, 18, k); }},
      {"resnet18",
       [](Builder& b, int64_t k) {
         return imagenet_resnet(b, false, {2, 2, 2, 2}, k);
       }},
      {"resnet50",
       [](Builder& b, int64_t k) {
         return imagenet_resnet(b, true, {3, 4, 6, 3}, k);
       }},
      {"mobilenetv2", mobilenetv2},
  };
  return entries;
}

}  // namespace

std::vector<std::string> model_names() {
  std::vector<std::string> out;
  for (const auto& e : zoo()) out.push_back(e.name);
  return out;
}

Graph build_model(const std::string& name, const std::vector<int64_t>& input_shape,
                  int64_t classes) {
  TORCH_CHECK(input_shape.size() == 3, "model input shape must be CxHxW");
  TORCH_CHECK(classes >= 1, "model needs at least one class, got ", classes);
  for (const auto& e : zoo()) {
    if (name != e.name) continue;
    Builder b(input_shape);
    Graph g;
    try {
      g = e.make(b, classes);
    } catch (const c10::Error& err) {
      TORCH_CHECK(false, "model ", name, " does not fit input ", input_shape[0], "x",
                  input_shape[1], "x", input_shape[2], ": ", err.what_without_backtrace());
    }
    g.meta["model"] = name;
    g.meta["classes"] = std::to_string(classes);
    return g;
  }
  std::string known;
  for (const auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  TORCH_CHECK(false, "unknown model '", name, "' (known: ", known, ")");
}

}  // namespace nnslim
