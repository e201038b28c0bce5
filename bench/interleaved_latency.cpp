// Inference latency of saved models, every variant timed in the same loop: each iteration runs
// every (model, layout, conv algorithm) variant once, in rotating order, so that drift in the
// machine's speed (other VMs, frequency) hits all variants alike. Prints the median per variant
// and the speed-up of each model's best variant over the first model's best.
//
//   build/interleaved_latency [--threads N] [--batch B] [--seconds S] [--profile] MODEL.nnslim...
//
// --profile also prints, per model, every node's median time alone on its recorded input
// (NHWC as is, and NCHW planned), to see where a model's time goes.
//
// Variants: BatchNorm folded (as exported), NCHW or NHWC (channels_last), and "as is" or
// "planned" (each factor pair run as the pair, merged (m) or fused (f), whichever measured
// fastest, and each conv with >= 50% zero weights run dense or by a sparse kernel (s), as
// `nnslim bench` does by default: graph/lowering.h, graph/sparse_conv.h, report/latency.h).
#include "nnslim/graph/execute.h"
#include "nnslim/graph/fold.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/report/latency.h"
#include "nnslim/train/memory.h"
#include "nnslim/train/threads.h"
#include "timing.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace nnslim;

namespace {

struct Variant {
  std::string model, name;
  Graph graph;
  torch::Tensor input;
  std::vector<double> ms;
};

Graph channels_last(Graph g) {
  torch::NoGradGuard ng;
  for (auto& n : g.nodes)
    if (n.op == Op::kConv2d)
      n.params["weight"] = n.params["weight"].contiguous(torch::MemoryFormat::ChannelsLast);
  return g;
}

using bench::median;

// Every node alone on its recorded input: median of 200 runs, interleaved over nodes.
void profile_nodes(const std::string& model, const Graph& g, const torch::Tensor& x) {
  auto inputs = node_inputs(g, x);
  std::vector<std::function<void()>> runs;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    runs.push_back([&, i] { (void)run_node(g.nodes[i], inputs[i], Mode::kEval); });
  const auto ms = bench::interleaved_ms(runs, {200, 0, 200});
  double total = 0;
  std::printf("profile of %s (node alone on its input):\n", model.c_str());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const auto& n = g.nodes[i];
    double m = median(ms[i]);
    total += m;
    if (n.op == Op::kIdentity) continue;
    std::string shape;
    if (n.op == Op::kConv2d) {
      auto w = n.params.at("weight").sizes();
      shape = std::to_string(w[1]) + "->" + std::to_string(w[0]) + " " + std::to_string(w[2]) +
              "x" + std::to_string(w[3]) + " @" + std::to_string(inputs[i][0].size(2));
    }
    std::printf("  %-22s %-18s %8.4f ms\n", n.name.c_str(), shape.c_str(), m);
  }
  std::printf("  sum %.3f ms\n", total);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  int64_t batch = 1;
  double seconds = 10;
  bool profile = false;
  std::vector<std::string> models;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (a == "--batch" && i + 1 < argc)
      batch = std::atoll(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc)
      seconds = std::atof(argv[++i]);
    else if (a == "--profile")
      profile = true;
    else if (a.rfind("--", 0) == 0) {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    } else
      models.push_back(a);
  }
  if (models.empty()) {
    std::fprintf(stderr, "usage: %s [--threads N] [--batch B] [--seconds S] MODEL.nnslim...\n",
                 argv[0]);
    return 2;
  }
  set_compute_threads(threads);
  nnslim::keep_tensor_memory_in_heap();  // allocate as the nnslim binary does
  torch::NoGradGuard ng;
  std::vector<Variant> vs;
  for (const auto& path : models) {
    Graph folded;
    try {
      folded = fold_batchnorm(load_graph(path));
    } catch (const c10::Error& e) {
      std::fprintf(stderr, "error: %s\n", e.what_without_backtrace());
      return 1;
    }
    std::vector<int64_t> shape{batch};
    shape.insert(shape.end(), folded.input_shape.begin(), folded.input_shape.end());
    auto x = torch::randn(shape);
    for (bool nhwc : {false, true}) {
      Graph g = nhwc ? channels_last(folded) : folded.clone();
      auto xin = nhwc ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
      Graph merged = g.clone();
      LatencyOptions lo;
      lo.batch_size = batch;
      const auto plan = plan_inference(merged, xin, lo);
      std::string layout = nhwc ? "nhwc" : "nchw";
      vs.push_back({path, layout + " as is", std::move(g), xin, {}});
      if (plan.changes() > 0)
        vs.push_back({path,
                      layout + " planned (" + std::to_string(plan.pairs.merged) + "m " +
                          std::to_string(plan.pairs.fused) + "f " +
                          std::to_string(plan.sparse_convs) + "s)",
                      std::move(merged),
                      xin,
                      {}});
    }
  }
  for (auto& v : vs)
    for (int i = 0; i < 3; ++i) (void)forward(v.graph, v.input, Mode::kEval);
  std::vector<std::function<void()>> runs;
  for (auto& v : vs) runs.push_back([&v] { (void)forward(v.graph, v.input, Mode::kEval); });
  auto ms = bench::interleaved_ms(
      runs, {20, seconds, std::numeric_limits<size_t>::max(), /*rotate=*/true});
  for (size_t i = 0; i < vs.size(); ++i) vs[i].ms = std::move(ms[i]);
  double first_best = 0;
  std::string last;
  std::printf("batch %lld, %d thread(s), %zu runs per variant\n", (long long)batch, threads,
              vs[0].ms.size());
  for (size_t i = 0; i < vs.size();) {
    double best = 1e300;
    size_t j = i;
    for (; j < vs.size() && vs[j].model == vs[i].model; ++j)
      best = std::min(best, median(vs[j].ms));
    if (i == 0) first_best = best;
    std::printf("%s  best %.3f ms, speed-up %.2fx\n", vs[i].model.c_str(), best, first_best / best);
    for (size_t k = i; k < j; ++k)
      std::printf("    %-22s %8.3f ms\n", vs[k].name.c_str(), median(vs[k].ms));
    i = j;
  }
  if (profile)
    for (auto& v : vs)
      if (v.name == "nhwc as is" || v.name.rfind("nchw planned", 0) == 0)
        profile_nodes(v.model + " " + v.name, v.graph, v.input);
  return 0;
}
