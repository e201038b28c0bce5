// Running a graph: a walk over its nodes calling torch's functional ops. Autograd flows into the
// node parameters, so torch::optim trains them directly.
#pragma once

#include "nnslim/graph/graph.h"

namespace nnslim {

enum class Mode { kEval, kTrain };

// x: [N, C, H, W] matching graph.input_shape. Returns the output value (logits [N, classes] for
// classifiers). In kTrain mode BatchNorm uses batch statistics and updates its running buffers,
// and Dropout is active.
torch::Tensor forward(const Graph& graph, const torch::Tensor& x, Mode mode);

// Inference (kEval, no autograd) with the batch split into `parts` slices run concurrently, one
// intra-op thread each, concatenated. Same function as forward(); for small-width graphs at large
// batch this beats splitting every op across threads (oneDNN's per-op parallel overhead does not
// shrink with the channel count, the batch split has none). parts <= 1 or a batch smaller than
// parts falls back to forward(). Throws the first exception of any slice.
torch::Tensor forward_batch_parallel(const Graph& graph, const torch::Tensor& x, int64_t parts);

// Evaluates one node given its input tensors (exposed for tests and for surgery checks).
torch::Tensor run_node(const Node& node, const std::vector<torch::Tensor>& inputs, Mode mode);

}  // namespace nnslim
