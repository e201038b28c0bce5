// Shape inference without running the network.
#pragma once

#include "nnslim/graph/graph.h"

namespace nnslim {

using Shape = std::vector<int64_t>;  // without the batch dimension: [C, H, W] or [F]

// Shapes of every value, keyed by value id (kGraphInput included). Validates the graph on the way:
// unknown input ids, use before definition, parameter shapes that disagree with their inputs, bad
// attributes, duplicate names. Throws c10::Error naming the node ("node 'layer1.0.conv1'
// (conv2d): weight expects 16 input channels, input has 32").
std::map<int, Shape> infer_shapes(const Graph& graph);

// Throws like infer_shapes if the graph is invalid.
inline void validate(const Graph& graph) { (void)infer_shapes(graph); }

std::string shape_str(const Shape& s);  // "16x32x32"

// Output length of a pooling window along one dimension by torch's rule (pooling_output_shape):
// floor((in + 2p - k) / s) + 1, rounded up instead in ceil mode, where the last window must
// still start inside the input or its left padding. 0 when no window fits.
int64_t pool_out(int64_t in, int64_t kernel, int64_t stride, int64_t padding, bool ceil_mode);

}  // namespace nnslim
