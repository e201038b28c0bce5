// The inference planner (contract in graph/inference_plan.h).
#include "nnslim/graph/inference_plan.h"

#include "nnslim/graph/execute.h"
#include "nnslim/graph/kernels/fused_pair.h"
#include "nnslim/graph/kernels/sparse_conv.h"
#include "nnslim/graph/lowering.h"

#include <torch/torch.h>

#include <algorithm>
#include <functional>

namespace nnslim {

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
std::vector<double> time_alternatives(const PlanOptions& o,
                                      const std::vector<std::function<void()>>& ways) {
  TimingOptions trial = o.timing;
  trial.warmup = 2;
  trial.min_runs = 5;
  trial.min_seconds = std::min(0.03, o.timing.min_seconds);
  std::vector<double> t(ways.size(), 1e300);
  for (int round = 0; round < 3; ++round)
    for (size_t i = 0; i < ways.size(); ++i)
      if (ways[i]) {
        const auto ms = time_runs_ms(trial, ways[i]);
        if (!ms.empty()) t[i] = std::min(t[i], ms[ms.size() / 2]);
      }
  return t;
}
// A rewrite must beat the layer as it is by 5%, so that noise does not flip a tie.
constexpr double kMustBeat = 0.95;
}  // namespace

// Per-layer choice for conv factor pairs (PlanOptions::factor_pairs): each pair is
// timed alone on its real input as the pair, as the merged conv and -- for a contiguous (NCHW)
// float input -- as the fused kernel; the fastest is kept.
FactorPairPlan plan_factor_pairs(Graph& g, const torch::Tensor& x, const PlanOptions& o) {
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
    const bool fusable =
        can_fuse_conv_pair(g, p) && in[0].is_contiguous() &&
        fused_pair_supports(in[0], first.params.at("weight"), second.params.at("weight"), a.stride,
                            a.padding, a.dilation, a.groups);
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

// Per-layer choice for sparse weights (PlanOptions::sparse_convs): each conv with at
// least kMinZeros of its weights exactly zero is timed alone on its real input dense and with
// both sparse kernels; the fastest is kept.
int64_t plan_sparse_convs(Graph& g, const torch::Tensor& x, const PlanOptions& o) {
  constexpr double kMinZeros = 0.5;  // below this the sparse kernels never won in our benchmarks
  std::vector<int> candidates;
  for (const auto& n : g.nodes)
    if (can_sparsify_conv(n) && zero_fraction(n.params.at("weight")) >= kMinZeros)
      candidates.push_back(n.id);
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

InferencePlan plan_inference(Graph& g, const torch::Tensor& x, const PlanOptions& o) {
  InferencePlan plan;
  if (o.factor_pairs) plan.pairs = plan_factor_pairs(g, x, o);
  if (o.sparse_convs) plan.sparse_convs = plan_sparse_convs(g, x, o);
  return plan;
}

}  // namespace nnslim
