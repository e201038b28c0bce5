// Checkpoints: everything needed to continue a run exactly -- the graph (weights + BN buffers),
// the optimizer state, each method's state, the epochs done and the metrics so far. Written
// atomically after every epoch and, on long epochs, within one (TrainOptions::checkpoint_seconds);
// a resumed run ends with the same weights as an uninterrupted one.
#pragma once

#include "nnslim/graph/graph.h"

#include <map>
#include <string>
#include <vector>

namespace nnslim {

// 1: the embedded graph is in *.nnslim format 1; 2: in format 2 (sparse tensors); 3: format 2
// and the position within an epoch. All load.
constexpr uint32_t kCheckpointVersion = 3;

// Where a checkpoint written inside an epoch stopped, and the epoch's running totals, so the
// resumed epoch reports what an uninterrupted one would have.
struct EpochProgress {
  int64_t batches_done = 0;  // of epoch epochs_done + 1; 0 = at an epoch boundary
  int64_t batches_per_epoch = 0;
  double loss_sum = 0;  // sum over the examples seen of their loss
  int64_t correct = 0, seen = 0;
  double train_seconds = 0;
  std::map<std::string, double> extra;  // the methods' logs so far
};

struct Checkpoint {
  Graph graph;
  int64_t epochs_done = 0;
  EpochProgress in_epoch;                            // batches_done > 0: written inside an epoch
  std::string optimizer_state;                       // torch::optim archive bytes
  std::map<std::string, std::string> method_states;  // method name -> bytes
  std::vector<std::string> metrics_lines;            // metrics.jsonl so far
  std::map<std::string, std::string> options;        // the run's options (for --resume)
};

void save_checkpoint(const Checkpoint& ckpt, const std::string& path);
Checkpoint load_checkpoint(const std::string& path);

// "after epoch 3", or "in epoch 4 after batch 120 of 469" (for resume messages).
std::string resume_position(const Checkpoint& ckpt);

// File name of the checkpoint inside a run directory.
std::string checkpoint_path(const std::string& run_dir);

}  // namespace nnslim
