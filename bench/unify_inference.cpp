// Times the sign-sum kernel for unified conv layers (methods/unify_format.h, METHODS.md §4.1)
// against torch::conv2d on the same (projected) weights, on resnet20- and vgg16-sized layers
// (CIFAR-style 32x32 inputs), p = 0.5, u = 0.25.
//
//   unify_inference [--threads N] [--batch B] [--seconds S] [--blocks 1x4xK,4x4x1,1x1xK]
//
// Columns: torch = torch::conv2d (oneDNN/GEMM) on the unified weights; dense-own = our kernel with
// every block free (p = u = 0, same loops: isolates what the structure saves in our own code);
// unified = our kernel on the p/u structure (the unfolding of the input included in both of
// ours). Ratios > 1 mean "unified is faster". Medians of interleaved repeated runs (--seconds
// per layer). Set OMP_WAIT_POLICY=PASSIVE on a busy machine.
#include "nnslim/methods/unify.h"
#include "nnslim/train/memory.h"
#include "nnslim/train/threads.h"
#include "timing.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

using namespace nnslim;

namespace {

// The median ms of each function, timed in interleaved rounds after one warm-up call each.
std::vector<double> interleaved_median_ms(const std::vector<std::function<void()>>& fs,
                                          double seconds) {
  for (const auto& f : fs) f();
  return bench::medians(bench::interleaved_ms(fs, {7, seconds, 2000}));
}

struct Layer {
  const char* model;
  int64_t channels, size;  // c = n, H = W
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  int64_t batch = 1;
  double seconds = 1.0;
  std::string blocks = "1x4xK,4x4x1,1x1xK";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (a == "--batch")
      batch = std::atoll(argv[i + 1]);
    else if (a == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else if (a == "--blocks")
      blocks = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  nnslim::set_compute_threads(threads);
  nnslim::keep_tensor_memory_in_heap();  // allocate as the nnslim binary does
  torch::manual_seed(0);
  const std::vector<Layer> layers = {
      {"resnet20", 16, 32}, {"resnet20", 32, 16}, {"resnet20", 64, 8}, {"vgg16", 64, 32},
      {"vgg16", 128, 16},   {"vgg16", 256, 8},    {"vgg16", 512, 4},   {"vgg16", 512, 2},
  };
  std::printf("threads %d, batch %lld, 3x3 convs stride 1 pad 1, p = 0.5, u = 0.25\n", threads,
              (long long)batch);
  std::printf("%-9s %-14s %-6s %9s %10s %10s %9s %11s %11s %9s\n", "model", "layer", "block",
              "torch ms", "dense-own", "unified", "MAC x", "vs torch", "vs own", "max err");
  std::stringstream ss(blocks);
  std::vector<BlockShape> shapes;
  for (std::string b; std::getline(ss, b, ',');) shapes.push_back(parse_block_shape(b, "--blocks"));
  for (const auto& bs : shapes) {
    for (const auto& l : layers) {
      const int64_t c = l.channels;
      auto w = torch::randn({c, c, 3, 3}) * std::sqrt(2.0 / (9 * c));
      BlockPartition part(w.sizes().vec(), bs);
      auto proj = project_blocks(w, part, 0.5, 0.25);
      Attrs a;
      a.kernel = {3, 3};
      a.padding = {1, 1};
      auto x = torch::randn({batch, c, l.size, l.size});
      UnifiedConv2d unified(unified_from_weight(proj.weight, bs), a);
      // All blocks free: the dense work of our own loops (randn weights have no equal blocks).
      UnifiedConv2d dense_own(unified_from_weight(w, bs), a);
      torch::NoGradGuard ng;
      auto ref = torch::conv2d(x, proj.weight, {}, 1, 1);
      double err = (unified.forward(x) - ref).abs().max().item<double>();
      auto t = interleaved_median_ms({[&] { torch::conv2d(x, proj.weight, {}, 1, 1); },
                                      [&] { dense_own.forward(x); }, [&] { unified.forward(x); }},
                                     seconds);
      const double t_torch = t[0], t_own = t[1], t_uni = t[2];
      double mac_ratio = double(c * c * 9) / unified.multiplies_per_position();
      char name[32];
      std::snprintf(name, sizeof name, "%lldx%lld@%lld", (long long)c, (long long)c,
                    (long long)l.size);
      std::printf("%-9s %-14s %-6s %9.3f %10.3f %10.3f %9.2f %10.2fx %10.2fx %9.1e\n", l.model,
                  name, bs.str().c_str(), t_torch, t_own, t_uni, mac_ratio, t_torch / t_uni,
                  t_own / t_uni, err);
      std::fflush(stdout);
    }
  }
  return 0;
}
