// BatchNorm recalibration (METHODS.md §6.11): after surgery or re-initialisation, running
// statistics no longer describe the activations. Reset them and re-estimate them as the exact
// average over `batches` training batches (train-mode forward, no gradients, no weight change).
#pragma once

#include "nnslim/data/dataset.h"
#include "nnslim/graph/graph.h"

namespace nnslim {

void recalibrate_bn(Graph& graph, const Dataset& data, int64_t batches, int64_t batch_size = 128,
                    uint64_t seed = 0);

}  // namespace nnslim
