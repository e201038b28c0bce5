// Where sparse convolution pays in a real sparse model: every conv of a saved model (BatchNorm
// folded, as exported) timed alone on its real input, dense (NCHW and NHWC) and with both sparse
// kernels of graph/sparse_conv.h, interleaved (each round runs every variant of every layer once)
// so drift hits all alike. Prints median times and the zero fraction per layer, and totals.
//
//   build/sparse_layers [--threads N] [--batch B] [--seconds S] MODEL.nnslim
#include "nnslim/graph/execute.h"
#include "nnslim/graph/fold.h"
#include "nnslim/graph/kernels/sparse_conv.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/report/latency.h"
#include "nnslim/train/memory.h"
#include "nnslim/train/threads.h"
#include "timing.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

using namespace nnslim;

using bench::median;

int main(int argc, char** argv) {
  int threads = 1;
  int64_t batch = 1;
  double seconds = 10;
  std::string path;
  bool bad_option = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (a == "--batch" && i + 1 < argc)
      batch = std::atoll(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc)
      seconds = std::atof(argv[++i]);
    else if (a.rfind("--", 0) == 0)
      bad_option = true;  // unknown option (or --help): usage
    else
      path = a;
  }
  if (path.empty() || bad_option) {
    std::fprintf(stderr, "usage: %s [--threads N] [--batch B] [--seconds S] MODEL.nnslim\n",
                 argv[0]);
    return 2;
  }
  set_compute_threads(threads);
  nnslim::keep_tensor_memory_in_heap();  // allocate as the nnslim binary does
  torch::NoGradGuard ng;
  Graph g;
  try {
    g = fold_batchnorm(load_graph(path));
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what_without_backtrace());
    return 1;
  }
  std::vector<int64_t> shape{batch};
  shape.insert(shape.end(), g.input_shape.begin(), g.input_shape.end());
  auto inputs = node_inputs(g, torch::randn(shape));
  struct Layer {
    std::string name;
    double zeros;
    std::vector<std::function<void()>> ways;  // dense nchw, dense nhwc, direct, im2col-csr
    std::vector<std::vector<double>> ms;
  };
  std::vector<Layer> layers;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.op != Op::kConv2d || n.attrs.groups != 1) continue;
    auto x = inputs[i][0];
    auto w = n.params.at("weight");
    auto b = n.params.count("bias") ? n.params.at("bias") : torch::Tensor();
    auto xl = x.contiguous(torch::MemoryFormat::ChannelsLast);
    auto wl = w.contiguous(torch::MemoryFormat::ChannelsLast);
    auto s = to_sparse_conv_weight(w);
    const auto& a = n.attrs;
    Layer l{n.name, zero_fraction(w), {}, std::vector<std::vector<double>>(4)};
    l.ways.push_back([=] { (void)torch::conv2d(x, w, b, a.stride, a.padding, a.dilation); });
    l.ways.push_back([=] { (void)torch::conv2d(xl, wl, b, a.stride, a.padding, a.dilation); });
    for (auto k : {SparseConvKernel::kDirect, SparseConvKernel::kIm2colCsr})
      l.ways.push_back([=] { (void)sparse_conv2d(x, s, b, a.stride, a.padding, a.dilation, k); });
    layers.push_back(std::move(l));
  }
  std::vector<std::function<void()>> runs;  // every way of every layer, in one interleaved loop
  for (auto& l : layers) runs.insert(runs.end(), l.ways.begin(), l.ways.end());
  auto ms = bench::interleaved_ms(runs, {20, seconds});
  for (size_t i = 0, j = 0; i < layers.size(); ++i)
    for (size_t k = 0; k < layers[i].ways.size(); ++k) layers[i].ms[k] = std::move(ms[j++]);
  std::printf("%s: batch %lld, %d thread(s), %zu runs per variant; median ms\n", path.c_str(),
              (long long)batch, threads, layers.empty() ? 0 : layers[0].ms[0].size());
  std::printf("%-22s %6s %8s %8s %8s %8s  %s\n", "conv", "zeros", "nchw", "nhwc", "direct", "csr",
              "best");
  const char* names[] = {"nchw", "nhwc", "direct", "csr"};
  double total[4] = {0, 0, 0, 0}, best_total = 0;
  for (auto& l : layers) {
    double t[4];
    size_t best = 0;
    for (size_t k = 0; k < 4; ++k) {
      t[k] = median(l.ms[k]);
      total[k] += t[k];
      if (t[k] < t[best]) best = k;
    }
    best_total += t[best];
    std::printf("%-22s %5.1f%% %8.4f %8.4f %8.4f %8.4f  %s\n", l.name.c_str(), 100 * l.zeros, t[0],
                t[1], t[2], t[3], names[best]);
  }
  std::printf("%-22s %6s %8.4f %8.4f %8.4f %8.4f  per-layer best %.4f\n", "TOTAL", "", total[0],
              total[1], total[2], total[3], best_total);
  return 0;
}
