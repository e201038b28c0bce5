// The training loop: SGD (momentum, nesterov, weight decay) or a method's own optimizer, a
// per-step LR schedule, method hooks (methods/method.h), evaluation every epoch, metrics.jsonl,
// an atomic checkpoint every epoch (and every few minutes within long ones), exact resume from
// any of them, and a NaN/Inf guard.
#pragma once

#include "nnslim/data/dataset.h"
#include "nnslim/dist/process_group.h"
#include "nnslim/eval/evaluate.h"
#include "nnslim/graph/graph.h"
#include "nnslim/methods/method.h"
#include "nnslim/train/checkpoint.h"
#include "nnslim/train/schedule.h"

#include <iosfwd>
#include <memory>
#include <vector>

namespace nnslim {

struct TrainOptions {
  int64_t epochs = 30;
  int64_t batch_size = 128;
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 5e-4;
  LrSchedule schedule;  // schedule.base_lr is the learning rate
  uint64_t seed = 0;
  bool augment = true;  // random crop (crop_padding) + horizontal flip (hflip)
  int64_t crop_padding = 4;
  bool hflip = true;
  int64_t eval_batch_size = 256;
  std::string device = "cpu";        // "cpu" or "cuda"
  std::string out_dir;               // "" = no files (metrics.jsonl, checkpoint)
  std::ostream* progress = nullptr;  // progress output (nullptr = silent)
  bool progress_bar = false;         // live bar (terminals) instead of one line per epoch
  double progress_log_seconds = 60;  // without the bar: a progress line at most this often
  // With out_dir: also write a checkpoint inside an epoch once this long has passed since the
  // last one (0 = at epoch ends only), so a killed run on a slow machine loses minutes, not an
  // epoch.
  double checkpoint_seconds = 600;
  // Data-parallel training (dist/process_group.h; null = one process). batch_size stays the
  // global batch; each rank computes the gradient of its share, weighted by its share's size,
  // and the sum over ranks is the one-process gradient. Parameters and buffers start as rank
  // 0's, BatchNorm buffers are rank 0's before every step (as PyTorch's DDP), evaluation is
  // sharded and reduced, and only rank 0 prints and writes files.
  std::shared_ptr<dist::ProcessGroup> group;

  void validate() const;  // throws c10::Error naming the bad option
};

struct EpochRecord {
  int64_t epoch = 0;  // 1-based, as printed
  double lr = 0;
  double train_loss = 0, train_top1 = 0;
  EvalResult eval;
  double seconds = 0, images_per_second = 0;
  std::map<std::string, double> extra;  // method logs
  std::string to_json() const;
};

struct TrainResult {
  std::vector<EpochRecord> history;  // the epochs this call ran (a resumed run's earlier
                                     // epochs are in metrics.jsonl)
  double wall_seconds = 0;           // this invocation only
  double train_images_per_second = 0;
};

// Thrown when the loss becomes NaN or Inf; the last good checkpoint is left in place.
struct DivergedError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Trainer {
 public:
  Trainer(Graph& graph, TrainOptions options, std::vector<std::shared_ptr<Method>> methods = {});
  // Trains on `train`, evaluating on `eval` (may be null) after each epoch. With `resume`, the
  // graph, optimizer, methods and history are restored from it first.
  TrainResult fit(const Dataset& train, const Dataset* eval, const Checkpoint* resume = nullptr);
  // Options recorded in each checkpoint (the CLI stores its arguments here).
  std::map<std::string, std::string> checkpoint_options;

 private:
  Graph& graph_;
  TrainOptions opt_;
  std::vector<std::shared_ptr<Method>> methods_;
};

// "cuda" if available else "cpu" for "auto"; validates the name.
torch::Device parse_device(const std::string& name);

}  // namespace nnslim
