#include "nnslim/graph/builder.h"

#include "nnslim/graph/shape.h"

#include <torch/torch.h>

#include <cmath>

namespace nnslim {

GraphBuilder::GraphBuilder(std::vector<int64_t> input_shape) {
  graph_.input_shape = input_shape;
  shapes_[kGraphInput] = std::move(input_shape);
}

const std::vector<int64_t>& GraphBuilder::shape(int value) const {
  auto it = shapes_.find(value);
  TORCH_CHECK(it != shapes_.end(), "builder: unknown value ", value);
  return it->second;
}

int GraphBuilder::push(Node node) {
  // Infer the shape right away so errors point at the layer being declared. Re-inferring the
  // whole graph is quadratic, but zoo graphs have at most a few hundred nodes.
  int id = graph_.add(std::move(node));
  graph_.output = id;
  auto shapes = infer_shapes(graph_);
  shapes_[id] = shapes.at(id);
  return id;
}

namespace {
torch::Tensor kaiming_fan_out(int64_t out, int64_t in_per_group, int64_t kh, int64_t kw) {
  // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / fan_out).
  double std = std::sqrt(2.0 / static_cast<double>(out * kh * kw));
  return torch::randn({out, in_per_group, kh, kw}) * std;
}
}  // namespace

int GraphBuilder::conv2(int x, int64_t out, std::vector<int64_t> kernel,
                        std::vector<int64_t> stride, std::vector<int64_t> padding,
                        const std::string& name, bool bias, int64_t groups) {
  int64_t in = channels(x);
  TORCH_CHECK(groups >= 1 && in % groups == 0, "builder: node '", name, "': groups ", groups,
              " must divide ", in, " input channels");
  Node n;
  n.op = Op::kConv2d;
  n.name = name;
  n.inputs = {x};
  n.attrs.kernel = kernel;
  n.attrs.stride = stride;
  n.attrs.padding = padding;
  n.attrs.groups = groups;
  n.params["weight"] = kaiming_fan_out(out, in / groups, kernel[0], kernel[1]).requires_grad_(true);
  if (bias) n.params["bias"] = torch::zeros({out}).requires_grad_(true);
  return push(std::move(n));
}

int GraphBuilder::conv(int x, int64_t out, int64_t k, int64_t s, int64_t p, const std::string& name,
                       bool bias, int64_t groups, int64_t dilation) {
  int id = conv2(x, out, {k, k}, {s, s}, {p, p}, name, bias, groups);
  if (dilation != 1) {
    graph_.node(id).attrs.dilation = {dilation, dilation};
    shapes_[id] = infer_shapes(graph_).at(id);
  }
  return id;
}

int GraphBuilder::bn(int x, const std::string& name) {
  int64_t c = channels(x);
  Node n;
  n.op = Op::kBatchNorm2d;
  n.name = name;
  n.inputs = {x};
  n.params["weight"] = torch::ones({c}).requires_grad_(true);
  n.params["bias"] = torch::zeros({c}).requires_grad_(true);
  n.buffers["running_mean"] = torch::zeros({c});
  n.buffers["running_var"] = torch::ones({c});
  return push(std::move(n));
}

namespace {
Node simple(Op op, int x, const std::string& name) {
  Node n;
  n.op = op;
  n.name = name;
  n.inputs = {x};
  return n;
}
}  // namespace

int GraphBuilder::relu(int x, const std::string& name) { return push(simple(Op::kReLU, x, name)); }
int GraphBuilder::relu6(int x, const std::string& name) {
  return push(simple(Op::kReLU6, x, name));
}
int GraphBuilder::global_avgpool(int x, const std::string& name) {
  return push(simple(Op::kGlobalAvgPool, x, name));
}
int GraphBuilder::flatten(int x, const std::string& name) {
  return push(simple(Op::kFlatten, x, name));
}
int GraphBuilder::identity(int x, const std::string& name) {
  return push(simple(Op::kIdentity, x, name));
}

int GraphBuilder::sigmoid(int x, const std::string& name) {
  return push(simple(Op::kSigmoid, x, name));
}
int GraphBuilder::hardsigmoid(int x, const std::string& name) {
  return push(simple(Op::kHardSigmoid, x, name));
}
int GraphBuilder::hardswish(int x, const std::string& name) {
  return push(simple(Op::kHardSwish, x, name));
}
int GraphBuilder::silu(int x, const std::string& name) { return push(simple(Op::kSiLU, x, name)); }

int GraphBuilder::mul(int a, int b, const std::string& name) {
  Node n;
  n.op = Op::kMul;
  n.name = name;
  n.inputs = {a, b};
  return push(std::move(n));
}

int GraphBuilder::channel_shuffle(int x, int64_t groups, const std::string& name) {
  const int64_t c = channels(x);
  TORCH_CHECK(groups >= 1 && c % groups == 0, "builder: node '", name, "': ", groups,
              " groups must divide ", c, " channels");
  Node n = simple(Op::kChannelShuffle, x, name);
  // [g, C/g] -> transpose -> [C/g, g]: output j = (k, i) with j = i * g + k reads k * C/g + i.
  const int64_t per = c / groups;
  for (int64_t j = 0; j < c; ++j) n.attrs.perm.push_back((j % groups) * per + j / groups);
  return push(std::move(n));
}

int GraphBuilder::slice_channels(int x, int64_t start, int64_t end, const std::string& name) {
  Node n = simple(Op::kSliceChannels, x, name);
  n.attrs.start = start;
  n.attrs.end = end;
  return push(std::move(n));
}

int GraphBuilder::layernorm2d(int x, const std::string& name, double eps) {
  const int64_t c = channels(x);
  Node n = simple(Op::kLayerNorm2d, x, name);
  n.attrs.eps = eps;
  n.params["weight"] = torch::ones({c}).requires_grad_(true);
  n.params["bias"] = torch::zeros({c}).requires_grad_(true);
  return push(std::move(n));
}

int GraphBuilder::gelu(int x, const std::string& name) { return push(simple(Op::kGELU, x, name)); }

int GraphBuilder::maxpool(int x, int64_t k, int64_t s, int64_t p, const std::string& name,
                          bool ceil_mode) {
  Node n = simple(Op::kMaxPool2d, x, name);
  n.attrs.kernel = {k, k};
  n.attrs.stride = {s, s};
  n.attrs.padding = {p, p};
  n.attrs.ceil_mode = ceil_mode;
  return push(std::move(n));
}

int GraphBuilder::avgpool(int x, int64_t k, int64_t s, int64_t p, const std::string& name,
                          bool ceil_mode) {
  Node n = simple(Op::kAvgPool2d, x, name);
  n.attrs.kernel = {k, k};
  n.attrs.stride = {s, s};
  n.attrs.padding = {p, p};
  n.attrs.ceil_mode = ceil_mode;
  return push(std::move(n));
}

int GraphBuilder::dropout(int x, double p, const std::string& name) {
  Node n = simple(Op::kDropout, x, name);
  n.attrs.p = p;
  return push(std::move(n));
}

int GraphBuilder::linear(int x, int64_t out, const std::string& name, bool bias) {
  const auto& s = shape(x);
  TORCH_CHECK(s.size() == 1, "builder: node '", name, "': linear needs a flat input, got ",
              shape_str(s));
  int64_t in = s[0];
  // PyTorch's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
  double bound = 1.0 / std::sqrt(static_cast<double>(in));
  Node n = simple(Op::kLinear, x, name);
  n.params["weight"] = (torch::rand({out, in}) * 2 - 1).mul_(bound).requires_grad_(true);
  if (bias) n.params["bias"] = (torch::rand({out}) * 2 - 1).mul_(bound).requires_grad_(true);
  return push(std::move(n));
}

int GraphBuilder::add(std::vector<int> xs, const std::string& name) {
  Node n;
  n.op = Op::kAdd;
  n.name = name;
  n.inputs = std::move(xs);
  return push(std::move(n));
}

int GraphBuilder::concat(std::vector<int> xs, const std::string& name) {
  Node n;
  n.op = Op::kConcat;
  n.name = name;
  n.inputs = std::move(xs);
  return push(std::move(n));
}

void reinitialize(Graph& graph) {
  torch::NoGradGuard no_grad;
  for (auto& n : graph.nodes) {
    auto set = [&](const char* key, const torch::Tensor& v) {
      auto it = n.params.find(key);
      if (it != n.params.end()) it->second.copy_(v);
    };
    if (n.op == Op::kConv2d) {
      const auto& w = n.params.at("weight");
      set("weight", kaiming_fan_out(w.size(0), w.size(1), w.size(2), w.size(3)));
      if (n.params.count("bias")) n.params.at("bias").zero_();
    } else if (n.op == Op::kLinear) {
      const auto& w = n.params.at("weight");
      double bound = 1.0 / std::sqrt(static_cast<double>(w.size(1)));
      set("weight", (torch::rand(w.sizes()) * 2 - 1) * bound);
      if (n.params.count("bias"))
        set("bias", (torch::rand(n.params.at("bias").sizes()) * 2 - 1) * bound);
    } else if (n.op == Op::kBatchNorm2d || n.op == Op::kLayerNorm2d) {
      n.params.at("weight").fill_(1.0);
      n.params.at("bias").zero_();
      if (n.op == Op::kLayerNorm2d) continue;
      n.buffers.at("running_mean").zero_();
      n.buffers.at("running_var").fill_(1.0);
    }
  }
}

Graph GraphBuilder::build(int output, std::map<std::string, std::string> meta) {
  graph_.output = output;
  for (auto& kv : meta) graph_.meta[kv.first] = kv.second;
  validate(graph_);
  return graph_;
}

}  // namespace nnslim
