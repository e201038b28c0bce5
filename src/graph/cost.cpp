#include "nnslim/graph/cost.h"

#include <torch/torch.h>

namespace nnslim {

CostReport count_cost(const Graph& graph) {
  auto shapes = infer_shapes(graph);
  CostReport r;
  torch::NoGradGuard no_grad;
  for (const auto& n : graph.nodes) {
    NodeCost c;
    c.id = n.id;
    c.name = n.name;
    c.op = n.op;
    c.out_shape = shapes.at(n.id);
    for (const auto& kv : n.params) {
      c.params += kv.second.numel();
      c.nonzero_params += kv.second.count_nonzero().item<int64_t>();
    }
    if (n.op == Op::kConv2d || n.op == Op::kLinear) {
      const auto& w = n.params.at("weight");
      // Each weight element is used once per output position (conv) or once (linear), which is
      // the DESIGN.md formula; a zero weight is skipped in the nonzero count.
      int64_t positions = n.op == Op::kConv2d ? c.out_shape[1] * c.out_shape[2] : 1;
      c.macs = w.numel() * positions;
      c.nonzero_macs = w.count_nonzero().item<int64_t>() * positions;
    }
    r.params += c.params;
    r.macs += c.macs;
    r.nonzero_params += c.nonzero_params;
    r.nonzero_macs += c.nonzero_macs;
    r.nodes.push_back(std::move(c));
  }
  return r;
}

}  // namespace nnslim
