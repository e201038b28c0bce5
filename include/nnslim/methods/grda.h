// Directional pruning with gRDA (Chao, Wang, Xing, Cheng; NeurIPS 2020) -- METHODS.md §5.
//
// GRDA is a torch::optim::Optimizer: generalized regularized dual averaging with an l1
// soft-threshold that grows with the number of steps. Per parameter tensor w it keeps
//   accumulator  acc  (same shape/dtype/device as w; starts as a clone of w at its first step)
//   step         n    (steps in which w had a gradient)
//   threshold    G    (accumulated soft-threshold, a double)
// and on every step in which w.grad is defined (METHODS.md §5.2):
//   n   <- n + 1
//   acc <- acc - lr * grad
//   G   <- G + c * lr^(mu + 1/2) * (n^mu - (n-1)^mu)       (lr = the CURRENT rate)
//   w   <- sign(acc) * max(|acc| - G, 0)                    (pruned entries are +0.0)
// No momentum, no weight decay. With c = 0 the iterates are exactly those of plain SGD.
// The state is saved by save()/load() (torch::optim archives), so a resumed run continues
// bit for bit.
//
// Grda is the Method that trains with it (`nnslim compress --method grda`): it builds the
// optimizer over all trainable parameters, logs sparsity per epoch, reports per-layer and total
// sparsity (exact zeros / elements) in describe(), optionally removes the channels it zeroed
// completely (graph/surgery.h; exact), and keeps the zeros fixed while fine-tuning.
#pragma once

#include "nnslim/methods/method.h"
#include "nnslim/methods/registry.h"

#include <torch/arg.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>
#include <torch/serialize/archive.h>

#include <memory>
#include <string>
#include <vector>

namespace nnslim {

struct GRDAOptions : public torch::optim::OptimizerCloneableOptions<GRDAOptions> {
  GRDAOptions(double lr = 0.01);  // NOLINT: implicit, as LibTorch's option types
  TORCH_ARG(double, lr);          // the Trainer overwrites it every step (set_lr)
  TORCH_ARG(double, c) = 0.0;     // threshold scale, >= 0 (0 = plain SGD)
  TORCH_ARG(double, mu) = 0.51;   // threshold growth exponent, > 0 (0.5 < mu < 1 recommended)

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override;
  void set_lr(const double lr) override;
  ~GRDAOptions() override = default;
};

struct GRDAParamState : public torch::optim::OptimizerCloneableParamState<GRDAParamState> {
  TORCH_ARG(torch::Tensor, accumulator);  // same shape as the parameter
  TORCH_ARG(int64_t, step) = 0;           // n
  TORCH_ARG(double, threshold) = 0.0;     // G

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  ~GRDAParamState() override = default;
};

class GRDA : public torch::optim::Optimizer {
 public:
  // Throws c10::Error if lr < 0, c < 0 or mu <= 0 ("grda: mu must be > 0, got -1").
  GRDA(std::vector<torch::optim::OptimizerParamGroup> param_groups, GRDAOptions defaults);
  GRDA(std::vector<torch::Tensor> params, GRDAOptions defaults);

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  // The state of parameter p, or nullptr before p's first step (tests, reports).
  const GRDAParamState* state_of(const torch::Tensor& p) const;
  // Largest threshold G over all parameters (0 before the first step).
  double max_threshold() const;

 private:
  template <typename Self, typename Archive>
  static void serialize(Self& self, Archive& archive) {
    _TORCH_OPTIM_SERIALIZE_WITH_TEMPLATE_ARG(GRDA);
  }
};

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
struct GrdaMethodOptions {
  double c = 0.005;              // METHODS.md §5.3: 0 < c <= 0.005 (0 = plain SGD)
  double mu = 0.51;              // 0.5 < mu < 1 recommended
  bool remove_channels = false;  // remove channels whose every out-side entry is zero
  void validate() const;         // TORCH_CHECK naming the option
};

class Grda : public Method {
 public:
  explicit Grda(GrdaMethodOptions options);
  std::string name() const override { return "grda"; }
  // A GRDA over graph.parameters() with lr = options.lr (momentum and weight
  // decay of the OptimizerSettings are ignored).
  std::unique_ptr<torch::optim::Optimizer> make_optimizer(
      Graph& graph, const OptimizerSettings& options) override;
  void end_epoch(Context& ctx) override;  // logs "sparsity" and "grda_threshold"
  // Sparsity report; with remove_channels, every channel of a prunable coupling group whose
  // out-side parameters (filters, biases, BN gamma/beta) are all zero is removed (at least one
  // channel per group stays) -- such channels output exact zeros, so the network is unchanged.
  void finalize(Context& ctx) override;
  // Keeps every exact zero at zero while fine-tuning (gradient and weight masks).
  std::shared_ptr<Method> finetune_method() override;
  // {c, mu, sparsity, zeros, elements, zero_channels, remove_channels, channels_removed,
  //  layers: [{name, op, elements, zeros, sparsity, (conv) out_channels, zero_channels}]}
  // Filled by finalize() (and kept current by the fine-tuning hooks); empty before.
  void describe(Json& out) const override;

  const GrdaMethodOptions& options() const { return opt_; }

 private:
  struct Shared;
  GrdaMethodOptions opt_;
  std::shared_ptr<Shared> shared_;
};

// The registry entry (methods/registry.cpp): name "grda", options c, mu, remove-channels.
MethodInfo grda_method_info();

}  // namespace nnslim
