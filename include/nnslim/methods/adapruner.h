// AdaPruner (METHODS.md §3): channel widths from BatchNorm scales, one global knob found by
// bisection to meet a MAC budget, and an adaptive choice of which weights the pruned network
// inherits.
//   training (--epochs): network-slimming sparsity, gamma.grad += s * sign(gamma) on the BNs of
//                        every block
//   finalize:            block importance I_b = mean |gamma| (normalised by the mean over blocks);
//                        widths n_b(alpha) = round_to(clamp(alpha * I_b, r_min, 1) * N_b, divisor);
//                        bisection on alpha (stops within 0.2% under the budget) and a greedy
//                        fill (one divisor step at a time, most important block first); then every
//                        inheritance candidate (l1, l2, bn, fpgm, random, scratch) is built,
//                        BN-recalibrated, briefly fine-tuned and scored on held-out training
//                        images; the best one becomes the compressed graph.
// A "block" is a prunable coupling group with BatchNorm; residual stage groups are blocks only
// with prune-stages (METHODS §3.3 default: not pruned).
#pragma once

#include "nnslim/graph/coupling.h"
#include "nnslim/methods/method.h"
#include "nnslim/methods/registry.h"

#include <functional>
#include <set>

namespace nnslim {

struct AdaPrunerOptions {
  double target_macs = 0.5;      // fraction of the input model's MACs
  double sparsity_l1 = 1e-5;     // s: BN-gamma L1 weight during --epochs
  std::string inherit = "auto";  // auto | l1 | l2 | bn | fpgm | random | scratch
  int64_t divisor = 1;           // widths are multiples of this (or the full width)
  int64_t min_channels = 1;
  double min_keep = 0.05;  // r_min
  bool prune_stages = false;
  int64_t heldout = 5000;         // held-out training images for scoring candidates
  int64_t recal_batches = 50;     // BN recalibration batches per candidate
  int64_t candidate_steps = 100;  // fine-tune steps per candidate before scoring
  double candidate_lr = 0.01;
  double scratch_lr = 0.1;  // fine-tuning rate when `scratch` is chosen (§3.3: 0.1 vs 0.01)
  uint64_t seed = 0;
  std::set<std::string> exclude;
  void validate() const;
};

// Blocks: prunable coupling groups with at least one BatchNorm (stage groups only if asked).
std::vector<int> adapruner_blocks(const Coupling& c, bool prune_stages);
// I_b = mean |gamma| over every BN entry of the block.
std::map<int, double> block_importance(const Graph& g, const Coupling& c,
                                       const std::vector<int>& blocks);
// n_b(alpha) for normalised importances (mean 1).
std::map<int, int64_t> widths_for_alpha(const Coupling& c, const std::map<int, double>& norm,
                                        double alpha, const AdaPrunerOptions& o);

struct WidthSearch {
  std::map<int, int64_t> widths;  // block -> channels kept
  double alpha = 0;
  int iterations = 0;
  int64_t macs = 0;
  int64_t budget = 0;
};
// Bisection on alpha (at most 40 iterations) then a greedy fill: MACs <= budget, as close as the
// widths allow. Throws if even the minimum widths exceed the budget.
WidthSearch search_widths(const Graph& g, const Coupling& c, const std::vector<int>& blocks,
                          const AdaPrunerOptions& o);

class AdaPruner : public Method {
 public:
  explicit AdaPruner(AdaPrunerOptions o);
  static std::vector<MethodOption> option_list();
  static std::shared_ptr<Method> create(const MethodConfig& c);
  std::string name() const override { return "adapruner"; }
  void check_applicable(const Graph& g) const override;
  void after_backward(Context& ctx) override;
  void finalize(FinalizeContext& ctx) override;
  void describe(Json& out) const override { out = details_; }
  // A fresh initialisation (the `scratch` candidate) trains at --scratch-lr, inherited weights
  // at the requested rate.
  double finetune_lr(double requested) const override {
    return inherited_ == "scratch" ? opt_.scratch_lr : requested;
  }

  // Scores a candidate sub-network (higher is better). Default: BN recalibration, a short
  // fine-tune and top-1 on the held-out images. Tests replace it with a mock.
  std::function<double(Graph&, const std::string& criterion)> evaluator;

 private:
  double score_candidate(Graph& g, const Dataset& fit, const Dataset& heldout) const;
  AdaPrunerOptions opt_;
  std::vector<torch::Tensor> gammas_;  // BN gammas under the L1 penalty
  Json details_ = Json::object();
  std::string inherited_;  // the candidate finalize() chose
};

}  // namespace nnslim
