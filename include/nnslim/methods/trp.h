// TRP -- Trained Rank Pruning (Xu et al., arXiv 1812.02402 / 2004.14566), METHODS.md §1.
//
// Training (METHODS.md §1.5): on every TRP step (batch index within the epoch % period == 0),
// before the forward pass, each selected conv weight W is matricised (scheme), decomposed by a
// thin SVD, and
//   * (trp = true)  replaced by its truncated SVD  W <- unmatricize(U_r diag(s_r) V_r^T), with r
//     the energy rank (energy e) -- a hard low-rank substitution; momentum buffers are kept;
//   * (nuclear > 0, nuclear-mode trp_steps_truncated) the sub-gradient G = unmatricize(U_r V_r^T)
//     is stored and, after backward on the same step, lambda * G is added to W.grad.
// With nuclear-mode every_step_full, lambda * U V^T of the full thin SVD is added to W.grad
// after every backward instead (the nuclear-only script), independently of the projection.
// With trp = false and nuclear = 0 the training is plain SGD, bit for bit. For the decouple
// scheme every filter's matrix W[o].reshape(c, kh*kw) gets its own SVD and energy rank.
// An SVD that fails leaves its layer unchanged for that step (counted in svd_failures).
//
// Finalize (METHODS.md §1.6): the rank of every selected layer is chosen by the rank rule
// (value: #{s_i >= tau}; energy: EnergyThreshold(final-energy); decouple: the largest rank over
// the filters, shared by all, as in the code), at least 1, rounded up to a
// multiple of rank-multiple (capped at the full rank). With target-macs F the threshold (tau, or
// the energy) is chosen by bisection as the least aggressive one whose network has
// MACs <= F x the MACs of the model TRP started from. A layer is factorised (graph/factorize.h)
// only when that reduces its MACs; the others stay dense.
//
// Layers (METHODS.md §1.3): by default every ungrouped conv whose kernel is not 1x1, except the
// first conv of the graph (node order); `layers` lists names explicitly instead, `exclude`
// removes names. Unknown names are an error.
#pragma once

#include "nnslim/graph/factorize.h"
#include "nnslim/methods/method.h"
#include "nnslim/methods/registry.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nnslim {

enum class NuclearMode { kTrpStepsTruncated, kEveryStepFull };
// Final rank rule (METHODS.md §1.4): auto = the code's choice per scheme -- energy (0.85) for
// decouple (ND), the value threshold (0.05) for the others.
enum class RankRule { kAuto, kValue, kEnergy };

struct TrpOptions {
  Scheme scheme = Scheme::kChannel;  // channel (NC), spatial (VH), decouple (ND), channel-in
  int64_t period = 5;                // m: a TRP step every `period` batches (train_TPR.sh uses 5)
  double energy = 0.9;               // e: training energy threshold, (0, 1]
  double nuclear = 3e-4;             // lambda (README examples); 0 = off
  NuclearMode nuclear_mode = NuclearMode::kTrpStepsTruncated;
  bool trp = true;  // the hard low-rank substitution
  RankRule rank_rule = RankRule::kAuto;
  RankRule resolved_rank_rule() const;  // auto resolved by the scheme
  double tau = 0.05;                    // final value threshold (NC/VH in the code)
  double final_energy = 0.85;  // final energy threshold (rank-rule energy; the code's ND value)
  std::optional<double> target_macs;  // fraction of the input model's MACs; unset = off
  int64_t rank_multiple = 1;          // final ranks rounded up to a multiple of this
  std::vector<std::string> layers;    // explicit selection (empty = default, §1.3)
  std::vector<std::string> exclude;   // removed from the selection
  // Throws c10::Error naming the option ("trp: energy must be in (0, 1], got 1.5").
  void validate() const;
};

// One selected layer's outcome (filled by finalize()).
struct TrpLayer {
  std::string name;
  std::vector<int64_t> weight_shape;  // [n, c, kh, kw]
  int64_t full_rank = 0;              // min(rows, cols) of M(W)
  int64_t train_rank = 0;             // energy rank at the last TRP step (0 = none yet)
  int64_t rank = 0;                   // chosen final rank
  bool factorized = false;            // false: kept dense (no MAC saving)
  int64_t macs_before = 0, macs_after = 0;
};

class Trp : public Method {
 public:
  explicit Trp(TrpOptions options);
  std::string name() const override { return "trp"; }
  void check_applicable(const Graph& g) const override;
  void begin(Context& ctx) override;
  void before_step(Context& ctx) override;
  void after_backward(Context& ctx) override;
  void finalize(FinalizeContext& ctx) override;
  void describe(Json& out) const override;
  void save(Writer& w) const override;
  void load(Reader& r) override;

  const TrpOptions& options() const { return opt_; }
  // Names of the selected layers (after begin() or finalize()).
  std::vector<std::string> selected() const;
  const std::vector<TrpLayer>& layers() const { return layers_; }
  // Threshold the final ranks were chosen with (tau or energy; after finalize()).
  double final_threshold() const { return final_threshold_; }
  // Bookkeeping totals of this object's lifetime (bench/trp_overhead.cpp).
  double svd_seconds() const { return svd_seconds_; }
  int64_t svd_failures() const { return svd_failures_; }

 private:
  struct State {
    int id = -1;
    std::string name;
    torch::Tensor g;  // nuclear sub-gradient of the current TRP step (undefined = none)
    int64_t train_rank = 0;
  };
  void select(const Graph& graph);
  bool is_trp_step(const Context& ctx) const;

  TrpOptions opt_;
  std::vector<State> state_;
  std::vector<TrpLayer> layers_;
  int64_t input_macs_ = 0, output_macs_ = 0;
  int64_t input_conv_macs_ = 0, output_conv_macs_ = 0;
  double final_threshold_ = 0;
  double svd_seconds_ = 0;
  int64_t svd_failures_ = 0;
  int64_t trp_steps_ = 0;
};

// Registry entry (`nnslim compress --method trp`): options scheme, period, energy, nuclear,
// nuclear-mode, trp, rank-rule, tau, final-energy, target-macs, rank-multiple, layers, exclude.
MethodInfo trp_method_info();

}  // namespace nnslim
