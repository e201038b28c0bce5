// Compression via sparse optimisation (METHODS.md §2): the HSPG optimizer over zero-invariant
// groups, zero-group surgery, and the element-wise OBProx-SG variant.
#include "nnslim/methods/hspg.h"

#include "nnslim/methods/keep_zeros.h"
#include "nnslim/methods/optim_state.h"

#include "nnslim/graph/cost.h"
#include "nnslim/graph/surgery.h"
#include "nnslim/methods/magnitude.h"  // split_names
#include "nnslim/methods/pruning_plan.h"

#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <type_traits>

namespace nnslim {

namespace {

// d <- heavy-ball(d), exactly the arithmetic of torch::optim::SGD::step (dampening 0), so that
// the regulariser switched off gives SGD bit for bit (§2.8 invariant 4).
template <typename State, typename StateMap>
torch::Tensor apply_momentum(StateMap& state, const torch::Tensor& p, torch::Tensor d_p,
                             double momentum, bool nesterov) {
  if (momentum == 0) return d_p;
  auto key = optimizer_state_key<StateMap>(p);
  auto it = state.find(key);
  torch::Tensor buf;
  if (it == state.end()) {
    buf = torch::clone(d_p).detach();
    auto s = std::make_unique<State>();
    s->momentum_buffer(buf);
    state[key] = std::move(s);
  } else {
    buf = static_cast<State&>(*it->second).momentum_buffer();
    buf.mul_(momentum).add_(d_p, 1 - 0.0);
  }
  return nesterov ? d_p.add(buf, momentum) : buf;
}

const char* const kStepsKey = "nnslim_steps";

void write_steps(torch::serialize::OutputArchive& archive, int64_t steps) {
  archive.write(kStepsKey, torch::tensor(steps, torch::kLong));
}

int64_t read_steps(torch::serialize::InputArchive& archive) {
  torch::Tensor t;
  return archive.try_read(kStepsKey, t) ? t.item<int64_t>() : 0;
}

// The indices of the candidates, smallest score first (ties: lower index first).
torch::Tensor by_score(const torch::Tensor& cand, const torch::Tensor& score) {
  auto keyed = torch::where(cand, score, torch::full_like(score, INFINITY));
  auto order = std::get<1>(torch::sort(keyed, /*stable=*/true, 0, /*descending=*/false));
  return order.slice(0, 0, cand.sum().item<int64_t>());
}

// A ZeroLimit that admits candidates (smallest score first) while the MACs of the network that
// the zero groups leave stay >= floor.
HSPG::ZeroLimit mac_floor(std::shared_ptr<const ChannelMacs> macs, int64_t floor) {
  return [macs, floor](const torch::Tensor& zero, const torch::Tensor& cand,
                       const torch::Tensor& score) {
    auto z = zero.to(torch::kCPU, torch::kUInt8).contiguous();
    std::vector<uint8_t> off(z.data_ptr<uint8_t>(), z.data_ptr<uint8_t>() + z.numel());
    auto first = by_score(cand.to(torch::kCPU), score.to(torch::kCPU)).contiguous();
    std::vector<int64_t> tries(first.data_ptr<int64_t>(),
                               first.data_ptr<int64_t>() + first.numel());
    auto accepted = macs->switch_off_while_above(off, tries, floor);
    auto out = torch::zeros({cand.size(0)}, torch::kBool);
    if (!accepted.empty()) out.index_fill_(0, torch::tensor(accepted, torch::kLong), true);
    return out.to(cand.device());
  };
}

// A quarter of the epochs when unset (§2.7: N_P = 75 of 300 epochs).
int64_t prox_epochs_for(int64_t option, int64_t epochs) {
  return option >= 0 ? option : epochs / 4;
}

}  // namespace

// ---- groups ------------------------------------------------------------------------------------

std::vector<GroupFamily> zero_invariant_groups(const Graph& graph, const Coupling& coupling) {
  std::vector<GroupFamily> out;
  for (int id : coupling.prunable()) {
    const ChannelGroup& g = coupling.groups[id];
    GroupFamily f;
    f.name = g.name;
    f.count = g.channels;
    f.coupling_group = id;
    // §2.4: only the channel's own output side (filter rows, biases, BN gamma/beta, depthwise
    // filters): zeroing exactly these makes the channel output exact zeros. The consumers'
    // input slices stay out of the group, as in the OTOv1 backends.
    for (const auto& pd : g.params) {
      if (!pd.out_side || pd.buffer) continue;
      const Layout& layout = coupling.layouts.at(layout_value(graph, pd));
      std::vector<std::vector<int64_t>> per(g.channels);
      int64_t pos = 0;
      for (const auto& s : layout) {
        if (s.group == id)
          for (int64_t i = 0; i < s.len; ++i)
            for (int64_t m = 0; m < s.mult; ++m) per[s.offset + i].push_back(pos + i * s.mult + m);
        pos += s.len * s.mult;
      }
      GroupSlice slice;
      slice.param = graph.node(pd.node).params.at(pd.param);
      slice.dim = pd.dim;
      for (const auto& v : per) {
        TORCH_INTERNAL_ASSERT(v.size() == per[0].size() && !v.empty(),
                              "hspg: uneven channel widths in group ", g.name);
        slice.positions.insert(slice.positions.end(), v.begin(), v.end());
      }
      f.slices.push_back(std::move(slice));
    }
    if (!f.slices.empty()) out.push_back(std::move(f));
  }
  return out;
}

torch::Tensor group_soft_threshold(const torch::Tensor& u, double threshold) {
  double norm = u.norm().item<double>();
  if (!(norm > threshold)) return torch::zeros_like(u);
  return u * (1.0 - threshold / norm);
}

// ---- HSPG options and state --------------------------------------------------------------------

HSPGOptions::HSPGOptions(double lr) : lr_(lr) {}

void HSPGOptions::serialize(torch::serialize::OutputArchive& archive) const {
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

void HSPGOptions::serialize(torch::serialize::InputArchive& archive) {
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

double HSPGOptions::get_lr() const { return lr(); }
void HSPGOptions::set_lr(const double lr) { this->lr(lr); }

void HSPGParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(momentum_buffer);
}

void HSPGParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, momentum_buffer);
}

namespace {

void check_options(const HSPGOptions& o) {
  TORCH_CHECK(o.lr() >= 0 && std::isfinite(o.lr()), "hspg: lr must be >= 0, got ", o.lr());
  TORCH_CHECK(o.lambda() >= 0 && std::isfinite(o.lambda()), "hspg: lambda must be >= 0, got ",
              o.lambda());
  TORCH_CHECK(o.epsilon() >= 0 && o.epsilon() < 1, "hspg: epsilon must be in [0, 1), got ",
              o.epsilon());
  TORCH_CHECK(o.momentum() >= 0 && o.momentum() < 1, "hspg: momentum must be in [0, 1), got ",
              o.momentum());
  TORCH_CHECK(!o.nesterov() || o.momentum() > 0, "hspg: nesterov needs momentum > 0");
  TORCH_CHECK(o.weight_decay() >= 0, "hspg: weight decay must be >= 0, got ", o.weight_decay());
  TORCH_CHECK(o.prox_steps() >= 0, "hspg: prox steps must be >= 0, got ", o.prox_steps());
  TORCH_CHECK(o.upper_group_sparsity() > 0 && o.upper_group_sparsity() <= 1,
              "hspg: target-group-sparsity must be in (0, 1], got ", o.upper_group_sparsity());
}

// Of the candidates, the `allowed` ones with the smallest score (ties: lower index first).
torch::Tensor limit_candidates(const torch::Tensor& cand, int64_t allowed,
                               const torch::Tensor& score) {
  if (cand.sum().item<int64_t>() <= allowed) return cand;
  auto out = torch::zeros_like(cand);
  if (allowed > 0) out.index_fill_(0, by_score(cand, score).slice(0, 0, allowed), true);
  return out;
}

}  // namespace

// ---- HSPG --------------------------------------------------------------------------------------

HSPG::HSPG(std::vector<torch::Tensor> params, std::vector<GroupFamily> groups, HSPGOptions defaults)
    : Optimizer({torch::optim::OptimizerParamGroup(params)},
                std::make_unique<HSPGOptions>(defaults)),
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

HSPGOptions& HSPG::options() { return static_cast<HSPGOptions&>(param_groups_[0].options()); }

bool HSPG::half_space_stage() const {
  return steps_ >= static_cast<const HSPGOptions&>(param_groups_[0].options()).prox_steps();
}

void HSPG::accumulate(torch::Tensor& acc, size_t i, const torch::Tensor& a,
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

torch::Tensor HSPG::group_dot(const std::vector<torch::Tensor>& a,
                              const std::vector<torch::Tensor>& b) const {
  auto acc = torch::zeros({num_groups_ + 1}, group_options_);
  for (size_t i = 0; i < axes_.size(); ++i)
    if (grouped(i)) accumulate(acc, i, a[i], b[i]);
  return acc;
}

torch::Tensor HSPG::expand(size_t i, const torch::Tensor& v) const {
  const Axis& ax = axes_[i];
  auto e = ax.offset >= 0 ? v.narrow(0, ax.offset, ax.shape[ax.dim]) : v.index_select(0, ax.gid);
  e = e.view(ax.shape);
  const auto& p = param_groups_[0].params()[i];
  return v.scalar_type() == torch::kBool || v.scalar_type() == p.scalar_type()
             ? e
             : e.to(p.scalar_type());
}

torch::Tensor HSPG::group_norms() const {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> x;
  for (const auto& p : param_groups_[0].params()) x.push_back(p.detach());
  return group_dot(x, x).slice(0, 0, num_groups_).sqrt();
}

int64_t HSPG::zero_groups() const { return (group_norms() == 0).sum().item<int64_t>(); }

torch::Tensor HSPG::step(LossClosure closure) {
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
    if (grouped(i) && reg.defined())  // in place unless d_p is still the gradient itself
      d_p = o.weight_decay() != 0 ? d_p.addcmul_(x, expand(i, reg))
                                  : torch::addcmul(d_p, x, expand(i, reg));
    d_p = apply_momentum<HSPGParamState>(state_, p, d_p, o.momentum(), o.nesterov());
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

void HSPG::save(torch::serialize::OutputArchive& archive) const {
  serialize(*this, archive);
  write_steps(archive, steps_);
}

void HSPG::load(torch::serialize::InputArchive& archive) {
  serialize(*this, archive);
  steps_ = read_steps(archive);
}

// ---- the HSPG method ---------------------------------------------------------------------------

void HspgOptions::validate() const {
  TORCH_CHECK(lambda >= 0 && std::isfinite(lambda), "hspg: lambda must be >= 0, got ", lambda);
  TORCH_CHECK(epsilon >= 0 && epsilon < 1, "hspg: epsilon must be in [0, 1), got ", epsilon);
  TORCH_CHECK(prox_epochs >= -1, "hspg: prox-epochs must be >= 0, got ", prox_epochs);
  TORCH_CHECK(target_group_sparsity > 0 && target_group_sparsity <= 1,
              "hspg: target-group-sparsity must be in (0, 1], got ", target_group_sparsity);
  TORCH_CHECK(target_macs > 0 && target_macs <= 1,
              "hspg: target-macs must be a fraction in (0, 1], got ", target_macs);
}

Hspg::Hspg(HspgOptions options) : opt_(std::move(options)) { opt_.validate(); }

void Hspg::check_applicable(const Graph& g) const { check_nodes_exist(g, opt_.exclude, "hspg"); }

std::unique_ptr<torch::optim::Optimizer> Hspg::make_optimizer(Graph& graph,
                                                              const OptimizerSettings& options) {
  check_nodes_exist(graph, opt_.exclude, "hspg");
  Coupling c = analyze_coupling(graph, opt_.exclude);
  HSPGOptions o(options.lr);
  o.lambda(opt_.lambda)
      .epsilon(opt_.epsilon)
      .momentum(options.momentum)
      .nesterov(options.nesterov)
      .weight_decay(options.weight_decay)
      .upper_group_sparsity(opt_.target_group_sparsity)
      .subgradient(opt_.subgradient)
      .prox_steps(std::numeric_limits<int64_t>::max());  // begin() sets it
  auto families = zero_invariant_groups(graph, c);
  std::vector<int> ids;
  for (const auto& f : families) ids.push_back(f.coupling_group);
  auto h = std::make_unique<HSPG>(graph.parameters(), std::move(families), o);
  if (opt_.target_macs < 1) {
    // The budget is a floor on the MACs of the network the zero groups leave: a candidate group
    // is zeroed only if the MACs stay at or above target x the MACs of the model as given.
    const double base = static_cast<double>(count_cost(graph).macs);
    const auto floor = static_cast<int64_t>(std::ceil(opt_.target_macs * base - 1e-6));
    h->limit_zeros(mac_floor(std::make_shared<ChannelMacs>(graph, c, ids), floor));
  }
  return h;
}

void Hspg::begin(Context& ctx) {
  auto* h = dynamic_cast<HSPG*>(&ctx.optimizer);
  if (!h) return;
  h->options().prox_steps(prox_epochs_for(opt_.prox_epochs, ctx.epochs) * ctx.steps_per_epoch);
}

void Hspg::end_epoch(Context& ctx) {
  auto* h = dynamic_cast<HSPG*>(&ctx.optimizer);
  if (!h || !ctx.log || h->num_groups() == 0) return;
  int64_t z = h->zero_groups();
  (*ctx.log)["zero_groups"] = static_cast<double>(z);
  (*ctx.log)["group_sparsity"] = static_cast<double>(z) / h->num_groups();
}

void Hspg::finalize(Context& ctx) {
  Graph& g = ctx.graph;
  Coupling c = analyze_coupling(g, opt_.exclude);
  torch::NoGradGuard no_grad;
  std::map<int, std::vector<int64_t>> keep;
  Json groups = Json::array(), layers = Json::array();
  int64_t total = 0, zeros = 0, removed = 0;
  for (int id : c.prunable()) {
    const ChannelGroup& cg = c.groups[id];
    // §2.6: K = { j : ||x_j|| != 0 } over the channel's out-side entries.
    auto zero = torch::ones({cg.channels}, torch::kBool);
    for (const auto& pd : cg.params)
      if (pd.out_side && !pd.buffer)
        zero.logical_and_((channel_rows(g, c, cg, pd) == 0).all(1).cpu());
    std::vector<int64_t> k;
    auto z = zero.accessor<bool, 1>();
    for (int64_t i = 0; i < cg.channels; ++i)
      if (!z[i]) k.push_back(i);
    const int64_t nz = cg.channels - static_cast<int64_t>(k.size());
    if (k.empty()) k.push_back(0);  // a whole zero group keeps one (zero) channel
    const int64_t kept = static_cast<int64_t>(k.size());
    total += cg.channels;
    zeros += nz;
    removed += cg.channels - kept;
    Json j = Json::object();
    j.set("group", cg.name);
    j.set("channels", cg.channels);
    j.set("zero", nz);
    j.set("kept", kept);
    j.set("group_sparsity", static_cast<double>(nz) / cg.channels);
    Json prods = Json::array();
    for (int p : cg.producers) {
      prods.push(g.node(p).name);
      Json l = Json::object();
      l.set("name", g.node(p).name);
      l.set("group", cg.name);
      l.set("out_channels", cg.channels);
      l.set("kept", kept);
      l.set("group_sparsity", static_cast<double>(nz) / cg.channels);
      layers.push(l);
    }
    j.set("producers", prods);
    groups.push(j);
    if (kept < cg.channels) keep[id] = std::move(k);
  }
  if (!keep.empty()) g = prune_groups(g, c, keep);
  details_ = Json::object();
  details_.set("lambda", opt_.lambda);
  details_.set("epsilon", opt_.epsilon);
  details_.set("prox_epochs", prox_epochs_for(opt_.prox_epochs, ctx.epochs));
  details_.set("target_group_sparsity", opt_.target_group_sparsity);
  details_.set("target_macs", opt_.target_macs);
  details_.set("stage1", opt_.subgradient ? "subgradient" : "prox");
  details_.set("groups_total", total);
  details_.set("zero_groups", zeros);
  details_.set("group_sparsity", total > 0 ? static_cast<double>(zeros) / total : 0.0);
  details_.set("channels_removed", removed);
  details_.set("groups", groups);
  details_.set("layers", layers);
}

void Hspg::describe(Json& out) const { out = details_; }

MethodInfo hspg_method_info() {
  MethodInfo m;
  m.name = "hspg";
  m.summary =
      "sparse optimisation: HSPG group lasso over zero-invariant groups (docs/methods/hspg.md)";
  m.options = {
      {"lambda", "1e-3", "group-lasso weight lambda >= 0 (paper: 5e-4 VGG16-BN, 1e-3 ResNet-50)"},
      {"epsilon", "0", "half-space parameter in [0, 1) (larger = more aggressive zeroing)"},
      {"prox-epochs", "",
       "epochs of the Prox-SG stage before the half-space stage (default: a "
       "quarter of --epochs)"},
      {"target-group-sparsity", "1", "upper cap on the fraction of zero groups, in (0, 1]"},
      {"target-macs", "1",
       "stop zeroing groups where the compressed network would fall below "
       "this fraction of the input model's MACs, in (0, 1] (lambda must be "
       "large enough to get there)"},
      {"stage1", "prox",
       "first stage: prox (group soft-threshold, the paper) or subgradient "
       "(the OTOv1 code)"},
      {"exclude", "", "comma-separated node names whose channel groups are not regularised"},
  };
  m.create = [](const MethodConfig& cfg) -> std::shared_ptr<Method> {
    HspgOptions o;
    o.lambda = cfg.number("lambda");
    o.epsilon = cfg.number("epsilon");
    if (cfg.has("prox-epochs")) {
      o.prox_epochs = cfg.integer("prox-epochs");
      TORCH_CHECK(o.prox_epochs >= 0, "hspg: prox-epochs must be >= 0, got ", o.prox_epochs);
    }
    o.target_group_sparsity = cfg.number("target-group-sparsity");
    o.target_macs = cfg.number("target-macs");
    std::string s1 = cfg.str("stage1");
    TORCH_CHECK(s1 == "prox" || s1 == "subgradient",
                "hspg: stage1 must be prox or subgradient, got '", s1, "'");
    o.subgradient = s1 == "subgradient";
    o.exclude = split_names(cfg.str("exclude"));
    return std::make_shared<Hspg>(o);
  };
  return m;
}

// ---- OBProx-SG ---------------------------------------------------------------------------------

OBProxSGOptions::OBProxSGOptions(double lr) : lr_(lr) {}

void OBProxSGOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lambda);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(epsilon);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(momentum);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(nesterov);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(prox_steps);
}

void OBProxSGOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lambda);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, epsilon);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, momentum);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, nesterov);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, prox_steps);
}

double OBProxSGOptions::get_lr() const { return lr(); }
void OBProxSGOptions::set_lr(const double lr) { this->lr(lr); }

void OBProxSGParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(momentum_buffer);
}

void OBProxSGParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, momentum_buffer);
}

namespace {
void check_options(const OBProxSGOptions& o) {
  TORCH_CHECK(o.lr() >= 0 && std::isfinite(o.lr()), "obproxsg: lr must be >= 0, got ", o.lr());
  TORCH_CHECK(o.lambda() >= 0 && std::isfinite(o.lambda()), "obproxsg: lambda must be >= 0, got ",
              o.lambda());
  TORCH_CHECK(o.epsilon() >= 0 && std::isfinite(o.epsilon()),
              "obproxsg: epsilon must be >= 0, got ", o.epsilon());
  TORCH_CHECK(o.momentum() >= 0 && o.momentum() < 1, "obproxsg: momentum must be in [0, 1), got ",
              o.momentum());
  TORCH_CHECK(!o.nesterov() || o.momentum() > 0, "obproxsg: nesterov needs momentum > 0");
  TORCH_CHECK(o.weight_decay() >= 0, "obproxsg: weight decay must be >= 0, got ", o.weight_decay());
  TORCH_CHECK(o.prox_steps() >= 0, "obproxsg: prox steps must be >= 0, got ", o.prox_steps());
}
}  // namespace

OBProxSG::OBProxSG(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                   OBProxSGOptions defaults)
    : Optimizer(std::move(param_groups), std::make_unique<OBProxSGOptions>(defaults)) {
  check_options(defaults);
  for (const auto& g : this->param_groups())
    check_options(static_cast<const OBProxSGOptions&>(g.options()));
}

OBProxSG::OBProxSG(std::vector<torch::Tensor> params, OBProxSGOptions defaults)
    : OBProxSG({torch::optim::OptimizerParamGroup(std::move(params))}, defaults) {}

bool OBProxSG::orthant_stage() const {
  return !param_groups_.empty() &&
         steps_ >= static_cast<const OBProxSGOptions&>(param_groups_[0].options()).prox_steps();
}

torch::Tensor OBProxSG::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = {};
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const OBProxSGOptions&>(group.options());
    const double lr = o.lr(), lambda = o.lambda();
    const bool orthant = steps_ >= o.prox_steps();
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto x = p.detach();
      auto d_p = p.grad();
      if (o.weight_decay() != 0) d_p = d_p.add(x, o.weight_decay());
      torch::Tensor zeta;
      if (lambda > 0 && orthant) {
        // §2.5 orthant step: direction d + lambda*zeta on the current orthant face; zero
        // coordinates get no direction.
        zeta = x.sign();
        d_p = d_p.add(zeta, lambda).mul_(zeta != 0);
      }
      d_p = apply_momentum<OBProxSGParamState>(state_, p, d_p, o.momentum(), o.nesterov());
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

void OBProxSG::save(torch::serialize::OutputArchive& archive) const {
  serialize(*this, archive);
  write_steps(archive, steps_);
}

void OBProxSG::load(torch::serialize::InputArchive& archive) {
  serialize(*this, archive);
  steps_ = read_steps(archive);
}

// ---- the OBProx-SG method ----------------------------------------------------------------------

namespace {

// Conv and linear weights carry the l1 term; biases and BN parameters do not [OUR CHOICE].
bool l1_target(const Node& n, const std::string& key) {
  return key == "weight" && (n.op == Op::kConv2d || n.op == Op::kLinear);
}

Json element_report(const Graph& graph) {
  torch::NoGradGuard no_grad;
  int64_t elements = 0, zeros = 0, welements = 0, wzeros = 0;
  Json layers = Json::array();
  for (const auto& n : graph.nodes) {
    if (n.params.empty()) continue;
    int64_t e = 0, z = 0;
    for (const auto& [k, t] : n.params) {
      int64_t tz = t.numel() - t.count_nonzero().item<int64_t>();
      e += t.numel();
      z += tz;
      if (l1_target(n, k)) {
        welements += t.numel();
        wzeros += tz;
      }
    }
    elements += e;
    zeros += z;
    Json l = Json::object();
    l.set("name", n.name);
    l.set("op", op_name(n.op));
    l.set("elements", e);
    l.set("zeros", z);
    l.set("sparsity", e > 0 ? double(z) / e : 0.0);
    layers.push(l);
  }
  Json r = Json::object();
  r.set("sparsity", elements > 0 ? double(zeros) / elements : 0.0);
  r.set("zeros", zeros);
  r.set("elements", elements);
  r.set("weight_sparsity", welements > 0 ? double(wzeros) / welements : 0.0);
  r.set("weight_zeros", wzeros);
  r.set("weight_elements", welements);
  r.set("layers", layers);
  return r;
}

}  // namespace

void ObproxsgOptions::validate() const {
  TORCH_CHECK(lambda >= 0 && std::isfinite(lambda), "obproxsg: lambda must be >= 0, got ", lambda);
  TORCH_CHECK(epsilon >= 0 && std::isfinite(epsilon), "obproxsg: epsilon must be >= 0, got ",
              epsilon);
  TORCH_CHECK(prox_epochs >= -1, "obproxsg: prox-epochs must be >= 0, got ", prox_epochs);
}

Obproxsg::Obproxsg(ObproxsgOptions options)
    : opt_(options), details_(std::make_shared<Json>(Json::object())) {
  opt_.validate();
}

std::unique_ptr<torch::optim::Optimizer> Obproxsg::make_optimizer(
    Graph& graph, const OptimizerSettings& options) {
  OBProxSGOptions o(options.lr);
  o.lambda(opt_.lambda)
      .epsilon(opt_.epsilon)
      .momentum(options.momentum)
      .nesterov(options.nesterov)
      .weight_decay(options.weight_decay)
      .prox_steps(std::numeric_limits<int64_t>::max());  // begin() sets it
  std::vector<torch::Tensor> l1, plain;
  for (const auto& n : graph.nodes)
    for (const auto& [k, t] : n.params) (l1_target(n, k) ? l1 : plain).push_back(t);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!l1.empty()) groups.emplace_back(l1, std::make_unique<OBProxSGOptions>(o));
  if (!plain.empty()) {
    OBProxSGOptions p = o;
    p.lambda(0);
    groups.emplace_back(plain, std::make_unique<OBProxSGOptions>(p));
  }
  return std::make_unique<OBProxSG>(std::move(groups), o);
}

void Obproxsg::begin(Context& ctx) {
  auto* opt = dynamic_cast<OBProxSG*>(&ctx.optimizer);
  if (!opt) return;
  int64_t steps = prox_epochs_for(opt_.prox_epochs, ctx.epochs) * ctx.steps_per_epoch;
  for (auto& g : opt->param_groups()) static_cast<OBProxSGOptions&>(g.options()).prox_steps(steps);
}

void Obproxsg::end_epoch(Context& ctx) {
  if (!ctx.log) return;
  (*ctx.log)["sparsity"] = element_report(ctx.graph).get("weight_sparsity").num();
}

void Obproxsg::finalize(Context& ctx) {
  *details_ = element_report(ctx.graph);
  details_->set("prox_epochs", prox_epochs_for(opt_.prox_epochs, ctx.epochs));
}

std::shared_ptr<Method> Obproxsg::finetune_method() {
  auto d = details_;
  return std::make_shared<KeepZeros>("obproxsg-keep-zeros", [d](const Graph& g) {
    Json prox = d->has("prox_epochs") ? d->get("prox_epochs") : Json(int64_t(0));
    *d = element_report(g);
    d->set("prox_epochs", prox);
  });
}

void Obproxsg::describe(Json& out) const {
  out = Json::object();
  out.set("lambda", opt_.lambda);
  out.set("epsilon", opt_.epsilon);
  for (const auto& [k, v] : details_->fields()) out.set(k, v);
}

MethodInfo obproxsg_method_info() {
  MethodInfo m;
  m.name = "obproxsg";
  m.summary =
      "sparse optimisation: OBProx-SG, element-wise l1 on conv/linear weights "
      "(docs/methods/hspg.md)";
  m.options = {
      {"lambda", "1e-4", "l1 weight lambda >= 0 on conv and linear weights"},
      {"epsilon", "0", "orthant step keeps x only if x * sign > epsilon (>= 0)"},
      {"prox-epochs", "",
       "epochs of Prox-SG before the orthant steps (default: a quarter of "
       "--epochs)"},
  };
  m.create = [](const MethodConfig& cfg) -> std::shared_ptr<Method> {
    ObproxsgOptions o;
    o.lambda = cfg.number("lambda");
    o.epsilon = cfg.number("epsilon");
    if (cfg.has("prox-epochs")) {
      o.prox_epochs = cfg.integer("prox-epochs");
      TORCH_CHECK(o.prox_epochs >= 0, "obproxsg: prox-epochs must be >= 0, got ", o.prox_epochs);
    }
    return std::make_shared<Obproxsg>(o);
  };
  return m;
}

}  // namespace nnslim
