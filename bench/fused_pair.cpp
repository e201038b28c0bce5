// TRP channel-scheme factor pair (kxk conv C -> r, then 1x1 r -> N) on resnet20's layer shapes:
// the pair as eager convs (NCHW and NHWC), the merged dense conv, and the fused kernel
// (graph/fused_pair.h), all timed in one interleaved loop; prints medians and the largest
// difference of the fused result from the pair's.
//
//   build/fused_pair [threads] [batch]
#include "nnslim/graph/kernels/fused_pair.h"
#include "nnslim/train/memory.h"
#include "nnslim/train/threads.h"
#include "timing.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  int64_t batch = argc > 2 ? std::atoll(argv[2]) : 1;
  nnslim::set_compute_threads(threads);
  nnslim::keep_tensor_memory_in_heap();  // allocate as the nnslim binary does
  torch::NoGradGuard ng;
  torch::manual_seed(0);
  struct Case {
    int64_t c, r, hw;
  };
  const Case cases[] = {{16, 16, 32}, {16, 9, 32}, {16, 5, 32}, {32, 32, 16}, {32, 15, 16},
                        {32, 8, 16},  {64, 64, 8}, {64, 24, 8}, {64, 12, 8}};
  std::printf("batch %lld, %d thread(s); ms per call (median); N = C\n", (long long)batch, threads);
  std::printf("%-14s %9s %9s %9s %9s %9s\n", "C->r @HxW", "pair", "pair nhwc", "merged",
              "merged nhwc", "fused");
  for (const auto& k : cases) {
    auto x = torch::randn({batch, k.c, k.hw, k.hw});
    auto xl = x.contiguous(torch::MemoryFormat::ChannelsLast);
    auto w1 = torch::randn({k.r, k.c, 3, 3}) * 0.2;
    auto w2 = torch::randn({k.c, k.r, 1, 1}) * 0.2;
    auto b = torch::randn({k.c});
    auto w1l = w1.contiguous(torch::MemoryFormat::ChannelsLast);
    auto w2l = w2.contiguous(torch::MemoryFormat::ChannelsLast);
    auto wm = torch::matmul(w2.flatten(1), w1.flatten(1)).view({k.c, k.c, 3, 3}).contiguous();
    auto wml = wm.contiguous(torch::MemoryFormat::ChannelsLast);
    std::vector<std::function<torch::Tensor()>> fs = {
        [&] { return torch::conv2d(torch::conv2d(x, w1, {}, 1, 1), w2, b); },
        [&] { return torch::conv2d(torch::conv2d(xl, w1l, {}, 1, 1), w2l, b); },
        [&] { return torch::conv2d(x, wm, b, 1, 1); },
        [&] { return torch::conv2d(xl, wml, b, 1, 1); },
        [&] {
          return nnslim::fused_pair(x, w1, w2, b, {1, 1});
        }};
    double err = (fs[4]() - fs[0]()).abs().max().item<double>();
    std::vector<std::function<void()>> runs;
    for (auto& f : fs) {
      for (int i = 0; i < 5; ++i) (void)f();  // warm-up
      runs.push_back([&f] { (void)f(); });
    }
    const auto ms =
        nnslim::bench::medians(nnslim::bench::interleaved_ms(runs, {30, batch > 1 ? 3.0 : 1.0}));
    char name[32];
    std::snprintf(name, sizeof name, "%lld->%lld @%lld", (long long)k.c, (long long)k.r,
                  (long long)k.hw);
    std::printf("%-14s", name);
    for (double m : ms) std::printf(" %9.4f", m);
    std::printf("   (max |fused - pair| %.1e)\n", err);
  }
  return 0;
}
