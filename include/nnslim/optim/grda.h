// The gRDA optimizer (Chao, Wang, Xing, Cheng; NeurIPS 2020) -- METHODS.md §5.2: generalized
// regularized dual averaging with an l1 soft-threshold that grows with the number of steps. Per
// parameter tensor w it keeps
//   accumulator  acc  (same shape/dtype/device as w; starts as a clone of w at its first step)
//   step         n    (steps in which w had a gradient)
//   threshold    G    (accumulated soft-threshold, a double)
// and on every step in which w.grad is defined (METHODS.md §5.2):
//   n   <- n + 1
//   acc <- acc - lr * grad
//   G   <- G + c * lr^(mu + 1/2) * (n^mu - (n-1)^mu)       (lr = the CURRENT rate)
//   w   <- sign(acc) * max(|acc| - G, 0)                    (pruned entries are +0.0)
// No momentum, no weight decay. With c = 0 the iterates are exactly those of plain SGD.
// The state is saved by save()/load() (torch::optim archives), so a resumed run continues
// bit for bit.
// The method that trains with it is methods/grda.h.
#pragma once

#include <torch/arg.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>
#include <torch/serialize/archive.h>

#include <vector>

namespace nnslim::optim {

struct GrdaOptimizerOptions : public torch::optim::OptimizerCloneableOptions<GrdaOptimizerOptions> {
  GrdaOptimizerOptions(double lr = 0.01);  // NOLINT: implicit, as LibTorch's option types
  TORCH_ARG(double, lr);                   // the Trainer overwrites it every step (set_lr)
  TORCH_ARG(double, c) = 0.0;              // threshold scale, >= 0 (0 = plain SGD)
  TORCH_ARG(double, mu) = 0.51;  // threshold growth exponent, > 0 (0.5 < mu < 1 recommended)

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override;
  void set_lr(const double lr) override;
  ~GrdaOptimizerOptions() override = default;
};

struct GrdaOptimizerParamState
    : public torch::optim::OptimizerCloneableParamState<GrdaOptimizerParamState> {
  TORCH_ARG(torch::Tensor, accumulator);  // same shape as the parameter
  TORCH_ARG(int64_t, step) = 0;           // n
  TORCH_ARG(double, threshold) = 0.0;     // G

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  ~GrdaOptimizerParamState() override = default;
};

class GrdaOptimizer : public torch::optim::Optimizer {
 public:
  // Throws c10::Error if lr < 0, c < 0 or mu <= 0 ("grda: mu must be > 0, got -1").
  GrdaOptimizer(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                GrdaOptimizerOptions defaults);
  GrdaOptimizer(std::vector<torch::Tensor> params, GrdaOptimizerOptions defaults);

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  // The state of parameter p, or nullptr before p's first step (tests, reports).
  const GrdaOptimizerParamState* state_of(const torch::Tensor& p) const;
  // Largest threshold G over all parameters (0 before the first step).
  double max_threshold() const;

 private:
  template <typename Self, typename Archive>
  static void serialize(Self& self, Archive& archive) {
    _TORCH_OPTIM_SERIALIZE_WITH_TEMPLATE_ARG(GrdaOptimizer);
  }
};

}  // namespace nnslim::optim
