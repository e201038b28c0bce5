// gRDA / directional pruning (METHODS.md §5). The optimizer follows the authors'
// grda_pytorch.py step for step (§5.2); the Method wraps it for the compress pipeline.
#include "nnslim/methods/grda.h"

#include "nnslim/methods/keep_zeros.h"
#include "nnslim/methods/optim_state.h"

#include "nnslim/graph/surgery.h"

#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <type_traits>

namespace nnslim {

// ---- options and state (torch::optim conventions, cf. LibTorch's sgd.cpp) -------------------

GRDAOptions::GRDAOptions(double lr) : lr_(lr) {}

void GRDAOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(c);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(mu);
}

void GRDAOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, c);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, mu);
}

double GRDAOptions::get_lr() const { return lr(); }
void GRDAOptions::set_lr(const double lr) { this->lr(lr); }

void GRDAParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(accumulator);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(threshold);
}

void GRDAParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, accumulator);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, threshold);
}

namespace {

void check_options(const GRDAOptions& o) {
  TORCH_CHECK(o.lr() >= 0 && std::isfinite(o.lr()), "grda: lr must be >= 0, got ", o.lr());
  TORCH_CHECK(o.c() >= 0 && std::isfinite(o.c()), "grda: c must be >= 0, got ", o.c());
  TORCH_CHECK(o.mu() > 0 && std::isfinite(o.mu()), "grda: mu must be > 0, got ", o.mu());
}

}  // namespace

GRDA::GRDA(std::vector<torch::optim::OptimizerParamGroup> param_groups, GRDAOptions defaults)
    : Optimizer(std::move(param_groups), std::make_unique<GRDAOptions>(defaults)) {
  check_options(defaults);
  for (const auto& g : this->param_groups())
    check_options(static_cast<const GRDAOptions&>(g.options()));
}

GRDA::GRDA(std::vector<torch::Tensor> params, GRDAOptions defaults)
    : GRDA({torch::optim::OptimizerParamGroup(std::move(params))}, defaults) {}

torch::Tensor GRDA::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = {};
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const GRDAOptions&>(group.options());
    const double lr = o.lr(), c = o.c(), mu = o.mu();
    // c * lr^(mu + 1/2): the part of the threshold increment that depends on the CURRENT rate
    // (§5.2, invariant 3: a piecewise schedule sums its pieces, it is not c*lr_now^..*n^mu).
    const double scale = c * std::pow(lr, mu + 0.5);
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;  // no gradient: the tensor's counter stays (inv. 6)
      auto key = optimizer_state_key<decltype(state_)>(p);
      if (state_.find(key) == state_.end()) {
        // The accumulator starts at the initial weights w0, not at zero (§5.2, invariant 5).
        auto s = std::make_unique<GRDAParamState>();
        s->accumulator(p.detach().clone());
        state_[key] = std::move(s);
      }
      auto& s = static_cast<GRDAParamState&>(*state_[key]);
      const int64_t n = s.step() + 1;
      s.step(n);
      auto acc = s.accumulator();
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

void GRDA::save(torch::serialize::OutputArchive& archive) const { serialize(*this, archive); }

void GRDA::load(torch::serialize::InputArchive& archive) { serialize(*this, archive); }

const GRDAParamState* GRDA::state_of(const torch::Tensor& p) const {
  auto it = state_.find(optimizer_state_key<decltype(state_)>(p));
  if (it == state_.end()) return nullptr;
  return static_cast<const GRDAParamState*>(it->second.get());
}

double GRDA::max_threshold() const {
  double g = 0;
  for (const auto& kv : state_)
    g = std::max(g, static_cast<const GRDAParamState&>(*kv.second).threshold());
  return g;
}

// ---- sparsity ----------------------------------------------------------------------------------

SparsityReport sparsity_report(const Graph& graph) {
  SparsityReport r;
  torch::NoGradGuard no_grad;
  for (const auto& n : graph.nodes) {
    if (n.params.empty()) continue;
    LayerSparsity l;
    l.name = n.name;
    l.op = op_name(n.op);
    for (const auto& kv : n.params) {
      const auto& t = kv.second;
      l.elements += t.numel();
      l.zeros += t.numel() - t.count_nonzero().item<int64_t>();  // -0.0 == 0: a zero
    }
    auto w = n.params.find("weight");
    if ((n.op == Op::kConv2d || n.op == Op::kLinear) && w != n.params.end() &&
        w->second.dim() >= 2) {
      auto rows = w->second.detach().reshape({w->second.size(0), -1});
      l.out_channels = rows.size(0);
      l.zero_channels = (rows != 0).any(1).logical_not().sum().item<int64_t>();
    }
    r.elements += l.elements;
    r.zeros += l.zeros;
    r.zero_channels += l.zero_channels;
    r.layers.push_back(std::move(l));
  }
  return r;
}

// ---- the method --------------------------------------------------------------------------------

struct Grda::Shared {
  bool finalized = false;
  SparsityReport report;
  int64_t channels_removed = 0;
};

namespace {}  // namespace

void GrdaMethodOptions::validate() const {
  TORCH_CHECK(c >= 0 && std::isfinite(c), "grda: c must be >= 0, got ", c);
  TORCH_CHECK(mu > 0 && std::isfinite(mu), "grda: mu must be > 0, got ", mu);
}

Grda::Grda(GrdaMethodOptions options) : opt_(options), shared_(std::make_shared<Shared>()) {
  opt_.validate();
}

std::unique_ptr<torch::optim::Optimizer> Grda::make_optimizer(Graph& graph,
                                                              const OptimizerSettings& options) {
  // Momentum and weight decay of `options` do not apply: gRDA has neither (§5.2).
  return std::make_unique<GRDA>(graph.parameters(), GRDAOptions(options.lr).c(opt_.c).mu(opt_.mu));
}

void Grda::end_epoch(Context& ctx) {
  if (!ctx.log) return;
  auto r = sparsity_report(ctx.graph);
  (*ctx.log)["sparsity"] = r.sparsity();
  if (auto* g = dynamic_cast<GRDA*>(&ctx.optimizer))
    (*ctx.log)["grda_threshold"] = g->max_threshold();
}

namespace {

// Channels of every prunable coupling group whose out-side parameters (producer filters and
// biases, BN gamma and beta, depthwise filters) are all exact zeros: such a channel outputs
// exact zeros, so removing it is exact (graph/surgery.h). At least one channel per group stays.
std::map<int, std::vector<int64_t>> removable_zero_channels(const Graph& graph,
                                                            const Coupling& coupling,
                                                            int64_t* removed) {
  torch::NoGradGuard no_grad;
  std::map<int, std::vector<int64_t>> keep;
  *removed = 0;
  for (const auto& g : coupling.groups) {
    if (!g.prunable || g.channels < 2) continue;
    auto zero = torch::ones({g.channels}, torch::kBool);
    for (const auto& pd : g.params) {
      if (!pd.out_side || pd.buffer) continue;
      zero.logical_and_((channel_rows(graph, coupling, g, pd) == 0).all(1).cpu());
    }
    std::vector<int64_t> k;
    auto z = zero.accessor<bool, 1>();
    for (int64_t i = 0; i < g.channels; ++i)
      if (!z[i]) k.push_back(i);
    if (k.empty()) k.push_back(0);
    if (static_cast<int64_t>(k.size()) == g.channels) continue;
    *removed += g.channels - static_cast<int64_t>(k.size());
    keep[g.id] = std::move(k);
  }
  return keep;
}

}  // namespace

void Grda::finalize(Context& ctx) {
  // §5.4: no surgery is needed -- the pruned weights are exact zeros. Removing channels that
  // gRDA zeroed completely is optional [OUR CHOICE]; it is exact (and rare: every out-side
  // entry of the channel, BN gamma/beta included, must be zero).
  shared_->channels_removed = 0;
  if (opt_.remove_channels) {
    Coupling coupling = analyze_coupling(ctx.graph);
    int64_t removed = 0;
    auto keep = removable_zero_channels(ctx.graph, coupling, &removed);
    if (!keep.empty()) ctx.graph = prune_groups(ctx.graph, coupling, keep);
    shared_->channels_removed = removed;
  }
  shared_->report = sparsity_report(ctx.graph);
  shared_->finalized = true;
}

std::shared_ptr<Method> Grda::finetune_method() {
  auto shared = shared_;
  return std::make_shared<KeepZeros>(
      "grda-keep-zeros", [shared](const Graph& g) { shared->report = sparsity_report(g); });
}

void Grda::describe(Json& out) const {
  const auto& r = shared_->report;
  out.set("c", opt_.c);
  out.set("mu", opt_.mu);
  out.set("sparsity", r.sparsity());
  out.set("zeros", r.zeros);
  out.set("elements", r.elements);
  out.set("zero_channels", r.zero_channels);
  out.set("remove_channels", opt_.remove_channels);
  out.set("channels_removed", shared_->channels_removed);
  Json layers = Json::array();
  for (const auto& l : r.layers) {
    Json j = Json::object();
    j.set("name", l.name);
    j.set("op", l.op);
    j.set("elements", l.elements);
    j.set("zeros", l.zeros);
    j.set("sparsity", l.sparsity());
    if (l.out_channels > 0) {
      j.set("out_channels", l.out_channels);
      j.set("zero_channels", l.zero_channels);
    }
    layers.push(j);
  }
  out.set("layers", layers);
}

MethodInfo grda_method_info() {
  MethodInfo m;
  m.name = "grda";
  m.summary = "directional pruning: gRDA optimizer, element-wise sparsity (docs/methods/grda.md)";
  m.options = {
      {"c", "0.005", "gRDA threshold scale c >= 0 (0 = plain SGD; paper: 5e-4 .. 5e-3)"},
      {"mu", "0.51", "gRDA threshold growth mu > 0 (paper: 0.501 .. 0.7; larger = sparser)"},
      {"remove-channels", "false",
       "true: remove channels gRDA zeroed completely (filters, biases and BN gamma/beta)"},
  };
  m.create = [](const MethodConfig& cfg) -> std::shared_ptr<Method> {
    GrdaMethodOptions o;
    o.c = cfg.number("c");
    o.mu = cfg.number("mu");
    o.remove_channels = cfg.flag("remove-channels");
    return std::make_shared<Grda>(o);
  };
  return m;
}

}  // namespace nnslim
