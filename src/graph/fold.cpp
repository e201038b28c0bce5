#include "nnslim/graph/fold.h"

#include "nnslim/graph/shape.h"

#include <torch/torch.h>

namespace nnslim {

namespace {

// The convolution a BatchNorm can be folded into, or nullptr.
const Node* foldable_conv(const Graph& g, const Node& bn) {
  if (bn.op != Op::kBatchNorm2d || bn.inputs[0] == kGraphInput) return nullptr;
  const Node& conv = g.node(bn.inputs[0]);
  if (conv.op != Op::kConv2d || conv.id == g.output) return nullptr;
  return g.consumers(conv.id).size() == 1 ? &conv : nullptr;
}

void fold_into(Node& conv, const Node& bn) {
  torch::NoGradGuard no_grad;
  const auto& gamma = bn.params.at("weight");
  const auto scale = gamma / torch::sqrt(bn.buffers.at("running_var") + bn.attrs.eps);
  auto w = conv.params.at("weight");
  auto shape = std::vector<int64_t>(w.dim(), 1);
  shape[0] = -1;
  auto bias = conv.params.count("bias") ? conv.params.at("bias")
                                        : torch::zeros_like(bn.buffers.at("running_mean"));
  conv.params["weight"] = (w * scale.view(shape)).detach().requires_grad_(w.requires_grad());
  conv.params["bias"] = ((bias - bn.buffers.at("running_mean")) * scale + bn.params.at("bias"))
                            .detach()
                            .requires_grad_(w.requires_grad());
}

}  // namespace

Graph fold_batchnorm(const Graph& graph) {
  Graph g = graph.clone();
  std::vector<int> removed;
  for (const auto& bn : graph.nodes) {
    const Node* conv = foldable_conv(graph, bn);
    if (!conv) continue;
    fold_into(g.node(conv->id), bn);
    // Readers of the BN's value now read the convolution's.
    for (auto& n : g.nodes)
      for (int& in : n.inputs)
        if (in == bn.id) in = conv->id;
    if (g.output == bn.id) g.output = conv->id;
    removed.push_back(bn.id);
  }
  for (int id : removed) g.nodes.erase(g.nodes.begin() + static_cast<long>(g.index_of(id)));
  validate(g);
  return g;
}

}  // namespace nnslim
