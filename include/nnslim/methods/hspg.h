// Compression via sparse optimisation (Chen et al., arXiv 2011.04868) -- METHODS.md §2.
//
// The hspg method (`nnslim compress --method hspg`) trains with the HSPG optimizer
// (optim/hspg.h) over the graph's zero-invariant groups (zero_invariant_groups below);
// finalize() removes every channel whose group is exactly zero with channel surgery -- exact,
// so no fine-tuning is needed (§2.6) -- and describe() reports group sparsity per coupling
// group, per layer and in total. The element-wise l1 variant is methods/obproxsg.h.
#pragma once

#include "nnslim/graph/coupling.h"
#include "nnslim/methods/method.h"
#include "nnslim/methods/registry.h"
#include "nnslim/optim/hspg.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace nnslim {

// The zero-invariant groups of a graph (§2.4): one family per prunable coupling group of
// `coupling` (computed on `graph`); group k = every OUT-SIDE entry of channel k -- producer
// filter rows and biases, BN gamma and beta, depthwise filter rows and biases. If all of them are
// zero, channel k outputs exact zeros (graph/coupling.h: zero_output_channels), so removing it
// is exact. Consumers' input slices are NOT part of the group (as OTOv1's code; see
// docs/methods/hspg.md). Unprunable groups (network input/output, grouped convs, excluded nodes)
// give no family.
std::vector<optim::GroupFamily> zero_invariant_groups(const Graph& graph, const Coupling& coupling);

struct HspgOptions {
  double lambda = 1e-3;                // §2.7: 5e-4 (VGG16-BN) .. 1e-3 (ResNet-50)
  double epsilon = 0.0;                // §2.7: 0 for conv groups
  std::optional<int64_t> prox_epochs;  // N_P; unset = a quarter of the epochs (§2.7: 75 of 300)
  double target_group_sparsity = 1.0;  // upper cap U; 1 = none
  double target_macs = 1.0;            // stop zeroing at this fraction of the MACs; 1 = none
  bool subgradient = false;            // stage 1 as the OTOv1 code instead of Prox-SG
  std::set<std::string> exclude;       // node names whose groups are not regularised
  void validate() const;               // TORCH_CHECK naming the option
  int64_t prox_epochs_for(int64_t epochs) const { return prox_epochs.value_or(epochs / 4); }
};

class Hspg : public Method {
 public:
  explicit Hspg(HspgOptions options);
  std::string name() const override { return "hspg"; }
  void check_applicable(const Graph& g) const override;
  // An optim::HspgOptimizer over graph.parameters(), groups = zero_invariant_groups(graph,
  // coupling), with lr, momentum, nesterov and weight decay from `settings` and
  // prox_steps = N_P * steps_per_epoch.
  std::unique_ptr<torch::optim::Optimizer> make_optimizer(
      Graph& graph, const OptimizerSettings& settings) override;
  void end_epoch(Context& ctx) override;  // logs "group_sparsity" and "zero_groups"
  // Removes every channel of a prunable coupling group whose out-side entries are all exactly
  // zero (at least one channel per group stays: the first one if all are zero). The new graph
  // computes what the group-sparse one did.
  void finalize(FinalizeContext& ctx) override;
  // {lambda, epsilon, prox_epochs, target_group_sparsity, groups_total, zero_groups,
  //  group_sparsity, channels_removed, groups: [{group, channels, zero, kept, producers}],
  //  layers: [{name, group, out_channels, kept}]}; filled by finalize().
  void describe(Json& out) const override;
  const HspgOptions& options() const { return opt_; }

 private:
  HspgOptions opt_;
  optim::HspgOptimizer* optimizer_ = nullptr;  // made by make_optimizer, owned by the Trainer
  Json details_ = Json::object();
};

// The registry entry: "hspg" with lambda, epsilon, prox-epochs, target-group-sparsity,
// target-macs, stage1, exclude.
MethodInfo hspg_method_info();

}  // namespace nnslim
