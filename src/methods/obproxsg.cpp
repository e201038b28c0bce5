// The obproxsg method (METHODS.md §2.5): element-wise l1 with OBProx-SG, sparsity report.
#include "nnslim/methods/obproxsg.h"

#include "nnslim/methods/keep_zeros.h"
#include "nnslim/methods/option_table.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace nnslim {

namespace {
const OptionTable<ObProxSgOptions>& obproxsg_options();  // the method's options, below
}

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

void ObProxSgOptions::validate() const {
  TORCH_CHECK(lambda >= 0 && std::isfinite(lambda), "obproxsg: lambda must be >= 0, got ", lambda);
  TORCH_CHECK(epsilon >= 0 && std::isfinite(epsilon), "obproxsg: epsilon must be >= 0, got ",
              epsilon);
  TORCH_CHECK(prox_epochs.value_or(0) >= 0, "obproxsg: prox-epochs must be >= 0, got ",
              *prox_epochs);
}

ObProxSg::ObProxSg(ObProxSgOptions options)
    : opt_(options), details_(std::make_shared<Json>(Json::object())) {
  opt_.validate();
}

std::unique_ptr<torch::optim::Optimizer> ObProxSg::make_optimizer(
    Graph& graph, const OptimizerSettings& settings) {
  optim::ObProxSgOptimizerOptions o(settings.lr);
  o.lambda(opt_.lambda)
      .epsilon(opt_.epsilon)
      .momentum(settings.momentum)
      .nesterov(settings.nesterov)
      .weight_decay(settings.weight_decay)
      .prox_steps(opt_.prox_epochs_for(settings.epochs) * settings.steps_per_epoch);
  std::vector<torch::Tensor> l1, plain;
  for (const auto& n : graph.nodes)
    for (const auto& [k, t] : n.params) (l1_target(n, k) ? l1 : plain).push_back(t);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!l1.empty()) groups.emplace_back(l1, std::make_unique<optim::ObProxSgOptimizerOptions>(o));
  if (!plain.empty()) {
    optim::ObProxSgOptimizerOptions p = o;
    p.lambda(0);
    groups.emplace_back(plain, std::make_unique<optim::ObProxSgOptimizerOptions>(p));
  }
  return std::make_unique<optim::ObProxSgOptimizer>(std::move(groups), o);
}

void ObProxSg::end_epoch(Context& ctx) {
  if (!ctx.log) return;
  (*ctx.log)["sparsity"] = element_report(ctx.graph).get("weight_sparsity").num();
}

void ObProxSg::finalize(FinalizeContext& ctx) {
  *details_ = element_report(ctx.graph);
  details_->set("prox_epochs", opt_.prox_epochs_for(ctx.epochs));
}

std::shared_ptr<Method> ObProxSg::finetune_method() {
  auto d = details_;
  return std::make_shared<KeepZeros>("obproxsg-keep-zeros", [d](const Graph& g) {
    Json prox = d->has("prox_epochs") ? d->get("prox_epochs") : Json(int64_t(0));
    *d = element_report(g);
    d->set("prox_epochs", prox);
  });
}

void ObProxSg::describe(Json& out) const {
  out = Json::object();
  obproxsg_options().describe(opt_, out);
  for (const auto& [k, v] : details_->fields()) out.set(k, v);  // prox_epochs as resolved
}

namespace {
const OptionTable<ObProxSgOptions>& obproxsg_options() {
  static const auto table =
      OptionTable<ObProxSgOptions>("obproxsg")
          .number("lambda", NNSLIM_FIELD(lambda),
                  "l1 weight lambda >= 0 on conv and linear weights")
          .number("epsilon", NNSLIM_FIELD(epsilon),
                  "orthant step keeps x only if x * sign > epsilon (>= 0)")
          .optional_integer("prox-epochs", NNSLIM_FIELD(prox_epochs), 0,
                            "epochs of Prox-SG before the orthant steps (default: a quarter of "
                            "--epochs)");
  return table;
}
}  // namespace

MethodInfo obproxsg_method_info() {
  MethodInfo m;
  m.name = "obproxsg";
  m.summary =
      "sparse optimisation: OBProx-SG, element-wise l1 on conv/linear weights "
      "(docs/methods/hspg.md)";
  m.options = obproxsg_options().options();
  m.create = [](const MethodConfig& cfg) -> std::shared_ptr<Method> {
    return std::make_shared<ObProxSg>(obproxsg_options().read(cfg));
  };
  return m;
}

}  // namespace nnslim
