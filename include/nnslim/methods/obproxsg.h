// The obproxsg method (`nnslim compress --method obproxsg`, METHODS.md §2.5): element-wise l1
// with the OBProx-SG optimizer (optim/obproxsg.h) on conv and linear weights -- the entries
// whose zeros compress; biases and BN parameters take plain SGD [OUR CHOICE]. It reports element
// sparsity and keeps the zeros while fine-tuning; no surgery.
#pragma once

#include "nnslim/methods/method.h"
#include "nnslim/methods/registry.h"
#include "nnslim/optim/obproxsg.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace nnslim {

struct ObProxSgOptions {
  double lambda = 1e-4;
  double epsilon = 0.0;
  std::optional<int64_t> prox_epochs;  // unset = a quarter of the epochs
  void validate() const;               // TORCH_CHECK naming the option
  int64_t prox_epochs_for(int64_t epochs) const { return prox_epochs.value_or(epochs / 4); }
};

class ObProxSg : public Method {
 public:
  explicit ObProxSg(ObProxSgOptions options);
  std::string name() const override { return "obproxsg"; }
  // An optim::ObProxSgOptimizer: one l1 parameter group (conv and linear weights) and one plain
  // group (everything else), prox_steps = prox epochs * steps_per_epoch.
  std::unique_ptr<torch::optim::Optimizer> make_optimizer(
      Graph& graph, const OptimizerSettings& settings) override;
  void end_epoch(Context& ctx) override;         // logs "sparsity" (of the regularised weights)
  void finalize(FinalizeContext& ctx) override;  // fills the report; no surgery
  std::shared_ptr<Method> finetune_method() override;
  // {lambda, epsilon, prox_epochs, sparsity, zeros, elements, weight_sparsity, weight_zeros,
  //  weight_elements, layers: [{name, op, elements, zeros, sparsity}]}
  void describe(Json& out) const override;
  const ObProxSgOptions& options() const { return opt_; }

 private:
  ObProxSgOptions opt_;
  std::shared_ptr<Json> details_;
};

MethodInfo obproxsg_method_info();  // "obproxsg": lambda, epsilon, prox-epochs

}  // namespace nnslim
