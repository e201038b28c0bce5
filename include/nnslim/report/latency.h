// Measured speed: inference latency and training throughput of a graph on random input.
// Used by `nnslim bench` and by every compressed-model summary (latency_ms). The per-layer
// kernel choices are the graph's inference planner (graph/inference_plan.h); this only measures.
#pragma once

#include "nnslim/graph/graph.h"
#include "nnslim/graph/inference_plan.h"
#include "nnslim/graph/timing.h"

#include <torch/types.h>

#include <vector>

namespace nnslim {

struct LatencyOptions {
  int64_t batch_size = 1;
  int64_t warmup = 5;        // untimed runs first
  int64_t min_runs = 20;     // at least this many timed runs...
  double min_seconds = 1.0;  // ...and at least this long in total
  int64_t max_runs = 10000;
  torch::Device device = torch::kCPU;
  // Inference only: time the deployable graph, with BatchNorm folded into the convolutions
  // (as `nnslim export` writes it). Same function, fewer passes over memory.
  bool fold_batchnorm = true;
  // Inference only: memory format of activations and conv weights. oneDNN's convolutions run
  // much faster channels-last on some graphs (pruned ResNets at batch 64: 1.6x) and slower on
  // others, so kAuto times both briefly and measures with the faster one -- as a deployment
  // runtime would pick its layout.
  enum class Format { kAuto, kContiguous, kChannelsLast };
  Format memory_format = Format::kAuto;
  // Inference only: the planner's per-layer choice for factorised convs (PlanOptions::
  // factor_pairs, graph/inference_plan.h); the planned graph is used only if it is also faster
  // whole -- as a deployment runtime fuses layers. Off: the graph runs as it is.
  bool plan_factor_pairs = true;
  // Inference only: the planner's per-layer choice for sparse weights (PlanOptions::
  // sparse_convs); again the planned graph is used only if faster whole.
  bool plan_sparse_convs = true;

  TimingOptions timing() const { return {warmup, min_runs, min_seconds, max_runs, device}; }
  // The planner's options these imply, so a LatencyOptions can be given to the planner.
  operator PlanOptions() const { return {plan_factor_pairs, plan_sparse_convs, timing()}; }
};

struct LatencyResult {
  double median_ms = 0;
  double p90_ms = 0;
  double mean_ms = 0;
  double images_per_second = 0;  // batch_size / median
  int64_t runs = 0;
  bool channels_last = false;     // the memory format that was timed
  int64_t merged_conv_pairs = 0;  // factor pairs run as their merged conv
  int64_t fused_conv_pairs = 0;   // factor pairs run by the fused kernel
  int64_t sparse_convs = 0;       // convs run by a sparse kernel
};

// Eval-mode forward passes without autograd.
LatencyResult measure_latency(const Graph& graph, const LatencyOptions& options);

// Full training steps (forward, cross-entropy, backward, SGD momentum step) on a copy of the
// graph; one "run" is one step. images_per_second = batch_size / median step time.
LatencyResult measure_train_step(const Graph& graph, const LatencyOptions& options);

}  // namespace nnslim
