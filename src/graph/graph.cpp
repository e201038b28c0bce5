#include "nnslim/graph/graph.h"

#include "nnslim/graph/lowering.h"

#include <c10/util/Exception.h>
#include <torch/torch.h>

namespace nnslim {

namespace {
struct OpInfo {
  Op op;
  const char* name;
};
constexpr OpInfo kOps[] = {
    {Op::kConv2d, "conv2d"},
    {Op::kBatchNorm2d, "batchnorm2d"},
    {Op::kReLU, "relu"},
    {Op::kReLU6, "relu6"},
    {Op::kMaxPool2d, "maxpool2d"},
    {Op::kAvgPool2d, "avgpool2d"},
    {Op::kGlobalAvgPool, "globalavgpool"},
    {Op::kFlatten, "flatten"},
    {Op::kLinear, "linear"},
    {Op::kAdd, "add"},
    {Op::kConcat, "concat"},
    {Op::kDropout, "dropout"},
    {Op::kIdentity, "identity"},
    {Op::kSigmoid, "sigmoid"},
    {Op::kHardSigmoid, "hardsigmoid"},
    {Op::kHardSwish, "hardswish"},
    {Op::kSiLU, "silu"},
    {Op::kMul, "mul"},
    {Op::kChannelShuffle, "channel_shuffle"},
    {Op::kSliceChannels, "slice_channels"},
    {Op::kLayerNorm2d, "layernorm2d"},
    {Op::kGELU, "gelu"},
};
}  // namespace

const char* op_name(Op op) {
  for (const auto& o : kOps)
    if (o.op == op) return o.name;
  TORCH_INTERNAL_ASSERT(false, "op without a name");
}

Op op_from_name(const std::string& name) {
  std::string known;
  for (const auto& o : kOps) {
    if (name == o.name) return o.op;
    known += known.empty() ? o.name : std::string(", ") + o.name;
  }
  TORCH_CHECK(false, "unknown op '", name, "' (known: ", known, ")");
}

int Graph::add(Node node) {
  node.id = next_id++;
  nodes.push_back(std::move(node));
  return nodes.back().id;
}

size_t Graph::index_of(int id) const {
  // Graphs are small (hundreds of nodes); a scan keeps ids stable without a side index.
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].id == id) return i;
  TORCH_CHECK(false, "graph has no node with id ", id);
}

const Node* Graph::find(const std::string& name) const {
  for (const auto& n : nodes)
    if (n.name == name) return &n;
  return nullptr;
}

Node* Graph::find(const std::string& name) {
  for (auto& n : nodes)
    if (n.name == name) return &n;
  return nullptr;
}

std::vector<int> Graph::consumers(int id) const {
  std::vector<int> out;
  for (const auto& n : nodes)
    for (int in : n.inputs)
      if (in == id) {
        out.push_back(n.id);
        break;
      }
  return out;
}

std::vector<torch::Tensor> Graph::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& n : nodes)
    for (const auto& kv : n.params) out.push_back(kv.second);
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> Graph::named_parameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& n : nodes)
    for (const auto& kv : n.params) out.emplace_back(n.name + "." + kv.first, kv.second);
  return out;
}

namespace {
// Applies f to every tensor of the graph; a fused pair's first weight is a tensor of the graph
// too. Sparse and unified kernel data is left as it is: if f changed the weight, that data is
// stale from now on (WeightStamp) and the conv runs dense.
template <typename F>
void remap(Graph& g, F f) {
  torch::NoGradGuard no_grad;
  for (auto& n : g.nodes) {
    for (auto& kv : n.params) {
      bool rg = kv.second.requires_grad();
      kv.second = f(kv.second).detach().requires_grad_(rg);
    }
    for (auto& kv : n.buffers) kv.second = f(kv.second).detach();
    if (n.kernel_data && n.kernel_data->first_weight.defined()) {
      auto data = std::make_shared<ConvKernelData>(*n.kernel_data);
      data->first_weight = f(data->first_weight).detach();
      n.kernel_data = std::move(data);
    }
  }
}
}  // namespace

void Graph::to(torch::Device device) {
  remap(*this, [&](const torch::Tensor& t) { return t.to(device); });
}

void Graph::to(torch::Dtype dtype) {
  // Integer buffers (e.g. counters) keep their type.
  remap(*this, [&](const torch::Tensor& t) { return t.is_floating_point() ? t.to(dtype) : t; });
}

Graph Graph::clone() const {
  Graph g = *this;
  remap(g, [](const torch::Tensor& t) { return t.clone(); });
  // The clone's weights are exact copies: kernel data that was current for the original weight
  // is current for the copy (a copy of the graph must run as the graph does).
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& n = g.nodes[i];
    auto original = nodes[i].params.find("weight");
    if (!n.kernel_data || original == nodes[i].params.end() ||
        !n.kernel_data->source.matches(original->second))
      continue;
    auto data = std::make_shared<ConvKernelData>(*n.kernel_data);
    data->source = WeightStamp::of(n.params.at("weight"));
    n.kernel_data = std::move(data);
  }
  return g;
}

int64_t Graph::classes() const {
  auto it = meta.find("classes");
  TORCH_CHECK(it != meta.end(), "graph has no 'classes' metadata");
  return std::stoll(it->second);
}

}  // namespace nnslim
