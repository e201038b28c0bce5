// Parameter and MAC counting (DESIGN.md §1 convention, state it in every report):
//   MACs   = multiply-accumulates of Conv2d and Linear nodes only;
//            conv = out_elems * (in_ch / groups) * kh * kw, linear = in * out. Elementwise ops
//            (BN, activations, Add, Mul), pooling and reshaping count none.
//   params = all trainable elements (BN gamma/beta included, running statistics excluded).
// Unstructured zeros are counted separately (nonzero_*), never folded into the dense figures.
#pragma once

#include "nnslim/graph/shape.h"

namespace nnslim {

struct NodeCost {
  int id = -1;
  std::string name;
  Op op = Op::kIdentity;
  Shape out_shape;
  int64_t params = 0;
  int64_t macs = 0;
  int64_t nonzero_params = 0;
  int64_t nonzero_macs = 0;  // MACs whose weight is non-zero
};

struct CostReport {
  std::vector<NodeCost> nodes;  // graph order
  int64_t params = 0;
  int64_t macs = 0;
  int64_t nonzero_params = 0;
  int64_t nonzero_macs = 0;
};

CostReport count_cost(const Graph& graph);

}  // namespace nnslim
