#include "nnslim/methods/magnitude.h"

#include "nnslim/graph/cost.h"
#include "nnslim/graph/surgery.h"
#include "nnslim/methods/option_table.h"

#include <torch/torch.h>

#include <sstream>

namespace nnslim {

namespace {
const OptionTable<MagnitudeOptions>& magnitude_options();  // the method's options, below
}

MagnitudePruning::MagnitudePruning(MagnitudeOptions o) : opt_(std::move(o)) {
  TORCH_CHECK(opt_.ratio >= 0 && opt_.ratio < 1, "magnitude: ratio must be in [0, 1), got ",
              opt_.ratio);
  TORCH_CHECK(!opt_.target_macs || (*opt_.target_macs > 0 && *opt_.target_macs <= 1),
              "magnitude: target-macs must be a fraction in (0, 1], got ",
              opt_.target_macs.value_or(0));
  TORCH_CHECK(opt_.plan.round_to >= 1, "magnitude: round-to must be >= 1");
  TORCH_CHECK(opt_.plan.max_ratio > 0 && opt_.plan.max_ratio < 1,
              "magnitude: max-ratio must be in (0, 1), got ", opt_.plan.max_ratio);
  TORCH_CHECK(opt_.taylor_batches >= 1, "magnitude: taylor-batches must be >= 1");
}

namespace {
const OptionTable<MagnitudeOptions>& magnitude_options() {
  static const auto table =
      OptionTable<MagnitudeOptions>("magnitude")
          .number("ratio", NNSLIM_FIELD(ratio),
                  "fraction of channels to remove from each group (or globally)")
          .optional_number("target-macs", NNSLIM_FIELD(target_macs),
                           "keep at most this fraction of the input model's MACs (overrides "
                           "--ratio)")
          .custom(
              "criterion", criterion_name(MagnitudeOptions{}.criterion),
              "channel importance: l1, l2, bn, fpgm, taylor, random",
              [](const MethodConfig& c, MagnitudeOptions& o) {
                o.criterion = criterion_from_name(c.str("criterion"));
              },
              [](const MagnitudeOptions& o) { return Json(criterion_name(o.criterion)); })
          .flag("global", NNSLIM_FIELD(plan.global),
                "rank channels across all groups instead of per group")
          .integer("round-to", NNSLIM_FIELD(plan.round_to),
                   "keep a multiple of this many channels per group (e.g. 8)")
          .number("max-ratio", NNSLIM_FIELD(plan.max_ratio),
                  "never remove more than this fraction of any group")
          .names("exclude", NNSLIM_FIELD(exclude),
                 "comma-separated node names whose channel groups are kept whole")
          .integer("taylor-batches", NNSLIM_FIELD(taylor_batches),
                   "batches to accumulate the taylor criterion over");
  return table;
}
}  // namespace

std::vector<MethodOption> MagnitudePruning::option_list() { return magnitude_options().options(); }

std::shared_ptr<Method> MagnitudePruning::create(const MethodConfig& c) {
  return std::make_shared<MagnitudePruning>(magnitude_options().read(c));
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
  KeepPlan plan = opt_.target_macs
                      ? plan_for_macs(g, c, scores, *opt_.target_macs, opt_.plan, 0.02, &ratio)
                      : plan_by_ratio(c, scores, opt_.ratio, opt_.plan);
  int64_t macs_before = count_cost(g).macs;
  if (!plan.empty()) g = prune_groups(g, c, plan);
  details_ = Json::object();
  magnitude_options().describe(opt_, details_);
  details_.set("ratio", ratio);  // as resolved (the one target-macs found)
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
