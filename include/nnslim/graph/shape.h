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

}  // namespace nnslim
