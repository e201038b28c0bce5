// The HspgOptimizer optimizer (Chen et al., arXiv 2011.04868; METHODS.md §2.5): stochastic gradient
// steps for  min f(x) + lambda * sum_g ||x_g||_2  over disjoint variable groups g (§2.3). Per step,
// with d = grad + weight_decay * x (then heavy-ball momentum on d, exactly as torch::optim::SGD
// does it), lr = the current rate:
//   stage 1 (the first prox_steps steps), Prox-SG (§2.5, the paper's form):
//       u = x - lr * d;   x_g <- max(0, 1 - lr*lambda/||u_g||) * u_g      (group soft-threshold)
//     or, with subgradient(true), the OTOv1 code's form: d_g += lambda * x_g/||x_g|| (0 when
//     x_g = 0) and x <- x - lr * d (no zeros are made in stage 1).
//   stage 2, half-space: Z = {g : ||x_g|| = 0} stays zero; for g not in Z,
//       d_g += lambda * x_g/||x_g||;  trial x^_g = x_g - lr * d_g;
//       x_g <- 0 if <x^_g, x_g> < epsilon * ||x_g||^2, else x^_g.
// Entries outside every group take the plain SGD step. With lambda = 0, in stage 1, the iterates
// are those of torch::optim::SGD bit for bit (stage 2 too unless a projection fires; see
// projections()).
// Cap (upper_group_sparsity U < 1): a step never leaves more than floor(U * groups) groups at
// zero (unless more are exactly zero anyway: a group whose trial point is 0 stays 0). When
// more groups qualify, those with the smallest trial norm ||x^_g|| (stage 1: ||u_g||) are
// zeroed and the others take the unprojected trial point [OUR CHOICE; the code draws a random
// subset].
// Limit (limit_zeros): a callback that may veto further candidates after the cap -- the hspg
// method's MAC budget keeps the network's MACs at or above a floor this way.
// State: momentum buffers (LibTorch's SGDParamState, per tensor) and the step counter;
// save()/load() round-trip both. The method that trains with it is methods/hspg.h.
#pragma once

#include <torch/arg.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/archive.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace nnslim::optim {

// ---- variable groups -------------------------------------------------------------------------

// One tensor dimension of a family of groups: group k of the family owns positions
// positions[k*w, (k+1)*w) of dimension `dim` of `param` (every entry along the other
// dimensions), where w = positions.size() / family.count.
struct GroupSlice {
  torch::Tensor param;
  int64_t dim = 0;
  std::vector<int64_t> positions;
};

// `count` disjoint groups (channels) laid over one or more tensor dimensions.
struct GroupFamily {
  std::string name;
  int64_t count = 0;
  int coupling_group = -1;  // the Coupling group it came from (zero_invariant_groups), or -1
  std::vector<GroupSlice> slices;
};

// Group soft-threshold (§2.5, invariant 3): max(0, 1 - threshold/||u||) * u (0 when ||u|| = 0).
torch::Tensor group_soft_threshold(const torch::Tensor& u, double threshold);

// The indices of the candidates (bool [n]), smallest score first (ties: lower index first).
torch::Tensor candidates_by_score(const torch::Tensor& candidates, const torch::Tensor& score);

// ---- the optimizer ---------------------------------------------------------------------------

struct HspgOptimizerOptions : public torch::optim::OptimizerCloneableOptions<HspgOptimizerOptions> {
  HspgOptimizerOptions(double lr = 0.1);  // NOLINT: implicit, as LibTorch's option types
  TORCH_ARG(double, lr);                  // the Trainer overwrites it every step
  TORCH_ARG(double, lambda) = 1e-3;       // group-lasso weight, >= 0
  TORCH_ARG(double, epsilon) = 0.0;       // half-space parameter, in [0, 1)
  TORCH_ARG(double, momentum) = 0.0;      // heavy ball on d, in [0, 1)
  TORCH_ARG(bool, nesterov) = false;
  TORCH_ARG(double, weight_decay) = 0.0;          // on every entry, grouped or not
  TORCH_ARG(int64_t, prox_steps) = 0;             // steps of stage 1 (N_P in steps)
  TORCH_ARG(double, upper_group_sparsity) = 1.0;  // U in (0, 1]; 1 = no cap
  TORCH_ARG(bool, subgradient) = false;           // stage 1 as the OTOv1 code

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override;
  void set_lr(const double lr) override;
  ~HspgOptimizerOptions() override = default;
};

// Momentum buffer of one tensor: LibTorch's own (the archive's serialize() pastes this name).
using HspgOptimizerParamState = torch::optim::SGDParamState;

class HspgOptimizer : public torch::optim::Optimizer {
 public:
  // Given the groups that are zero after this step whatever happens (`zero`) and those the step
  // would also zero (`candidates`), both bool [num_groups], returns the candidates that may go
  // to zero (a subset); `score` [num_groups] ranks them, smaller first (the trial norms).
  using ZeroLimit = std::function<torch::Tensor(
      const torch::Tensor& zero, const torch::Tensor& candidates, const torch::Tensor& score)>;

  // One parameter group holding `params`; every slice of `groups` must index a tensor of
  // `params`, groups must be disjoint, a tensor may be indexed along one dimension only.
  // Throws c10::Error on bad options ("hspg: epsilon must be in [0, 1), got 2") or groups.
  HspgOptimizer(std::vector<torch::Tensor> params, std::vector<GroupFamily> groups,
                HspgOptimizerOptions defaults);

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
  // Applied to every step's candidates after the upper_group_sparsity cap (not saved: whoever
  // makes the optimizer sets it again, as Hspg::make_optimizer does).
  void limit_zeros(ZeroLimit limit) { limit_ = std::move(limit); }

  HspgOptimizerOptions& options();          // of the single parameter group
  int64_t steps() const { return steps_; }  // steps taken (restored by load)
  bool half_space_stage() const;            // the next step is a half-space step
  int64_t num_groups() const { return num_groups_; }
  const std::vector<GroupFamily>& families() const { return families_; }
  torch::Tensor group_norms() const;  // [num_groups] double, ||x_g|| now (family order)
  int64_t zero_groups() const;        // groups with ||x_g|| = 0 now
  // Groups zeroed by a stage-2 projection (or a stage-1 soft-threshold) in this object's life.
  int64_t projections() const { return projections_; }

 private:
  struct Axis {  // the grouped dimension of one parameter
    int64_t dim = 0;
    int64_t offset = -1;         // >= 0: position j is group offset + j (no index needed)
    torch::Tensor gid;           // [size(dim)] long: global group id, num_groups_ = ungrouped
    std::vector<int64_t> shape;  // broadcast shape of a per-position vector
  };
  bool grouped(size_t i) const { return axes_[i].gid.defined(); }
  // acc[g] += sum over the entries of group g in parameter i of a*b (acc: [num_groups + 1],
  // the last slot collects ungrouped entries).
  void accumulate(torch::Tensor& acc, size_t i, const torch::Tensor& a,
                  const torch::Tensor& b) const;
  // Per-group sums of a*b over every grouped parameter (a[i], b[i] for parameter i).
  torch::Tensor group_dot(const std::vector<torch::Tensor>& a,
                          const std::vector<torch::Tensor>& b) const;
  // Per-entry view of a per-group vector v ([num_groups + 1]) for parameter i.
  torch::Tensor expand(size_t i, const torch::Tensor& v) const;

  std::vector<GroupFamily> families_;
  ZeroLimit limit_;
  std::vector<Axis> axes_;              // one per parameter; gid undefined = not grouped
  torch::TensorOptions group_options_;  // dtype/device of per-group vectors (first grouped tensor)
  mutable torch::Tensor scratch_;       // reused by accumulate()
  int64_t num_groups_ = 0;
  int64_t steps_ = 0;
  int64_t projections_ = 0;

  template <typename Self, typename Archive>
  static void serialize(Self& self, Archive& archive) {
    _TORCH_OPTIM_SERIALIZE_WITH_TEMPLATE_ARG(HspgOptimizer);
  }
};

}  // namespace nnslim::optim
