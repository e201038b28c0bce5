// The inference planner: per-layer choices of how each conv is computed (graph/lowering.h),
// made by timing the alternatives of a layer alone on its real input, as a deployment runtime
// picks kernels. Applied to the graph it is given (a private copy: the caller's graph for
// training or saving is never planned). Used by report/latency.h (measure_latency times the
// planned graph against the graph as it is and keeps the faster) and by the benches.
#pragma once

#include "nnslim/graph/graph.h"
#include "nnslim/graph/timing.h"

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace nnslim {

struct PlanOptions {
  // Per-layer choice for factorised convs. Each kxk conv read only by a 1x1 conv (TRP
  // channel-scheme factors) is timed as the pair, as the single conv it equals, and (NCHW) as
  // one fused kernel; the fastest is kept.
  bool factor_pairs = true;
  // Per-layer choice for sparse weights. Each conv with at least half its weights exactly zero
  // (gRDA, OBProx-SG) is timed dense and with both sparse kernels; the fastest is kept.
  bool sparse_convs = true;
  // A rewrite is kept only if it beats the layer as it is by 5%, so noise does not flip a tie.
  // Each alternative is timed in three interleaved rounds of 2 warm-up and at least 5 runs, for
  // at most min(0.03 s, timing.min_seconds) a round (timing.max_runs, timing.device apply).
  TimingOptions timing;
};

// The input tensors of every node of `graph` for input x (one eval forward, every value kept):
// for timing nodes alone on their real inputs.
std::vector<std::vector<torch::Tensor>> node_inputs(const Graph& graph, const torch::Tensor& x);

// PlanOptions::factor_pairs, applied to `graph` for input x (its batch size and memory format).
struct FactorPairPlan {
  int64_t merged = 0, fused = 0;
};
FactorPairPlan plan_factor_pairs(Graph& graph, const torch::Tensor& x, const PlanOptions& options);

// PlanOptions::sparse_convs, applied to `graph` for input x; returns how many convs now run
// sparse.
int64_t plan_sparse_convs(Graph& graph, const torch::Tensor& x, const PlanOptions& options);

// Both per-layer plans that `options` enables, applied to `graph` for input x.
struct InferencePlan {
  FactorPairPlan pairs;
  int64_t sparse_convs = 0;
  int64_t changes() const { return pairs.merged + pairs.fused + sparse_convs; }
};
InferencePlan plan_inference(Graph& graph, const torch::Tensor& x, const PlanOptions& options);

}  // namespace nnslim
