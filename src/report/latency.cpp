#include "nnslim/report/latency.h"

#include "nnslim/graph/execute.h"
#include "nnslim/graph/fold.h"
#include "nnslim/graph/inference_plan.h"

#include <torch/torch.h>

#include <algorithm>

namespace nnslim {

namespace {

// The statistics of timed runs (graph/timing.h) of `run`.
template <typename F>
LatencyResult time_runs(const LatencyOptions& o, F run) {
  TORCH_CHECK(o.batch_size >= 1, "bench: batch size must be >= 1");
  std::vector<double> ms = time_runs_ms(o.timing(), run);
  TORCH_CHECK(!ms.empty(), "bench: max_runs must be >= 1");
  LatencyResult r;
  r.runs = static_cast<int64_t>(ms.size());
  r.median_ms = ms[ms.size() / 2];
  r.p90_ms = ms[std::min(ms.size() - 1, ms.size() * 9 / 10)];
  double sum = 0;
  for (double v : ms) sum += v;
  r.mean_ms = sum / ms.size();
  r.images_per_second = o.batch_size * 1000.0 / r.median_ms;
  return r;
}

torch::Tensor random_input(const Graph& g, const LatencyOptions& o) {
  std::vector<int64_t> shape{o.batch_size};
  shape.insert(shape.end(), g.input_shape.begin(), g.input_shape.end());
  auto params = g.parameters();
  auto dtype = params.empty() ? torch::kFloat : params[0].scalar_type();
  return torch::randn(shape, torch::TensorOptions().dtype(dtype).device(o.device));
}

}  // namespace

LatencyResult measure_latency(const Graph& graph, const LatencyOptions& o) {
  Graph g = o.fold_batchnorm ? fold_batchnorm(graph) : graph.clone();
  g.to(o.device);
  auto x = random_input(g, o);
  torch::NoGradGuard no_grad;
  // Candidates: each allowed layout as it is and with its per-layer plan for factor pairs. The
  // plan is judged layer by layer in isolation, so the whole graph is timed again here and the
  // fastest candidate is what gets measured (a runtime keeps a fusion only if it pays).
  struct Candidate {
    Graph graph;
    torch::Tensor input;
    bool channels_last;
    InferencePlan plan;
  };
  std::vector<Candidate> candidates;
  using F = LatencyOptions::Format;
  for (bool nhwc : {false, true}) {
    if ((nhwc && o.memory_format == F::kContiguous) ||
        (!nhwc && o.memory_format == F::kChannelsLast))
      continue;
    Candidate c{g.clone(), nhwc ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x, nhwc, {}};
    if (nhwc)
      for (auto& n : c.graph.nodes)
        if (n.op == Op::kConv2d)
          n.params["weight"] = n.params["weight"].contiguous(torch::MemoryFormat::ChannelsLast);
    if (o.plan_factor_pairs || o.plan_sparse_convs) {
      Candidate planned{c.graph.clone(), c.input, nhwc, {}};
      planned.plan = plan_inference(planned.graph, planned.input, o);
      if (planned.plan.changes() > 0) candidates.push_back(std::move(planned));
    }
    candidates.push_back(std::move(c));
  }
  size_t best = 0;
  if (candidates.size() > 1) {
    LatencyOptions trial = o;
    trial.warmup = 2;
    trial.min_runs = 3;
    trial.min_seconds = std::min(0.3, o.min_seconds);
    double best_ms = 1e300;
    for (size_t i = 0; i < candidates.size(); ++i) {
      auto& c = candidates[i];
      double ms = time_runs(trial, [&] { (void)forward(c.graph, c.input, Mode::kEval); }).median_ms;
      if (ms < best_ms) {
        best_ms = ms;
        best = i;
      }
    }
  }
  auto& c = candidates[best];
  LatencyResult r = time_runs(o, [&] { (void)forward(c.graph, c.input, Mode::kEval); });
  r.channels_last = c.channels_last;
  r.merged_conv_pairs = c.plan.pairs.merged;
  r.fused_conv_pairs = c.plan.pairs.fused;
  r.sparse_convs = c.plan.sparse_convs;
  return r;
}

LatencyResult measure_train_step(const Graph& graph, const LatencyOptions& o) {
  Graph g = graph.clone();
  g.to(o.device);
  auto x = random_input(g, o);
  auto out_shape = forward(g, x, Mode::kEval).sizes();
  TORCH_CHECK(out_shape.size() == 2, "bench --train needs a classifier (output [N, classes])");
  auto y = torch::randint(out_shape[1], {o.batch_size},
                          torch::TensorOptions().dtype(torch::kLong).device(o.device));
  torch::optim::SGD opt(g.parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  return time_runs(o, [&] {
    opt.zero_grad();
    auto loss = torch::cross_entropy_loss(forward(g, x, Mode::kTrain), y);
    loss.backward();
    opt.step();
  });
}

}  // namespace nnslim
