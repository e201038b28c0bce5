// Learning-rate schedules, evaluated per step so that cosine decay and warm-up are smooth and a
// resumed run sees exactly the same rates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nnslim {

struct LrSchedule {
  std::string kind = "cosine";  // constant | step | multistep | cosine | grda
  double base_lr = 0.1;
  int64_t step_size = 30;           // step: multiply by gamma every step_size epochs
  std::vector<int64_t> milestones;  // multistep: multiply by gamma at each of these epochs
  double gamma = 0.1;
  double warmup_epochs = 0;  // linear warm-up from 0 over this many epochs
  double min_lr = 0;         // cosine: final rate
  // grda (METHODS.md §5.3): base_lr for the first 50% of the epochs, then linear decay to
  // 1% of base_lr at 90%, then constant 0.01 * base_lr. Evaluated per step (smooth).

  // Rate at `epoch` (0-based) + `fraction` of it done, for a run of `total_epochs`.
  double at(int64_t epoch, double fraction, int64_t total_epochs) const;
  // Throws c10::Error naming the problem if the schedule is invalid.
  void validate() const;
};

// The known kinds, for help texts.
std::vector<std::string> schedule_kinds();

}  // namespace nnslim
