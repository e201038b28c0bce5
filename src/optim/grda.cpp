// The gRDA optimizer (METHODS.md §5.2), step for step as the authors' grda_pytorch.py.
#include "nnslim/optim/grda.h"

#include "nnslim/optim/momentum.h"

#include <torch/torch.h>

#include <cmath>

namespace nnslim::optim {

// ---- options and state (torch::optim conventions, cf. LibTorch's sgd.cpp) -------------------

GrdaOptimizerOptions::GrdaOptimizerOptions(double lr) : lr_(lr) {}

void GrdaOptimizerOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(c);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(mu);
}

void GrdaOptimizerOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, c);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, mu);
}

double GrdaOptimizerOptions::get_lr() const { return lr(); }
void GrdaOptimizerOptions::set_lr(const double lr) { this->lr(lr); }

void GrdaOptimizerParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(accumulator);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(threshold);
}

void GrdaOptimizerParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, accumulator);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, threshold);
}

namespace {

void check_options(const GrdaOptimizerOptions& o) {
  TORCH_CHECK(o.lr() >= 0 && std::isfinite(o.lr()), "grda: lr must be >= 0, got ", o.lr());
  TORCH_CHECK(o.c() >= 0 && std::isfinite(o.c()), "grda: c must be >= 0, got ", o.c());
  TORCH_CHECK(o.mu() > 0 && std::isfinite(o.mu()), "grda: mu must be > 0, got ", o.mu());
}

}  // namespace

GrdaOptimizer::GrdaOptimizer(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                             GrdaOptimizerOptions defaults)
    : Optimizer(std::move(param_groups), std::make_unique<GrdaOptimizerOptions>(defaults)) {
  check_options(defaults);
  for (const auto& g : this->param_groups())
    check_options(static_cast<const GrdaOptimizerOptions&>(g.options()));
}

GrdaOptimizer::GrdaOptimizer(std::vector<torch::Tensor> params, GrdaOptimizerOptions defaults)
    : GrdaOptimizer({torch::optim::OptimizerParamGroup(std::move(params))}, defaults) {}

torch::Tensor GrdaOptimizer::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = {};
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const GrdaOptimizerOptions&>(group.options());
    const double lr = o.lr(), c = o.c(), mu = o.mu();
    // c * lr^(mu + 1/2): the part of the threshold increment that depends on the CURRENT rate
    // (§5.2, invariant 3: a piecewise schedule sums its pieces, it is not c*lr_now^..*n^mu).
    const double scale = c * std::pow(lr, mu + 0.5);
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;  // no gradient: the tensor's counter stays (inv. 6)
      auto key = optimizer_state_key<decltype(state_)>(p);
      if (state_.find(key) == state_.end()) {
        // The accumulator starts at the initial weights w0, not at zero (§5.2, invariant 5).
        auto s = std::make_unique<GrdaOptimizerParamState>();
        s->accumulator(p.detach().clone());
        state_[key] = std::move(s);
      }
      auto& s = static_cast<GrdaOptimizerParamState&>(*state_[key]);
      const int64_t n = s.step() + 1;
      s.step(n);
      auto acc = s.accumulator();
      // sub_out below would resize the weight to a mis-shaped accumulator (a bad restore).
      TORCH_CHECK(acc.defined() && acc.sizes() == p.sizes(), "grda: accumulator of shape ",
                  acc.defined() ? acc.sizes() : c10::IntArrayRef{}, " for a parameter of shape ",
                  p.sizes());
      // Dual averaging of the raw stochastic gradients: the same add_ SGD does to w, so that
      // c = 0 reproduces plain SGD bit for bit (invariant 1).
      acc.add_(p.grad(), -lr);
      s.threshold(s.threshold() + scale * (std::pow(static_cast<double>(n), mu) -
                                           std::pow(static_cast<double>(n - 1), mu)));
      // w = sign(acc) * max(|acc| - G, 0), computed as acc - clamp(acc, -G, G): bitwise the same
      // values for |acc| > G (round-to-nearest is symmetric), and pruned entries become +0.0
      // rather than the -0.0 the literal formula gives for negative acc. +0.0 zeros are what
      // the sparse *.nnslim encoding compresses best.
      const double G = s.threshold();
      auto w = p.detach();
      torch::sub_out(w, acc, acc.clamp(-G, G));
    }
  }
  return loss;
}

void GrdaOptimizer::save(torch::serialize::OutputArchive& archive) const {
  serialize(*this, archive);
}

void GrdaOptimizer::load(torch::serialize::InputArchive& archive) { serialize(*this, archive); }

const GrdaOptimizerParamState* GrdaOptimizer::state_of(const torch::Tensor& p) const {
  auto it = state_.find(optimizer_state_key<decltype(state_)>(p));
  if (it == state_.end()) return nullptr;
  return static_cast<const GrdaOptimizerParamState*>(it->second.get());
}

double GrdaOptimizer::max_threshold() const {
  double g = 0;
  for (const auto& kv : state_)
    g = std::max(g, static_cast<const GrdaOptimizerParamState&>(*kv.second).threshold());
  return g;
}

}  // namespace nnslim::optim
