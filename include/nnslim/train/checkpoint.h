// Checkpoints: everything needed to continue a run exactly -- the graph (weights + BN buffers),
// the optimizer state, each method's state, the epochs done and the metrics so far. Written
// atomically after every epoch; a resumed run ends with the same weights as an uninterrupted one.
#pragma once

#include "nnslim/graph/graph.h"

#include <map>
#include <string>
#include <vector>

namespace nnslim {

// 1: the embedded graph is in *.nnslim format 1; 2: in format 2 (sparse tensors). Both load.
constexpr uint32_t kCheckpointVersion = 2;

struct Checkpoint {
  Graph graph;
  int64_t epochs_done = 0;
  std::string optimizer_state;                       // torch::optim archive bytes
  std::map<std::string, std::string> method_states;  // method name -> bytes
  std::vector<std::string> metrics_lines;            // metrics.jsonl so far
  std::map<std::string, std::string> options;        // the run's options (for --resume)
};

void save_checkpoint(const Checkpoint& ckpt, const std::string& path);
Checkpoint load_checkpoint(const std::string& path);

// File name of the checkpoint inside a run directory.
std::string checkpoint_path(const std::string& run_dir);

}  // namespace nnslim
