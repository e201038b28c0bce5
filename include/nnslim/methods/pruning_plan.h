// Choosing which channels to keep from importance scores, and meeting a MAC budget.
#pragma once

#include "nnslim/graph/coupling.h"

#include <cstdint>
#include <map>
#include <vector>

namespace nnslim {

struct PlanOptions {
  bool global = false;     // rank channels across groups (scores normalised by group mean)
  int64_t round_to = 1;    // keep a multiple of this many channels per group (hardware-friendly)
  double max_ratio = 0.9;  // never remove more than this fraction of a group
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

// The MACs of a graph while channels of some prunable groups are switched off one at a time:
// the incremental form of macs_after() for an optimizer that zeroes channels as it trains
// (HSPG's MAC budget). Flag k is channel k - offset(i) of groups[i], the groups' channels laid end
// to end in the given order. A group with every channel off keeps its first one, as the surgeries
// do, so macs(off) equals count_cost() of the pruned graph.
class ChannelMacs {
 public:
  ChannelMacs(const Graph& graph, const Coupling& coupling, std::vector<int> groups);
  int64_t flags() const { return static_cast<int64_t>(flag_group_.size()); }
  int64_t macs(const std::vector<uint8_t>& off) const;  // off: one entry per flag, 1 = off
  // Switches off, in the given order, each candidate flag that keeps the MACs >= floor; `off`
  // is updated and the accepted candidates are returned (in order). Cost: a few layers per try.
  std::vector<int64_t> switch_off_while_above(std::vector<uint8_t>& off,
                                              const std::vector<int64_t>& candidates,
                                              int64_t floor) const;

 private:
  struct Term {  // one conv/linear: coef x count(out) x (fixed_in or count(in))
    int64_t coef = 1;
    Layout out, in;
    int64_t fixed_in = 0;  // > 0: grouped conv, input channels per group do not change
  };
  int64_t count(const Layout& layout, const std::vector<uint8_t>& off,
                const std::vector<int64_t>& live) const;
  int64_t term(const Term& t, const std::vector<uint8_t>& off,
               const std::vector<int64_t>& live) const;
  std::vector<int64_t> live_channels(const std::vector<uint8_t>& off) const;

  std::map<int, int> index_;            // coupling group id -> position in groups
  std::vector<int64_t> offset_, size_;  // per position: first flag, channels
  std::vector<int> flag_group_;         // flag -> position
  std::vector<Term> terms_;
  std::vector<std::vector<int>> touches_;  // position -> terms whose layouts mention the group
};

}  // namespace nnslim
