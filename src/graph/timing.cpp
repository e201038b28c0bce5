#include "nnslim/graph/timing.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

namespace nnslim {

namespace {
void sync(torch::Device d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}
}  // namespace

std::vector<double> time_runs_ms(const TimingOptions& o, const std::function<void()>& run) {
  using Clock = std::chrono::steady_clock;
  for (int64_t i = 0; i < o.warmup; ++i) run();
  sync(o.device);
  std::vector<double> ms;
  auto start = Clock::now();
  while (static_cast<int64_t>(ms.size()) < o.max_runs &&
         (static_cast<int64_t>(ms.size()) < o.min_runs ||
          std::chrono::duration<double>(Clock::now() - start).count() < o.min_seconds)) {
    auto t0 = Clock::now();
    run();
    sync(o.device);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms;
}

}  // namespace nnslim
