// The compression pipeline every method shares:
//   measure the input -> train with the method (optional) -> finalize (surgery)
//   -> measure -> fine-tune (optional, with the method's fine-tune hooks) -> measure.
// The result's graph is physically smaller where the method is structural.
#pragma once

#include <optional>
#include "nnslim/core/json.h"
#include "nnslim/train/trainer.h"

namespace nnslim {

struct ModelStats {
  int64_t params = 0, macs = 0, nonzero_params = 0, nonzero_macs = 0;
  double top1 = 0, top5 = 0;
  double latency_ms = 0;          // batch 1, median
  double latency_ms_batch64 = 0;  // batch 64, median
  int64_t file_bytes = 0;         // size of the saved *.nnslim
  Json to_json() const;
};

struct CompressOptions {
  TrainOptions train;           // training with the method; train.epochs may be 0
  int64_t finetune_epochs = 0;  // after surgery
  double finetune_lr = 0.01;    // cosine from this rate
  // Re-estimate BatchNorm running statistics on this many training batches right after the
  // surgery (0 = off): surgery that changes weights (magnitude, unify) leaves statistics of the
  // old activations behind. Exact surgeries (HSPG, TRP, gRDA) do not need it.
  int64_t recalibrate_batches = 0;
  bool measure_latency = true;
  double latency_seconds = 1.0;  // per measurement
  // Continue from the checkpoints in train.out_dir/{train,finetune}/ that an interrupted run
  // left (method state included); phases without a checkpoint start from scratch.
  bool resume = false;
};

struct CompressResult {
  ModelStats before, after_surgery, after;
  std::optional<ModelStats> after_recalibration;  // when options.recalibrate_batches > 0
  Json method;                                    // the method's describe() output
  double finetune_lr = 0;  // the rate fine-tuning started from (0 = no fine-tuning)
};

// Measures a graph: cost, accuracy on `test`, latency (if asked), file size.
ModelStats measure_model(const Graph& graph, const Dataset& test, bool latency,
                         double latency_seconds, torch::Device device);

// Runs the pipeline on `graph` (replaced by the compressed graph). Training phases write their
// metrics and checkpoints under options.train.out_dir/<phase> when out_dir is set. `val`
// (may be null): images held out of every phase, for a method's own choices (AdaPruner scores
// its candidates on them).
CompressResult compress(Graph& graph, const std::shared_ptr<Method>& method, const Dataset& train,
                        const Dataset& test, const CompressOptions& options,
                        const Dataset* val = nullptr);

}  // namespace nnslim
