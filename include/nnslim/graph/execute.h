// Running a graph: a walk over its nodes calling torch's functional ops. Autograd flows into the
// node parameters, so torch::optim trains them directly.
#pragma once

#include "nnslim/graph/graph.h"

namespace nnslim {

enum class Mode { kEval, kTrain };

// x: [N, C, H, W] matching graph.input_shape. Returns the output value (logits [N, classes] for
// classifiers). In kTrain mode BatchNorm uses batch statistics and updates its running buffers,
// and Dropout is active. Conv nodes run by their kernel (Node::kernel; graph/lowering.h).
torch::Tensor forward(const Graph& graph, const torch::Tensor& x, Mode mode);

// Evaluates one node given its input tensors (exposed for tests and for surgery checks).
torch::Tensor run_node(const Node& node, const std::vector<torch::Tensor>& inputs, Mode mode);

}  // namespace nnslim
