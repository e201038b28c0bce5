// TRP bookkeeping cost vs. a training step (issue: SVDs stay under 10% of training time at the
// default period). ResNet-20 on 1x28x28 (Fashion-MNIST shape), batch 128, all cores.
//
//   build-*/trp_overhead [period] [threads] [input C H W]      (defaults: 5, all cores, 1 28 28)
//
// Prints the median training step and, per scheme, the median cost of one TRP step's bookkeeping
// (SVD of every selected conv, projection, truncated sub-gradient, gradient update), that cost
// spread over `period` steps as a fraction of a training step, and the every-step cost of
// nuclear-mode every_step_full.
#include "nnslim/methods/registry.h"
#include "nnslim/methods/trp.h"
#include "nnslim/models/zoo.h"
#include "nnslim/report/latency.h"
#include "nnslim/train/memory.h"
#include "nnslim/train/threads.h"
#include "timing.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

using namespace nnslim;

namespace {

using bench::median;

// Median seconds of `reps` calls of f.
template <typename F>
double time_median(int reps, F f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(t);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t period = argc > 1 ? std::atoll(argv[1]) : 5;
  int threads = argc > 2 ? std::atoi(argv[2]) : 0;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<int64_t> shape{1, 28, 28};
  if (argc > 5) shape = {std::atoll(argv[3]), std::atoll(argv[4]), std::atoll(argv[5])};
  nnslim::set_compute_threads(threads);
  nnslim::keep_tensor_memory_in_heap();  // allocate as the nnslim binary does
  torch::manual_seed(0);
  Graph g = build_model("resnet20", shape, 10);

  LatencyOptions lo;
  lo.batch_size = 128;
  lo.warmup = 2;
  lo.min_runs = 5;
  lo.min_seconds = 3;
  const double step_ms = measure_train_step(g, lo).median_ms;

  torch::optim::SGD sgd(g.parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  Context ctx{g, sgd};
  ctx.steps_per_epoch = 100;
  for (auto& p : g.parameters()) p.mutable_grad() = torch::zeros_like(p);

  std::printf("resnet20 %lldx%lldx%lld, batch 128, %d threads; training step (median) %.3f ms\n",
              (long long)shape[0], (long long)shape[1], (long long)shape[2],
              torch::get_num_threads(), step_ms);
  std::printf("%-11s %14s %26s %13s %26s\n", "scheme", "TRP step", "per step at this period",
              "at period 1", "every_step_full per step");
  for (const char* scheme : {"channel", "spatial", "channel-in", "decouple"}) {
    auto trp = create_method("trp", {{"period", std::to_string(period)}, {"scheme", scheme}});
    trp->begin(ctx);
    ctx.batch = 0;  // a TRP step: SVD, projection, sub-gradient, gradient update
    const double trp_step_ms = 1e3 * time_median(15, [&] {
                                 trp->before_step(ctx);
                                 trp->after_backward(ctx);
                               });
    auto full = create_method(
        "trp", {{"trp", "false"}, {"nuclear-mode", "every_step_full"}, {"scheme", scheme}});
    full->begin(ctx);
    ctx.batch = 1;
    const double full_ms = 1e3 * time_median(15, [&] { full->after_backward(ctx); });
    const double per_step = trp_step_ms / static_cast<double>(period);
    std::printf("%-11s %11.3f ms %14.3f ms = %5.2f%% %12.2f%% %17.3f ms = %5.2f%%\n", scheme,
                trp_step_ms, per_step, 100.0 * per_step / step_ms, 100.0 * trp_step_ms / step_ms,
                full_ms, 100.0 * full_ms / step_ms);
  }
  return 0;
}
