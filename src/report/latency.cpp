#include "nnslim/report/latency.h"

#include "nnslim/graph/execute.h"
#include "nnslim/graph/fold.h"
#include "nnslim/graph/fused_pair.h"
#include "nnslim/graph/lowering.h"
#include "nnslim/graph/sparse_conv.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>

namespace nnslim {

namespace {

using Clock = std::chrono::steady_clock;

void sync(torch::Device d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

template <typename F>
LatencyResult time_runs(const LatencyOptions& o, F run) {
  TORCH_CHECK(o.batch_size >= 1, "bench: batch size must be >= 1");
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

std::vector<std::vector<torch::Tensor>> node_inputs(const Graph& g, const torch::Tensor& x) {
  std::vector<torch::Tensor> values(g.next_id);
  values[kGraphInput] = x;
  std::vector<std::vector<torch::Tensor>> inputs;
  for (const auto& n : g.nodes) {
    std::vector<torch::Tensor> ins;
    for (int id : n.inputs) ins.push_back(values[id]);
    values[n.id] = run_node(n, ins, Mode::kEval);
    inputs.push_back(std::move(ins));
  }
  return inputs;
}

namespace {
// Times each way of computing one layer alone, in three interleaved rounds (so a burst of noise
// hits all of them), and returns each one's best median. An empty function is not timed (1e300).
std::vector<double> time_alternatives(const LatencyOptions& o, const std::vector<std::function<void()>>& ways) {
  LatencyOptions trial = o;
  trial.warmup = 2;
  trial.min_runs = 5;
  trial.min_seconds = std::min(0.03, o.min_seconds);
  std::vector<double> t(ways.size(), 1e300);
  for (int round = 0; round < 3; ++round)
    for (size_t i = 0; i < ways.size(); ++i)
      if (ways[i]) t[i] = std::min(t[i], time_runs(trial, ways[i]).median_ms);
  return t;
}
// A rewrite must beat the layer as it is by 5%, so that noise does not flip a tie.
constexpr double kMustBeat = 0.95;
}  // namespace

// Per-layer choice for conv factor pairs (LatencyOptions::plan_factor_pairs): each pair is
// timed alone on its real input as the pair, as the merged conv and -- for a contiguous (NCHW)
// float input -- as the fused kernel; the fastest is kept.
FactorPairPlan plan_factor_pairs(Graph& g, const torch::Tensor& x, const LatencyOptions& o) {
  FactorPairPlan plan;
  auto pairs = mergeable_conv_pairs(g);
  if (pairs.empty()) return plan;
  torch::NoGradGuard no_grad;
  auto inputs = node_inputs(g, x);
  enum How { kPair, kMerge, kFuse };
  std::vector<std::pair<ConvPair, How>> choice;
  for (const auto& p : pairs) {
    const Node& first = g.node(p.first);
    const Node& second = g.node(p.second);
    const auto& in = inputs[g.index_of(p.first)];
    Node merged = merged_conv(g, p);
    // Exactly when the executor would run the fused kernel for this input.
    const auto& a = first.attrs;
    const bool fusable = can_fuse_conv_pair(g, p) && in[0].is_contiguous() &&
                         fused_pair_supports(in[0], first.params.at("weight"), second.params.at("weight"),
                                             a.stride, a.padding, a.dilation, a.groups);
    Node fused = fusable ? fused_conv_pair(g, p) : Node();
    std::function<void()> fuse_run;
    if (fusable) fuse_run = [&] { (void)run_node(fused, in, Mode::kEval); };
    auto t = time_alternatives(
        o, {[&] { (void)run_node(second, {run_node(first, in, Mode::kEval)}, Mode::kEval); },
            [&] { (void)run_node(merged, in, Mode::kEval); }, fuse_run});
    How best = t[kMerge] <= t[kFuse] ? kMerge : kFuse;
    if (t[best] < kMustBeat * t[kPair]) choice.push_back({p, best});
  }
  for (const auto& [p, how] : choice) {
    if (how == kMerge) {
      merge_conv_pair(g, p);
      ++plan.merged;
    } else {
      fuse_conv_pair(g, p);
      ++plan.fused;
    }
  }
  return plan;
}

// Per-layer choice for sparse weights (LatencyOptions::plan_sparse_convs): each conv with at
// least kMinZeros of its weights exactly zero is timed alone on its real input dense and with
// both sparse kernels; the fastest is kept.
int64_t plan_sparse_convs(Graph& g, const torch::Tensor& x, const LatencyOptions& o) {
  constexpr double kMinZeros = 0.5;  // below this the sparse kernels never won in our benchmarks
  std::vector<int> candidates;
  for (const auto& n : g.nodes)
    if (can_sparsify_conv(n) && zero_fraction(n.params.at("weight")) >= kMinZeros) candidates.push_back(n.id);
  if (candidates.empty()) return 0;
  torch::NoGradGuard no_grad;
  auto inputs = node_inputs(g, x);
  std::vector<std::pair<int, SparseConvKernel>> choice;
  for (int id : candidates) {
    const Node& dense = g.node(id);
    const auto& in = inputs[g.index_of(id)];
    if (!sparse_conv_supports(in[0], dense.params.at("weight"), dense.attrs.groups)) continue;
    Node direct = dense, csr = dense;
    sparsify_conv(direct, SparseConvKernel::kDirect);
    sparsify_conv(csr, SparseConvKernel::kIm2colCsr);
    auto t = time_alternatives(o, {[&] { (void)run_node(dense, in, Mode::kEval); },
                                   [&] { (void)run_node(direct, in, Mode::kEval); },
                                   [&] { (void)run_node(csr, in, Mode::kEval); }});
    const size_t best = t[1] <= t[2] ? 1 : 2;
    if (t[best] < kMustBeat * t[0])
      choice.push_back({id, best == 1 ? SparseConvKernel::kDirect : SparseConvKernel::kIm2colCsr});
  }
  for (const auto& [id, kernel] : choice) sparsify_conv(g.node(id), kernel);
  return static_cast<int64_t>(choice.size());
}

InferencePlan plan_inference(Graph& g, const torch::Tensor& x, const LatencyOptions& o) {
  InferencePlan plan;
  if (o.plan_factor_pairs) plan.pairs = plan_factor_pairs(g, x, o);
  if (o.plan_sparse_convs) plan.sparse_convs = plan_sparse_convs(g, x, o);
  return plan;
}

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
    if ((nhwc && o.memory_format == F::kContiguous) || (!nhwc && o.memory_format == F::kChannelsLast)) continue;
    Candidate c{g.clone(), nhwc ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x, nhwc, {}};
    if (nhwc)
      for (auto& n : c.graph.nodes)
        if (n.op == Op::kConv2d) n.params["weight"] = n.params["weight"].contiguous(torch::MemoryFormat::ChannelsLast);
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
