// The HspgOptimizer optimizer (METHODS.md §2.5): Prox-SG, then half-space steps over variable
// groups.
#include "nnslim/optim/hspg.h"

#include "nnslim/optim/momentum.h"

#include <torch/torch.h>

#include <cmath>
#include <map>

namespace nnslim::optim {

torch::Tensor candidates_by_score(const torch::Tensor& cand, const torch::Tensor& score) {
  auto keyed = torch::where(cand, score, torch::full_like(score, INFINITY));
  auto order = std::get<1>(torch::sort(keyed, /*stable=*/true, 0, /*descending=*/false));
  return order.slice(0, 0, cand.sum().item<int64_t>());
}

torch::Tensor group_soft_threshold(const torch::Tensor& u, double threshold) {
  double norm = u.norm().item<double>();
  if (!(norm > threshold)) return torch::zeros_like(u);
  return u * (1.0 - threshold / norm);
}

// ---- HspgOptimizer options and state
// --------------------------------------------------------------------

HspgOptimizerOptions::HspgOptimizerOptions(double lr) : lr_(lr) {}

void HspgOptimizerOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lambda);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(epsilon);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(momentum);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(nesterov);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(prox_steps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(upper_group_sparsity);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(subgradient);
}

void HspgOptimizerOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lambda);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, epsilon);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, momentum);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, nesterov);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, prox_steps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, upper_group_sparsity);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, subgradient);
}

double HspgOptimizerOptions::get_lr() const { return lr(); }
void HspgOptimizerOptions::set_lr(const double lr) { this->lr(lr); }

namespace {

void check_options(const HspgOptimizerOptions& o) {
  check_sgd_settings("hspg", o.lr(), o.momentum(), o.nesterov(), o.weight_decay());
  TORCH_CHECK(o.lambda() >= 0 && std::isfinite(o.lambda()), "hspg: lambda must be >= 0, got ",
              o.lambda());
  TORCH_CHECK(o.epsilon() >= 0 && o.epsilon() < 1, "hspg: epsilon must be in [0, 1), got ",
              o.epsilon());
  TORCH_CHECK(o.prox_steps() >= 0, "hspg: prox steps must be >= 0, got ", o.prox_steps());
  TORCH_CHECK(o.upper_group_sparsity() > 0 && o.upper_group_sparsity() <= 1,
              "hspg: target-group-sparsity must be in (0, 1], got ", o.upper_group_sparsity());
}

// Of the candidates, the `allowed` ones with the smallest score (ties: lower index first).
torch::Tensor limit_candidates(const torch::Tensor& cand, int64_t allowed,
                               const torch::Tensor& score) {
  if (cand.sum().item<int64_t>() <= allowed) return cand;
  auto out = torch::zeros_like(cand);
  if (allowed > 0) out.index_fill_(0, candidates_by_score(cand, score).slice(0, 0, allowed), true);
  return out;
}

}  // namespace

// ---- HspgOptimizer
// --------------------------------------------------------------------------------------

HspgOptimizer::HspgOptimizer(std::vector<torch::Tensor> params, std::vector<GroupFamily> groups,
                             HspgOptimizerOptions defaults)
    : Optimizer({torch::optim::OptimizerParamGroup(params)},
                std::make_unique<HspgOptimizerOptions>(defaults)),
      families_(std::move(groups)) {
  check_options(defaults);
  const auto& ps = param_groups_[0].params();
  std::map<const void*, size_t> index;
  for (size_t i = 0; i < ps.size(); ++i) index[ps[i].unsafeGetTensorImpl()] = i;
  axes_.resize(ps.size());
  std::vector<std::vector<int64_t>> gid(ps.size());  // host copies while building
  for (const auto& f : families_) {
    TORCH_CHECK(f.count >= 1, "hspg: group family '", f.name, "' has no groups");
    for (const auto& s : f.slices) {
      auto it = index.find(s.param.unsafeGetTensorImpl());
      TORCH_CHECK(it != index.end(), "hspg: a tensor of group family '", f.name,
                  "' is not among the optimizer's parameters");
      size_t i = it->second;
      TORCH_CHECK(s.dim >= 0 && s.dim < s.param.dim(), "hspg: family '", f.name,
                  "' indexes dimension ", s.dim, " of a ", s.param.dim(), "-d tensor");
      const int64_t size = s.param.size(s.dim);
      if (gid[i].empty()) {
        gid[i].assign(size, -1);
        axes_[i].dim = s.dim;
      }
      TORCH_CHECK(axes_[i].dim == s.dim, "hspg: family '", f.name,
                  "' indexes a tensor along a second dimension");
      TORCH_CHECK(!s.positions.empty() && s.positions.size() % f.count == 0, "hspg: family '",
                  f.name, "': ", s.positions.size(), " positions for ", f.count, " groups");
      const size_t w = s.positions.size() / f.count;
      for (size_t k = 0; k < s.positions.size(); ++k) {
        int64_t pos = s.positions[k];
        TORCH_CHECK(pos >= 0 && pos < size, "hspg: family '", f.name, "': position ", pos,
                    " out of range ", size);
        TORCH_CHECK(gid[i][pos] < 0, "hspg: family '", f.name, "' overlaps another group");
        gid[i][pos] = num_groups_ + static_cast<int64_t>(k / w);
      }
    }
    num_groups_ += f.count;
  }
  bool first = true;
  for (size_t i = 0; i < ps.size(); ++i) {
    if (gid[i].empty()) continue;
    for (auto& g : gid[i])
      if (g < 0) g = num_groups_;  // the "ungrouped" slot
    Axis& ax = axes_[i];
    ax.gid = torch::tensor(gid[i], torch::kLong).to(ps[i].device());
    ax.shape.assign(ps[i].dim(), 1);
    ax.shape[ax.dim] = ps[i].size(ax.dim);
    // The common case -- a whole filter dimension, channels in order -- needs no gather.
    bool range = gid[i][0] < num_groups_;
    for (size_t j = 1; range && j < gid[i].size(); ++j) range = gid[i][j] == gid[i][0] + int64_t(j);
    ax.offset = range ? gid[i][0] : -1;
    if (first) group_options_ = ps[i].options().requires_grad(false);
    first = false;
  }
}

HspgOptimizerOptions& HspgOptimizer::options() {
  return static_cast<HspgOptimizerOptions&>(param_groups_[0].options());
}

bool HspgOptimizer::half_space_stage() const {
  return steps_ >=
         static_cast<const HspgOptimizerOptions&>(param_groups_[0].options()).prox_steps();
}

void HspgOptimizer::accumulate(torch::Tensor& acc, size_t i, const torch::Tensor& a,
                               const torch::Tensor& b) const {
  const Axis& ax = axes_[i];
  const int64_t size = ax.shape[ax.dim];
  // Large temporaries are what this costs (fresh pages on every step), so squares go through
  // a norm reduction and products through one reused scratch buffer.
  torch::Tensor rows;
  if (a.is_same(b)) {
    rows = (ax.dim == 0 ? a : a.movedim(ax.dim, 0)).reshape({size, -1}).norm(2, {1}).square();
  } else {
    if (!scratch_.defined() || scratch_.numel() < a.numel() ||
        scratch_.scalar_type() != a.scalar_type() || scratch_.device() != a.device())
      scratch_ = torch::empty({a.numel()}, a.options().requires_grad(false));
    auto prod = scratch_.narrow(0, 0, a.numel()).view(a.sizes());
    torch::mul_out(prod, a, b);
    rows = (ax.dim == 0 ? prod : prod.movedim(ax.dim, 0)).reshape({size, -1}).sum(1);
  }
  if (rows.scalar_type() != acc.scalar_type()) rows = rows.to(acc.scalar_type());
  if (ax.offset >= 0)
    acc.narrow(0, ax.offset, size).add_(rows);
  else
    acc.index_add_(0, ax.gid, rows);
}

torch::Tensor HspgOptimizer::group_dot(const std::vector<torch::Tensor>& a,
                                       const std::vector<torch::Tensor>& b) const {
  auto acc = torch::zeros({num_groups_ + 1}, group_options_);
  for (size_t i = 0; i < axes_.size(); ++i)
    if (grouped(i)) accumulate(acc, i, a[i], b[i]);
  return acc;
}

torch::Tensor HspgOptimizer::expand(size_t i, const torch::Tensor& v) const {
  const Axis& ax = axes_[i];
  auto e = ax.offset >= 0 ? v.narrow(0, ax.offset, ax.shape[ax.dim]) : v.index_select(0, ax.gid);
  e = e.view(ax.shape);
  const auto& p = param_groups_[0].params()[i];
  return v.scalar_type() == torch::kBool || v.scalar_type() == p.scalar_type()
             ? e
             : e.to(p.scalar_type());
}

torch::Tensor HspgOptimizer::group_norms() const {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> x;
  for (const auto& p : param_groups_[0].params()) x.push_back(p.detach());
  return group_dot(x, x).slice(0, 0, num_groups_).sqrt();
}

int64_t HspgOptimizer::zero_groups() const { return (group_norms() == 0).sum().item<int64_t>(); }

torch::Tensor HspgOptimizer::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = {};
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  TORCH_CHECK(param_groups_.size() == 1, "hspg: exactly one parameter group is supported");
  const auto& o = options();
  const auto& params = param_groups_[0].params();
  const size_t n = params.size();
  const double lr = o.lr(), lambda = o.lambda();
  const bool half = half_space_stage();
  // The group-lasso gradient lambda * x_g/||x_g|| enters d in stage 2, and in stage 1 of the
  // OTOv1 form (§2.5); a zero group gets none.
  const bool reg_grad = lambda > 0 && (half || o.subgradient());
  const int64_t G = num_groups_;

  torch::Tensor x2, reg, dx;  // [G + 1]: ||x_g||^2, lambda/||x_g|| (0 if x_g = 0), <d_g, x_g>
  if (G > 0 && (half || reg_grad)) {
    std::vector<torch::Tensor> x(n);
    for (size_t i = 0; i < n; ++i)
      if (grouped(i)) x[i] = params[i].detach();
    x2 = group_dot(x, x);
  }
  if (G > 0 && reg_grad) {
    // Stage 1's OTOv1 form divides by ||x_g|| + 1e-6 (§2.5, code); stage 2 by ||x_g||.
    const double guard = half ? 0.0 : 1e-6;
    reg = torch::where(x2 > 0, lambda / (x2.sqrt() + guard), torch::zeros_like(x2));
    reg[G] = 0;
  }
  if (G > 0 && half) dx = torch::zeros({G + 1}, group_options_);

  for (size_t i = 0; i < n; ++i) {
    const auto& p = params[i];
    if (!p.grad().defined()) continue;  // no step (its groups are still projected below)
    auto x = p.detach();
    auto d_p = p.grad();
    if (o.weight_decay() != 0) d_p = d_p.add(x, o.weight_decay());
    d_p = heavy_ball(state_, p, d_p, o.momentum(), o.nesterov());
    // The group-lasso term joins after the momentum buffer, never inside it: stage 1's
    // threshold is lr * lambda per step, so stage 2 (and the subgradient form) apply the same
    // lr * lambda * x_g/||x_g|| per step. Through the buffer it would grow to
    // lambda / (1 - momentum), 10x at momentum 0.9, the moment the stages switch.
    if (grouped(i) && reg.defined()) d_p = torch::addcmul(d_p, x, expand(i, reg));
    // Stage 2 needs <x^_g, x_g> = ||x_g||^2 - lr <d_g, x_g> of the trial point x^ = x - lr d.
    if (dx.defined() && grouped(i)) accumulate(dx, i, d_p, x);
    x.add_(d_p, -1 * lr);  // the SGD update (the trial point in stage 2, u in stage 1)
  }
  ++steps_;
  if (G == 0) return loss;

  const int64_t cap = static_cast<int64_t>(std::floor(o.upper_group_sparsity() * G + 1e-9));
  torch::Tensor norms;
  auto trial_norms = [&] {  // of the parameters as they are now (the trial point)
    if (!norms.defined()) norms = group_norms();
    return norms;
  };
  // The cap, then the limit callback: which of `cand` may join the zero groups `zero`.
  auto limit = [&](const torch::Tensor& zero, torch::Tensor cand, const torch::Tensor& score) {
    if (cap < G) cand = limit_candidates(cand, cap - zero.sum().item<int64_t>(), score);
    if (limit_ && cand.any().item<bool>()) cand = limit_(zero, cand, score).logical_and(cand);
    return cand;
  };
  const bool limited = cap < G || limit_;
  torch::Tensor scale, zero;  // [G]: factor on u (stage 1); true = set the group to 0
  if (half) {
    // §2.5 stage 2: zero groups are absorbing; a nonzero group whose trial point leaves the
    // half-space {z : <z, x_g> >= epsilon ||x_g||^2} is projected to 0.
    auto x2g = x2.slice(0, 0, G);
    auto dot = x2g - lr * dx.slice(0, 0, G);
    auto was_zero = x2g == 0;
    auto cand = was_zero.logical_not().logical_and(dot < o.epsilon() * x2g);
    if (limited) cand = limit(was_zero, cand, trial_norms());
    projections_ += cand.sum().item<int64_t>();
    zero = was_zero.logical_or(cand);
  } else if (!o.subgradient() && lambda > 0) {
    // §2.5 stage 1 (paper form): group soft-threshold of u = x - lr d at lr * lambda.
    const double t = lr * lambda;
    auto un = trial_norms();
    scale = torch::where(un > t, 1.0 - t / un, torch::zeros_like(un));
    zero = scale == 0;
    auto forced = un == 0;  // u_g = 0: zero whatever the cap says
    if (limited) {
      auto cand = zero.logical_and(forced.logical_not());
      auto kept = limit(forced, cand, un);
      scale = torch::where(cand.logical_and(kept.logical_not()), torch::ones_like(scale), scale);
      zero = forced.logical_or(kept);
    }
    projections_ += zero.logical_and(forced.logical_not()).sum().item<int64_t>();
  }
  const bool any_zero = zero.defined() && zero.any().item<bool>();
  if (!scale.defined() && !any_zero) return loss;  // lambda = 0 in stage 1: exactly SGD
  torch::Tensor scale_ext, zero_ext;
  if (scale.defined()) scale_ext = torch::cat({scale, torch::ones({1}, scale.options())});
  if (any_zero) zero_ext = torch::cat({zero, torch::zeros({1}, zero.options())});
  for (size_t i = 0; i < n; ++i) {
    if (!grouped(i)) continue;
    auto p = params[i].detach();
    if (scale_ext.defined()) p.mul_(expand(i, scale_ext));
    if (any_zero) p.masked_fill_(expand(i, zero_ext), 0.0);  // +0.0 exactly
  }
  return loss;
}

void HspgOptimizer::save(torch::serialize::OutputArchive& archive) const {
  serialize(*this, archive);
  write_step_count(archive, steps_);
}

void HspgOptimizer::load(torch::serialize::InputArchive& archive) {
  serialize(*this, archive);
  steps_ = read_step_count(archive);
}

}  // namespace nnslim::optim
