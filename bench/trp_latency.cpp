// Real speed of TRP-factorised networks (issue: latency ratio >= 0.6 x the MAC ratio at batch 1
// and 64). ResNet-20 (untrained weights: the ranks come from the target-macs bisection), the
// three schemes at a ~2x network-MAC reduction, optionally with ranks rounded to a multiple of 8.
//
//   build-*/trp_latency [threads] [target] [C H W]
//
// Each variant runs through nnslim::forward (the library's executor, unchanged) in eval mode
// without autograd, in three layouts that need no executor change:
//   nchw   the default (what `nnslim bench` measures)
//   cl     input and conv weights in torch's channels_last memory format
//   cl+bn  channels_last with every conv->BN pair folded into the conv (BN becomes identity)
// Timings: the minimum over 3 interleaved rounds of the median of >= 0.3 s of runs, so that
// other load on the machine disturbs the comparison as little as possible.
#include "nnslim/graph/cost.h"
#include "nnslim/graph/execute.h"
#include "nnslim/methods/registry.h"
#include "nnslim/methods/trp.h"
#include "nnslim/models/zoo.h"
#include "nnslim/train/memory.h"
#include "nnslim/train/threads.h"
#include "timing.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

using namespace nnslim;

namespace {

using Clock = std::chrono::steady_clock;

double median_ms(const Graph& g, const torch::Tensor& x, double seconds) {
  torch::NoGradGuard ng;
  for (int i = 0; i < 3; ++i) (void)forward(g, x, Mode::kEval);
  std::vector<double> ms;
  auto start = Clock::now();
  while (ms.size() < 5 || std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
    auto t0 = Clock::now();
    (void)forward(g, x, Mode::kEval);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return bench::median(ms);
}

int64_t conv_macs_of(const Graph& g) {
  int64_t m = 0;
  for (const auto& c : count_cost(g).nodes)
    if (c.op == Op::kConv2d) m += c.macs;
  return m;
}

Graph channels_last(Graph g) {
  torch::NoGradGuard ng;
  for (auto& n : g.nodes)
    if (n.op == Op::kConv2d) {
      auto& w = n.params.at("weight");
      w = w.contiguous(at::MemoryFormat::ChannelsLast);
    }
  return g;
}

// Folds BatchNorm into the conv before it (when the BN is the conv's only reader).
Graph fold_bn(Graph g) {
  torch::NoGradGuard ng;
  for (auto& bn : g.nodes) {
    if (bn.op != Op::kBatchNorm2d) continue;
    Node& conv = g.node(bn.inputs[0]);
    if (conv.op != Op::kConv2d || g.consumers(conv.id).size() != 1) continue;
    auto scale = bn.params.at("weight") / (bn.buffers.at("running_var") + bn.attrs.eps).sqrt();
    auto& w = conv.params.at("weight");
    w = (w * scale.view({-1, 1, 1, 1})).contiguous(w.suggest_memory_format());
    auto b = conv.params.count("bias") ? conv.params.at("bias") : torch::zeros_like(scale);
    conv.params["bias"] = (b - bn.buffers.at("running_mean")) * scale + bn.params.at("bias");
    bn.op = Op::kIdentity;
    bn.params.clear();
    bn.buffers.clear();
  }
  return g;
}

Graph factorised(const Graph& dense, const std::string& scheme, double target, int multiple) {
  Graph g = dense.clone();
  auto m = create_method("trp", {{"scheme", scheme},
                                 {"target-macs", std::to_string(target)},
                                 {"rank-multiple", std::to_string(multiple)}});
  torch::optim::SGD sgd(g.parameters(), torch::optim::SGDOptions(0.1));
  Context ctx{g, sgd};
  m->begin(ctx);
  FinalizeContext done{g};
  m->finalize(done);
  return g;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1])
                         : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  double target = argc > 2 ? std::atof(argv[2]) : 0.5;
  std::vector<int64_t> shape{1, 32, 32};
  if (argc > 5) shape = {std::atoll(argv[3]), std::atoll(argv[4]), std::atoll(argv[5])};
  nnslim::set_compute_threads(threads);
  nnslim::keep_tensor_memory_in_heap();  // allocate as the nnslim binary does
  torch::manual_seed(0);
  Graph dense = build_model("resnet20", shape, 10);

  struct Variant {
    std::string name;
    Graph graph;
  };
  std::vector<Variant> variants;
  variants.push_back({"dense", dense});
  for (const char* s : {"channel", "channel-in", "spatial", "decouple"})
    for (int mult : {1, 8}) {
      if (mult > 1 && std::string(s) == "decouple") continue;  // ND ranks are <= kh*kw
      variants.push_back(
          {std::string(s) + (mult > 1 ? " r%8" : ""), factorised(dense, s, target, mult)});
    }

  const char* layouts[] = {"nchw", "cl", "cl+bn"};
  // [variant][layout][batch index]
  std::vector<std::vector<std::array<double, 2>>> best(
      variants.size(), std::vector<std::array<double, 2>>(3, {1e30, 1e30}));
  const int64_t batches[2] = {1, 64};
  for (int round = 0; round < 3; ++round)
    for (size_t v = 0; v < variants.size(); ++v)
      for (int l = 0; l < 3; ++l) {
        Graph g = l == 0 ? variants[v].graph : channels_last(variants[v].graph);
        if (l == 2) g = fold_bn(g);
        for (int b = 0; b < 2; ++b) {
          std::vector<int64_t> xs{batches[b]};
          xs.insert(xs.end(), shape.begin(), shape.end());
          auto x = torch::randn(xs);
          if (l > 0) x = x.contiguous(at::MemoryFormat::ChannelsLast);
          best[v][l][b] = std::min(best[v][l][b], median_ms(g, x, 0.3));
        }
        std::fprintf(stderr, "round %d %s %s: b1 %.3f ms, b64 %.3f ms\n", round + 1,
                     variants[v].name.c_str(), layouts[l], best[v][l][0], best[v][l][1]);
      }

  const double dense_conv = static_cast<double>(conv_macs_of(dense));
  std::printf(
      "resnet20 %lldx%lldx%lld, %d threads, target-macs %.2f; latency ms (min of 3 "
      "medians); ratio = dense/variant in the same layout; q = latency ratio / conv-MAC "
      "ratio\n",
      (long long)shape[0], (long long)shape[1], (long long)shape[2], threads, target);
  for (size_t v = 0; v < variants.size(); ++v) {
    const double mac_ratio = dense_conv / static_cast<double>(conv_macs_of(variants[v].graph));
    std::printf("%-12s conv-MAC ratio %.2f\n", variants[v].name.c_str(), mac_ratio);
    for (int l = 0; l < 3; ++l) {
      std::printf("   %-6s", layouts[l]);
      for (int b = 0; b < 2; ++b) {
        double ratio = best[0][l][b] / best[v][l][b];
        std::printf("  b%-2lld %8.3f ms  x%.2f (q %.2f) vs nchw-dense x%.2f", (long long)batches[b],
                    best[v][l][b], ratio, ratio / mac_ratio, best[0][0][b] / best[v][l][b]);
      }
      std::printf("\n");
    }
  }
  return 0;
}
