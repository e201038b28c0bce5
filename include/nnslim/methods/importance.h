// Channel importance criteria: each scores every channel of a coupled group as a whole
// (graph/coupling.h), higher = more important.
//   l1, l2  norm of the channel's producer filters (conv/linear output rows, depthwise filters)
//   bn      sum of |gamma| over the group's BatchNorms (falls back to l1 without BN)
//   fpgm    geometric-median distance (He et al. 2019): sum of L2 distances of the channel's
//           filter to all others; filters near the median are redundant
//   taylor  first-order Taylor (Molchanov et al. 2019): (sum over the channel's out-side
//           parameters of w * dL/dw)^2, accumulated over training batches
//   random  uniform random (a baseline)
#pragma once

#include "nnslim/data/dataset.h"
#include "nnslim/graph/coupling.h"

#include <map>
#include <string>
#include <vector>

namespace nnslim {

enum class Criterion { kL1, kL2, kBn, kFpgm, kTaylor, kRandom };

Criterion criterion_from_name(const std::string& name);  // throws listing the known names
const char* criterion_name(Criterion c);

// Data a data-driven criterion needs; may be null for the others.
struct ImportanceData {
  const Dataset* train = nullptr;
  int64_t batches = 8;  // taylor: batches to accumulate over
  int64_t batch_size = 64;
  uint64_t seed = 0;  // taylor batch order, random scores
};

// Scores for every prunable group: group id -> [channels] (double, CPU).
std::map<int, torch::Tensor> channel_importance(const Graph& graph, const Coupling& coupling,
                                                Criterion criterion,
                                                const ImportanceData& data = {});

}  // namespace nnslim
