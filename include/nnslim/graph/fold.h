// Inference-time simplification: BatchNorm folded into the convolution before it.
#pragma once

#include "nnslim/graph/graph.h"

namespace nnslim {

// A copy of `graph` in which every BatchNorm whose input is a convolution read by nothing else
// is folded into that convolution (w' = w * g/sqrt(var+eps), b' = (b - mean) * g/sqrt(var+eps) +
// beta) and removed. The result computes the same eval-mode function with fewer nodes; it is meant
// for inference and export, not for further training (the BN's batch statistics are gone).
// BatchNorms that cannot be folded are kept unchanged.
Graph fold_batchnorm(const Graph& graph);

}  // namespace nnslim
