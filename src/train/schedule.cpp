#include "nnslim/train/schedule.h"

#include <c10/util/Exception.h>

#include <cmath>

namespace nnslim {

std::vector<std::string> schedule_kinds() { return {"constant", "step", "multistep", "cosine"}; }

void LrSchedule::validate() const {
  bool known = false;
  for (const auto& k : schedule_kinds()) known |= k == kind;
  TORCH_CHECK(known, "unknown lr schedule '", kind, "' (known: constant, step, multistep, cosine)");
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
  }
  if (warmup_epochs > 0 && t < warmup_epochs) lr *= t / warmup_epochs;
  return lr;
}

}  // namespace nnslim
