// The OBProx-SG optimizer (METHODS.md §2.5).
#include "nnslim/optim/obproxsg.h"

#include "nnslim/optim/momentum.h"

#include <torch/torch.h>

#include <cmath>

namespace nnslim::optim {

ObProxSgOptimizerOptions::ObProxSgOptimizerOptions(double lr) : lr_(lr) {}

void ObProxSgOptimizerOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lambda);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(epsilon);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(momentum);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(nesterov);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(prox_steps);
}

void ObProxSgOptimizerOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lambda);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, epsilon);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, momentum);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, nesterov);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, prox_steps);
}

double ObProxSgOptimizerOptions::get_lr() const { return lr(); }
void ObProxSgOptimizerOptions::set_lr(const double lr) { this->lr(lr); }

namespace {
void check_options(const ObProxSgOptimizerOptions& o) {
  check_sgd_settings("obproxsg", o.lr(), o.momentum(), o.nesterov(), o.weight_decay());
  TORCH_CHECK(o.lambda() >= 0 && std::isfinite(o.lambda()), "obproxsg: lambda must be >= 0, got ",
              o.lambda());
  TORCH_CHECK(o.epsilon() >= 0 && std::isfinite(o.epsilon()),
              "obproxsg: epsilon must be >= 0, got ", o.epsilon());
  TORCH_CHECK(o.prox_steps() >= 0, "obproxsg: prox steps must be >= 0, got ", o.prox_steps());
}
}  // namespace

ObProxSgOptimizer::ObProxSgOptimizer(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                                     ObProxSgOptimizerOptions defaults)
    : Optimizer(std::move(param_groups), std::make_unique<ObProxSgOptimizerOptions>(defaults)) {
  check_options(defaults);
  for (const auto& g : this->param_groups())
    check_options(static_cast<const ObProxSgOptimizerOptions&>(g.options()));
}

ObProxSgOptimizer::ObProxSgOptimizer(std::vector<torch::Tensor> params,
                                     ObProxSgOptimizerOptions defaults)
    : ObProxSgOptimizer({torch::optim::OptimizerParamGroup(std::move(params))}, defaults) {}

bool ObProxSgOptimizer::orthant_stage() const {
  return !param_groups_.empty() &&
         steps_ >=
             static_cast<const ObProxSgOptimizerOptions&>(param_groups_[0].options()).prox_steps();
}

torch::Tensor ObProxSgOptimizer::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = {};
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const ObProxSgOptimizerOptions&>(group.options());
    const double lr = o.lr(), lambda = o.lambda();
    const bool orthant = steps_ >= o.prox_steps();
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto x = p.detach();
      auto d_p = p.grad();
      if (o.weight_decay() != 0) d_p = d_p.add(x, o.weight_decay());
      d_p = heavy_ball(state_, p, d_p, o.momentum(), o.nesterov());
      torch::Tensor zeta;
      if (lambda > 0 && orthant) {
        // §2.5 orthant step: direction d + lambda*zeta on the current orthant face; zero
        // coordinates get no direction. lambda*zeta joins after the momentum buffer, as the
        // Prox-SG threshold is lr*lambda per step: the l1 strength is the same in both stages
        // (through the buffer it would grow to lambda / (1 - momentum)).
        zeta = x.sign();
        d_p = d_p.add(zeta, lambda).mul_(zeta != 0);
      }
      if (lambda == 0) {
        x.add_(d_p, -1 * lr);  // plain SGD
      } else if (!orthant) {
        // Prox-SG: soft-threshold u at lr*lambda, as u - clamp(u, -t, t) (zeros are +0.0).
        auto u = x.add(d_p, -1 * lr);
        const double t = lr * lambda;
        torch::sub_out(x, u, u.clamp(-t, t));
      } else {
        // Projection onto the orthant face: a coordinate that would cross (or stay at) zero
        // becomes 0 -- never a sign flip, never a revival.
        auto xh = x.add(d_p, -1 * lr);
        x.copy_(xh.masked_fill_((xh * zeta > o.epsilon()).logical_not(), 0.0));
      }
    }
  }
  ++steps_;
  return loss;
}

void ObProxSgOptimizer::save(torch::serialize::OutputArchive& archive) const {
  serialize(*this, archive);
  write_step_count(archive, steps_);
}

void ObProxSgOptimizer::load(torch::serialize::InputArchive& archive) {
  serialize(*this, archive);
  steps_ = read_step_count(archive);
}

}  // namespace nnslim::optim
