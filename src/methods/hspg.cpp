// The hspg method (METHODS.md §2): HSPG over the zero-invariant groups, then zero-group surgery.
#include "nnslim/methods/hspg.h"

#include "nnslim/graph/cost.h"
#include "nnslim/graph/surgery.h"
#include "nnslim/methods/option_table.h"
#include "nnslim/methods/pruning_plan.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>

namespace nnslim {

namespace {

const OptionTable<HspgOptions>& hspg_options();  // the method's options, below

// A ZeroLimit that admits candidates (smallest score first) while the MACs of the network that
// the zero groups leave stay >= floor.
optim::HspgOptimizer::ZeroLimit mac_floor(std::shared_ptr<const ChannelMacs> macs, int64_t floor) {
  return [macs, floor](const torch::Tensor& zero, const torch::Tensor& cand,
                       const torch::Tensor& score) {
    auto z = zero.to(torch::kCPU, torch::kUInt8).contiguous();
    std::vector<uint8_t> off(z.data_ptr<uint8_t>(), z.data_ptr<uint8_t>() + z.numel());
    auto first =
        optim::candidates_by_score(cand.to(torch::kCPU), score.to(torch::kCPU)).contiguous();
    std::vector<int64_t> tries(first.data_ptr<int64_t>(),
                               first.data_ptr<int64_t>() + first.numel());
    auto accepted = macs->switch_off_while_above(off, tries, floor);
    auto out = torch::zeros({cand.size(0)}, torch::kBool);
    if (!accepted.empty()) out.index_fill_(0, torch::tensor(accepted, torch::kLong), true);
    return out.to(cand.device());
  };
}

}  // namespace

std::vector<optim::GroupFamily> zero_invariant_groups(const Graph& graph,
                                                      const Coupling& coupling) {
  std::vector<optim::GroupFamily> out;
  for (int id : coupling.prunable()) {
    const ChannelGroup& g = coupling.groups[id];
    optim::GroupFamily f;
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
      optim::GroupSlice slice;
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

void HspgOptions::validate() const {
  TORCH_CHECK(lambda >= 0 && std::isfinite(lambda), "hspg: lambda must be >= 0, got ", lambda);
  TORCH_CHECK(epsilon >= 0 && epsilon < 1, "hspg: epsilon must be in [0, 1), got ", epsilon);
  TORCH_CHECK(prox_epochs.value_or(0) >= 0, "hspg: prox-epochs must be >= 0, got ", *prox_epochs);
  TORCH_CHECK(target_group_sparsity > 0 && target_group_sparsity <= 1,
              "hspg: target-group-sparsity must be in (0, 1], got ", target_group_sparsity);
  TORCH_CHECK(target_macs > 0 && target_macs <= 1,
              "hspg: target-macs must be a fraction in (0, 1], got ", target_macs);
}

Hspg::Hspg(HspgOptions options) : opt_(std::move(options)) { opt_.validate(); }

void Hspg::check_applicable(const Graph& g) const { check_nodes_exist(g, opt_.exclude, "hspg"); }

std::unique_ptr<torch::optim::Optimizer> Hspg::make_optimizer(Graph& graph,
                                                              const OptimizerSettings& settings) {
  check_nodes_exist(graph, opt_.exclude, "hspg");
  Coupling c = analyze_coupling(graph, opt_.exclude);
  optim::HspgOptimizerOptions o(settings.lr);
  o.lambda(opt_.lambda)
      .epsilon(opt_.epsilon)
      .momentum(settings.momentum)
      .nesterov(settings.nesterov)
      .weight_decay(settings.weight_decay)
      .upper_group_sparsity(opt_.target_group_sparsity)
      .subgradient(opt_.subgradient)
      .prox_steps(opt_.prox_epochs_for(settings.epochs) * settings.steps_per_epoch);
  auto families = zero_invariant_groups(graph, c);
  std::vector<int> ids;
  for (const auto& f : families) ids.push_back(f.coupling_group);
  auto h = std::make_unique<optim::HspgOptimizer>(graph.parameters(), std::move(families), o);
  if (opt_.target_macs < 1) {
    // The budget is a floor on the MACs of the network the zero groups leave: a candidate group
    // is zeroed only if the MACs stay at or above target x the MACs of the model as given.
    const double base = static_cast<double>(count_cost(graph).macs);
    const auto floor = static_cast<int64_t>(std::ceil(opt_.target_macs * base - 1e-6));
    h->limit_zeros(mac_floor(std::make_shared<ChannelMacs>(graph, c, ids), floor));
  }
  optimizer_ = h.get();
  return h;
}

void Hspg::end_epoch(Context& ctx) {
  if (!optimizer_ || !ctx.log || optimizer_->num_groups() == 0) return;
  int64_t z = optimizer_->zero_groups();
  (*ctx.log)["zero_groups"] = static_cast<double>(z);
  (*ctx.log)["group_sparsity"] = static_cast<double>(z) / optimizer_->num_groups();
}

void Hspg::finalize(FinalizeContext& ctx) {
  Graph& g = ctx.graph;
  Coupling c = analyze_coupling(g, opt_.exclude);
  torch::NoGradGuard no_grad;
  std::map<int, std::vector<int64_t>> keep;
  Json groups = Json::array(), layers = Json::array();
  int64_t total = 0, zeros = 0, removed = 0;
  for (int id : c.prunable()) {
    const ChannelGroup& cg = c.groups[id];
    // §2.6: K = { j : ||x_j|| != 0 } over the channel's out-side entries; a whole zero group
    // keeps one (zero) channel.
    auto zero = zero_output_channels(g, c, cg);
    const int64_t nz = zero.sum().item<int64_t>();
    std::vector<int64_t> k = channels_to_keep(zero);
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
  hspg_options().describe(opt_, details_);
  details_.set("prox_epochs", opt_.prox_epochs_for(ctx.epochs));  // as resolved for this run
  details_.set("groups_total", total);
  details_.set("zero_groups", zeros);
  details_.set("group_sparsity", total > 0 ? static_cast<double>(zeros) / total : 0.0);
  details_.set("channels_removed", removed);
  details_.set("groups", groups);
  details_.set("layers", layers);
}

void Hspg::describe(Json& out) const { out = details_; }

namespace {
const OptionTable<HspgOptions>& hspg_options() {
  static const auto table =
      OptionTable<HspgOptions>("hspg")
          .number("lambda", NNSLIM_FIELD(lambda),
                  "group-lasso weight lambda >= 0 (paper: 5e-4 VGG16-BN, 1e-3 ResNet-50)")
          .number("epsilon", NNSLIM_FIELD(epsilon),
                  "half-space parameter in [0, 1) (larger = more aggressive zeroing)")
          .optional_integer("prox-epochs", NNSLIM_FIELD(prox_epochs), 0,
                            "epochs of the Prox-SG stage before the half-space stage (default: a "
                            "quarter of --epochs)")
          .number("target-group-sparsity", NNSLIM_FIELD(target_group_sparsity),
                  "upper cap on the fraction of zero groups, in (0, 1]")
          .number("target-macs", NNSLIM_FIELD(target_macs),
                  "stop zeroing groups where the compressed network would fall below this "
                  "fraction of the input model's MACs, in (0, 1] (lambda must be large enough "
                  "to get there)")
          .choice("stage1", NNSLIM_FIELD(subgradient),
                  std::vector<std::pair<std::string, bool>>{{"prox", false}, {"subgradient", true}},
                  "first stage: prox (group soft-threshold, the paper) or subgradient (the OTOv1 "
                  "code)")
          .names("exclude", NNSLIM_FIELD(exclude),
                 "comma-separated node names whose channel groups are not regularised");
  return table;
}
}  // namespace

MethodInfo hspg_method_info() {
  MethodInfo m;
  m.name = "hspg";
  m.summary =
      "sparse optimisation: HSPG group lasso over zero-invariant groups (docs/methods/hspg.md)";
  m.options = hspg_options().options();
  m.create = [](const MethodConfig& cfg) -> std::shared_ptr<Method> {
    return std::make_shared<Hspg>(hspg_options().read(cfg));
  };
  return m;
}

}  // namespace nnslim
