// Directional pruning with gRDA (Chao, Wang, Xing, Cheng; NeurIPS 2020) -- METHODS.md §5.
//
// The grda method (`nnslim compress --method grda`) trains with the gRDA optimizer
// (optim/grda.h) over all trainable parameters, logs sparsity per epoch, reports per-layer and
// total sparsity (exact zeros / elements) in describe(), optionally removes the channels it
// zeroed completely (graph/surgery.h; exact), and keeps the zeros fixed while fine-tuning.
#pragma once

#include "nnslim/methods/method.h"
#include "nnslim/methods/registry.h"
#include "nnslim/optim/grda.h"

#include <memory>
#include <string>
#include <vector>

namespace nnslim {

// Sparsity = exact zeros / elements (a -0.0 counts as a zero), per node and over all trainable
// parameters (conv, linear, BN gamma/beta, biases), as the paper's code reports it.
struct LayerSparsity {
  std::string name;      // node name
  std::string op;        // op_name()
  int64_t elements = 0;  // trainable elements of the node
  int64_t zeros = 0;
  int64_t out_channels = 0;   // conv / linear: rows of the weight (0 for other ops)
  int64_t zero_channels = 0;  // rows whose weight slice is all zeros (the bias is not looked at)
  double sparsity() const { return elements > 0 ? double(zeros) / double(elements) : 0.0; }
};
struct SparsityReport {
  std::vector<LayerSparsity> layers;  // nodes with parameters, graph order
  int64_t elements = 0, zeros = 0, zero_channels = 0;
  double sparsity() const { return elements > 0 ? double(zeros) / double(elements) : 0.0; }
};
SparsityReport sparsity_report(const Graph& graph);

// The method's options (CLI flags --c, --mu, --remove-channels).
struct GrdaOptions {
  double c = 0.005;              // METHODS.md §5.3: 0 < c <= 0.005 (0 = plain SGD)
  double mu = 0.51;              // 0.5 < mu < 1 recommended
  bool remove_channels = false;  // remove channels whose every out-side entry is zero
  void validate() const;         // TORCH_CHECK naming the option
};

class Grda : public Method {
 public:
  explicit Grda(GrdaOptions options);
  std::string name() const override { return "grda"; }
  // An optim::GrdaOptimizer over graph.parameters() with lr = settings.lr (gRDA has no
  // momentum and no weight decay: those of the settings do not apply).
  std::unique_ptr<torch::optim::Optimizer> make_optimizer(
      Graph& graph, const OptimizerSettings& settings) override;
  void end_epoch(Context& ctx) override;  // logs "sparsity" and "grda_threshold"
  // Sparsity report; with remove_channels, every channel of a prunable coupling group whose
  // out-side parameters (filters, biases, BN gamma/beta) are all zero is removed (at least one
  // channel per group stays) -- such channels output exact zeros, so the network is unchanged.
  void finalize(FinalizeContext& ctx) override;
  // Keeps every exact zero at zero while fine-tuning (gradient and weight masks).
  std::shared_ptr<Method> finetune_method() override;
  // {c, mu, sparsity, zeros, elements, zero_channels, remove_channels, channels_removed,
  //  layers: [{name, op, elements, zeros, sparsity, (conv) out_channels, zero_channels}]}
  // Filled by finalize() (and kept current by the fine-tuning hooks); empty before.
  void describe(Json& out) const override;

  const GrdaOptions& options() const { return opt_; }

 private:
  struct Shared;
  GrdaOptions opt_;
  std::shared_ptr<Shared> shared_;
  optim::GrdaOptimizer* optimizer_ = nullptr;  // made by make_optimizer, owned by the Trainer
};

// The registry entry (methods/registry.cpp): name "grda", options c, mu, remove-channels.
MethodInfo grda_method_info();

}  // namespace nnslim
