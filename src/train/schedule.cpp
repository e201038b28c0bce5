#include "nnslim/train/schedule.h"

#include <c10/util/Exception.h>

#include <cmath>

namespace nnslim {

std::vector<std::string> schedule_kinds() {
  return {"constant", "step", "multistep", "cosine", "grda"};
}

void LrSchedule::validate() const {
  bool known = false;
  for (const auto& k : schedule_kinds()) known |= k == kind;
  std::string names;
  for (const auto& k : schedule_kinds()) names += (names.empty() ? "" : ", ") + k;
  TORCH_CHECK(known, "unknown lr schedule '", kind, "' (known: ", names, ")");
  TORCH_CHECK(base_lr > 0 && std::isfinite(base_lr), "lr must be > 0, got ", base_lr);
  TORCH_CHECK(gamma > 0, "lr gamma must be > 0, got ", gamma);
  TORCH_CHECK(step_size >= 1, "lr step size must be >= 1, got ", step_size);
  TORCH_CHECK(warmup_epochs >= 0, "warm-up epochs must be >= 0, got ", warmup_epochs);
  TORCH_CHECK(min_lr >= 0 && min_lr <= base_lr, "min lr must be in [0, lr], got ", min_lr);
  for (size_t i = 0; i < milestones.size(); ++i)
    TORCH_CHECK(milestones[i] >= 1 && (i == 0 || milestones[i] > milestones[i - 1]),
                "lr milestones must be increasing positive epochs");
}

double LrSchedule::at(int64_t epoch, double fraction, int64_t total_epochs) const {
  double t = static_cast<double>(epoch) + fraction;  // epochs done, fractional
  double lr = base_lr;
  if (kind == "step") {
    lr *= std::pow(gamma, static_cast<double>(epoch / step_size));
  } else if (kind == "multistep") {
    for (auto m : milestones)
      if (epoch >= m) lr *= gamma;
  } else if (kind == "cosine") {
    double T = std::max<double>(1.0, static_cast<double>(total_epochs) - warmup_epochs);
    double p = std::min(1.0, std::max(0.0, (t - warmup_epochs) / T));
    lr = min_lr + 0.5 * (base_lr - min_lr) * (1.0 + std::cos(M_PI * p));
  } else if (kind == "grda") {
    // METHODS.md §5.3 (VGG16 / WRN on CIFAR): constant for the first 50% of the run, linear
    // decay to 1% of the base rate by 90%, then constant. [OUR CHOICE] the decay is evaluated
    // per step (t is fractional), like cosine, rather than once per epoch.
    double T = std::max<double>(1.0, static_cast<double>(total_epochs));
    double r = t / T;
    if (r >= 0.9)
      lr = 0.01 * base_lr;
    else if (r > 0.5)
      lr = base_lr * (1.0 - 0.99 * (r - 0.5) / 0.4);
  }
  if (warmup_epochs > 0 && t < warmup_epochs) lr *= t / warmup_epochs;
  return lr;
}

}  // namespace nnslim
