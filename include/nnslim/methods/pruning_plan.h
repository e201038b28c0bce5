// Choosing which channels to keep from importance scores, and meeting a MAC budget.
#pragma once

#include "nnslim/graph/coupling.h"

#include <map>
#include <vector>

namespace nnslim {

struct PlanOptions {
  bool global = false;       // rank channels across groups (scores normalised by group mean)
  int64_t round_to = 1;      // keep a multiple of this many channels per group (hardware-friendly)
  double max_ratio = 0.9;    // never remove more than this fraction of a group
};

using KeepPlan = std::map<int, std::vector<int64_t>>;  // group id -> kept channels (sorted)

// The n highest-scoring channels (ties: lower index first), sorted by index.
std::vector<int64_t> top_channels(const torch::Tensor& score, int64_t n);

// Removes `ratio` of the channels: per group (local) or the lowest-scoring across all groups
// (global). Every group keeps at least one channel and at least (1 - max_ratio) of its channels.
KeepPlan plan_by_ratio(const Coupling& coupling, const std::map<int, torch::Tensor>& scores,
                       double ratio, const PlanOptions& options);

// MACs of the graph after applying a plan (without keeping the pruned graph).
int64_t macs_after(const Graph& graph, const Coupling& coupling, const KeepPlan& plan);

// Bisection on the ratio so that MACs <= target_fraction x the graph's MACs, landing within
// `tolerance` (relative) of the target when reachable. Throws if even max_ratio cannot reach it.
KeepPlan plan_for_macs(const Graph& graph, const Coupling& coupling,
                       const std::map<int, torch::Tensor>& scores, double target_fraction,
                       const PlanOptions& options, double tolerance = 0.02,
                       double* ratio_out = nullptr);

}  // namespace nnslim
