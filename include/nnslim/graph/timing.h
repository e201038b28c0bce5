// Wall-clock timing of a piece of work, shared by the inference planner (graph/inference_plan.h)
// and the latency measurement (report/latency.h), so both time the same way.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace nnslim {

struct TimingOptions {
  int64_t warmup = 5;        // untimed runs first
  int64_t min_runs = 20;     // at least this many timed runs...
  double min_seconds = 1.0;  // ...and at least this long in total
  int64_t max_runs = 10000;
  torch::Device device = torch::kCPU;  // a CUDA device is synchronised after every run
};

// The times of the timed runs of `run` in milliseconds, sorted ascending (never empty unless
// max_runs is 0).
std::vector<double> time_runs_ms(const TimingOptions& options, const std::function<void()>& run);

}  // namespace nnslim
