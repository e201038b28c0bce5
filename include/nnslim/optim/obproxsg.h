// The OBProx-SG optimizer (METHODS.md §2.5): element-wise l1, Prox-SG soft-thresholding for
// prox_steps steps, then orthant steps that never flip a sign and never revive a zero. The
// method that trains with it is methods/obproxsg.h.
//
// Per parameter group: lambda > 0 -> l1-regularised steps; lambda = 0 -> plain SGD steps.
// d = grad + weight_decay * x, heavy-ball momentum as torch::optim::SGD, then
//   stage 1 (first prox_steps steps): x <- sign(u) max(|u| - lr*lambda, 0), u = x - lr*d
//   stage 2 (orthant): zeta = sign(x); x^ = x - lr*(d + lambda*zeta) where zeta != 0, x where
//     zeta = 0; x_i <- x^_i if x^_i * zeta_i > epsilon, else 0 (never a sign flip, never a
//     revival).
// State: momentum buffers (LibTorch's SGDParamState) and the step counter, both saved.
#pragma once

#include <torch/arg.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/archive.h>

#include <cstdint>
#include <vector>

namespace nnslim::optim {

struct ObProxSgOptimizerOptions
    : public torch::optim::OptimizerCloneableOptions<ObProxSgOptimizerOptions> {
  ObProxSgOptimizerOptions(double lr = 0.1);  // NOLINT
  TORCH_ARG(double, lr);
  TORCH_ARG(double, lambda) = 1e-4;
  TORCH_ARG(double, epsilon) = 0.0;  // >= 0
  TORCH_ARG(double, momentum) = 0.0;
  TORCH_ARG(bool, nesterov) = false;
  TORCH_ARG(double, weight_decay) = 0.0;
  TORCH_ARG(int64_t, prox_steps) = 0;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override;
  void set_lr(const double lr) override;
  ~ObProxSgOptimizerOptions() override = default;
};

// Momentum buffer of one tensor: LibTorch's own (the archive's serialize() pastes this name).
using ObProxSgOptimizerParamState = torch::optim::SGDParamState;

class ObProxSgOptimizer : public torch::optim::Optimizer {
 public:
  ObProxSgOptimizer(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                    ObProxSgOptimizerOptions defaults);
  ObProxSgOptimizer(std::vector<torch::Tensor> params, ObProxSgOptimizerOptions defaults);
  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
  int64_t steps() const { return steps_; }
  bool orthant_stage() const;  // the next step is an orthant step (judged on group 0)

 private:
  int64_t steps_ = 0;
  template <typename Self, typename Archive>
  static void serialize(Self& self, Archive& archive) {
    _TORCH_OPTIM_SERIALIZE_WITH_TEMPLATE_ARG(ObProxSgOptimizer);
  }
};

}  // namespace nnslim::optim
