#include "nnslim/methods/magnitude.h"

#include "nnslim/graph/cost.h"
#include "nnslim/graph/surgery.h"

#include <torch/torch.h>

#include <sstream>

namespace nnslim {

MagnitudePruning::MagnitudePruning(MagnitudeOptions o) : opt_(std::move(o)) {
  TORCH_CHECK(opt_.ratio >= 0 && opt_.ratio < 1, "magnitude: ratio must be in [0, 1), got ",
              opt_.ratio);
  TORCH_CHECK(opt_.target_macs >= 0 && opt_.target_macs <= 1,
              "magnitude: target-macs must be a fraction in (0, 1], got ", opt_.target_macs);
  TORCH_CHECK(opt_.plan.round_to >= 1, "magnitude: round-to must be >= 1");
  TORCH_CHECK(opt_.plan.max_ratio > 0 && opt_.plan.max_ratio < 1,
              "magnitude: max-ratio must be in (0, 1), got ", opt_.plan.max_ratio);
  TORCH_CHECK(opt_.taylor_batches >= 1, "magnitude: taylor-batches must be >= 1");
}

std::vector<MethodOption> MagnitudePruning::option_list() {
  return {
      {"ratio", "0.5", "fraction of channels to remove from each group (or globally)"},
      {"target-macs", "",
       "keep at most this fraction of the input model's MACs (overrides --ratio)"},
      {"criterion", "l1", "channel importance: l1, l2, bn, fpgm, taylor, random"},
      {"global", "false", "rank channels across all groups instead of per group"},
      {"round-to", "1", "keep a multiple of this many channels per group (e.g. 8)"},
      {"max-ratio", "0.9", "never remove more than this fraction of any group"},
      {"exclude", "", "comma-separated node names whose channel groups are kept whole"},
      {"taylor-batches", "8", "batches to accumulate the taylor criterion over"},
  };
}

std::shared_ptr<Method> MagnitudePruning::create(const MethodConfig& c) {
  MagnitudeOptions o;
  o.ratio = c.number("ratio");
  if (c.has("target-macs")) o.target_macs = c.number("target-macs");
  o.criterion = criterion_from_name(c.str("criterion"));
  o.plan.global = c.flag("global");
  o.plan.round_to = c.integer("round-to");
  o.plan.max_ratio = c.number("max-ratio");
  o.exclude = c.name_set("exclude");
  o.taylor_batches = c.integer("taylor-batches");
  if (c.has("target-macs"))
    TORCH_CHECK(o.target_macs > 0, "magnitude: target-macs must be > 0, got ", o.target_macs);
  return std::make_shared<MagnitudePruning>(o);
}

void MagnitudePruning::check_applicable(const Graph& g) const {
  check_nodes_exist(g, opt_.exclude, "magnitude");
}

void MagnitudePruning::finalize(FinalizeContext& ctx) {
  Graph& g = ctx.graph;
  check_nodes_exist(g, opt_.exclude, "magnitude");
  Coupling c = analyze_coupling(g, opt_.exclude);
  ImportanceData data;
  data.train = ctx.train;
  data.batches = opt_.taylor_batches;
  auto scores = channel_importance(g, c, opt_.criterion, data);
  double ratio = opt_.ratio;
  KeepPlan plan = opt_.target_macs > 0
                      ? plan_for_macs(g, c, scores, opt_.target_macs, opt_.plan, 0.02, &ratio)
                      : plan_by_ratio(c, scores, opt_.ratio, opt_.plan);
  int64_t macs_before = count_cost(g).macs;
  if (!plan.empty()) g = prune_groups(g, c, plan);
  details_ = Json::object();
  details_.set("criterion", criterion_name(opt_.criterion));
  details_.set("ratio", ratio);
  details_.set("macs_fraction", static_cast<double>(count_cost(g).macs) / macs_before);
  Json groups = Json::array();
  for (int id : c.prunable()) {
    Json j = Json::object();
    j.set("group", c.groups[id].name);
    j.set("channels", c.groups[id].channels);
    auto it = plan.find(id);
    j.set("kept", it == plan.end() ? c.groups[id].channels : int64_t(it->second.size()));
    groups.push(j);
  }
  details_.set("groups", groups);
}

void MagnitudePruning::describe(Json& out) const { out = details_; }

}  // namespace nnslim
