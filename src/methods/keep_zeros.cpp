#include "nnslim/methods/keep_zeros.h"

#include <torch/torch.h>

namespace nnslim {

void KeepZeros::begin(Context& ctx) {
  torch::NoGradGuard no_grad;
  masks_.clear();
  for (const auto& p : ctx.graph.parameters()) {
    auto zero = p.detach() == 0;
    if (zero.any().item<bool>()) masks_.emplace_back(p, zero);
  }
}

void KeepZeros::after_backward(Context&) {
  for (auto& [p, zero] : masks_)
    if (p.grad().defined()) p.grad().masked_fill_(zero, 0);
}

void KeepZeros::after_step(Context&) {
  torch::NoGradGuard no_grad;
  for (auto& [p, zero] : masks_) p.detach().masked_fill_(zero, 0);
}

}  // namespace nnslim
