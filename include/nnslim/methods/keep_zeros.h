// Fine-tuning hooks for the element-sparse methods (gRDA, OBProx-SG): plain SGD after them must
// not refill the exact zeros they found. At begin() every parameter's zero entries are recorded;
// their gradients are masked after backward and the entries re-zeroed after each step (weight
// decay and momentum would otherwise move them).
#pragma once

#include "nnslim/methods/method.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace nnslim {

class KeepZeros : public Method {
 public:
  using OnEpoch = std::function<void(const Graph&)>;  // e.g. refresh a sparsity report
  KeepZeros(std::string name, OnEpoch on_epoch)
      : name_(std::move(name)), on_epoch_(std::move(on_epoch)) {}
  std::string name() const override { return name_; }
  void begin(Context& ctx) override;
  void after_backward(Context&) override;
  void after_step(Context&) override;
  void end_epoch(Context& ctx) override {
    if (on_epoch_) on_epoch_(ctx.graph);
  }

 private:
  std::string name_;
  OnEpoch on_epoch_;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> masks_;  // (parameter, zero mask)
};

}  // namespace nnslim
