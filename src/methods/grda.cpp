// The grda method (METHODS.md §5): trains with the gRDA optimizer (optim/grda.h), reports
// sparsity, optionally removes the channels it zeroed completely.
#include "nnslim/methods/grda.h"

#include "nnslim/methods/keep_zeros.h"
#include "nnslim/methods/option_table.h"

#include "nnslim/graph/surgery.h"

#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <type_traits>

namespace nnslim {

namespace {
const OptionTable<GrdaOptions>& grda_options();  // the method's options, below
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

void GrdaOptions::validate() const {
  TORCH_CHECK(c >= 0 && std::isfinite(c), "grda: c must be >= 0, got ", c);
  TORCH_CHECK(mu > 0 && std::isfinite(mu), "grda: mu must be > 0, got ", mu);
}

Grda::Grda(GrdaOptions options) : opt_(options), shared_(std::make_shared<Shared>()) {
  opt_.validate();
}

std::unique_ptr<torch::optim::Optimizer> Grda::make_optimizer(Graph& graph,
                                                              const OptimizerSettings& settings) {
  // Momentum and weight decay of `settings` do not apply: gRDA has neither (§5.2).
  auto g = std::make_unique<optim::GrdaOptimizer>(
      graph.parameters(), optim::GrdaOptimizerOptions(settings.lr).c(opt_.c).mu(opt_.mu));
  optimizer_ = g.get();
  return g;
}

void Grda::end_epoch(Context& ctx) {
  if (!ctx.log) return;
  auto r = sparsity_report(ctx.graph);
  (*ctx.log)["sparsity"] = r.sparsity();
  if (optimizer_) (*ctx.log)["grda_threshold"] = optimizer_->max_threshold();
}

namespace {

// Channels of every prunable coupling group that output exact zeros (graph/coupling.h:
// zero_output_channels): removing them is exact. At least one channel per group stays.
std::map<int, std::vector<int64_t>> removable_zero_channels(const Graph& graph,
                                                            const Coupling& coupling,
                                                            int64_t* removed) {
  std::map<int, std::vector<int64_t>> keep;
  *removed = 0;
  for (const auto& g : coupling.groups) {
    if (!g.prunable || g.channels < 2) continue;
    std::vector<int64_t> k = channels_to_keep(zero_output_channels(graph, coupling, g));
    if (static_cast<int64_t>(k.size()) == g.channels) continue;
    *removed += g.channels - static_cast<int64_t>(k.size());
    keep[g.id] = std::move(k);
  }
  return keep;
}

}  // namespace

void Grda::finalize(FinalizeContext& ctx) {
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
  grda_options().describe(opt_, out);
  out.set("sparsity", r.sparsity());
  out.set("zeros", r.zeros);
  out.set("elements", r.elements);
  out.set("zero_channels", r.zero_channels);
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

namespace {
const OptionTable<GrdaOptions>& grda_options() {
  static const auto table =
      OptionTable<GrdaOptions>("grda")
          .number("c", NNSLIM_FIELD(c),
                  "gRDA threshold scale c >= 0 (0 = plain SGD; paper: 5e-4 .. 5e-3)")
          .number("mu", NNSLIM_FIELD(mu),
                  "gRDA threshold growth mu > 0 (paper: 0.501 .. 0.7; larger = sparser)")
          .flag("remove-channels", NNSLIM_FIELD(remove_channels),
                "true: remove channels gRDA zeroed completely (filters, biases and BN gamma/beta)");
  return table;
}
}  // namespace

MethodInfo grda_method_info() {
  MethodInfo m;
  m.name = "grda";
  m.summary = "directional pruning: gRDA optimizer, element-wise sparsity (docs/methods/grda.md)";
  m.options = grda_options().options();
  m.create = [](const MethodConfig& cfg) -> std::shared_ptr<Method> {
    return std::make_shared<Grda>(grda_options().read(cfg));
  };
  return m;
}

}  // namespace nnslim
