// Magnitude (criterion-based) channel pruning: the structured-pruning baseline. Training with it
// is plain training; finalize() scores every coupled channel group with a criterion
// (methods/importance.h), keeps the best channels -- a fixed ratio, or by bisection the ratio that
// meets a MAC budget -- and removes the rest with channel surgery. Fine-tune afterwards.
#pragma once

#include "nnslim/methods/importance.h"
#include "nnslim/methods/method.h"
#include "nnslim/methods/pruning_plan.h"
#include "nnslim/methods/registry.h"

#include <optional>
#include <set>

namespace nnslim {

struct MagnitudeOptions {
  double ratio = 0.5;                 // fraction of channels to remove (without target_macs)
  std::optional<double> target_macs;  // keep at most this fraction of the input's MACs
  Criterion criterion = Criterion::kL1;
  PlanOptions plan;
  std::set<std::string> exclude;  // node names whose groups are never pruned
  int64_t taylor_batches = 8;
};

class MagnitudePruning : public Method {
 public:
  explicit MagnitudePruning(MagnitudeOptions o);
  static std::vector<MethodOption> option_list();
  static std::shared_ptr<Method> create(const MethodConfig& c);
  std::string name() const override { return "magnitude"; }
  void check_applicable(const Graph& g) const override;
  void finalize(FinalizeContext& ctx) override;
  void describe(Json& out) const override;

 private:
  MagnitudeOptions opt_;
  Json details_ = Json::object();
};

}  // namespace nnslim
