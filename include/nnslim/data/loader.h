// Mini-batches from a Dataset: normalised float tensors, optional augmentation (in memory:
// random crop with zero padding, horizontal flip; a dataset with a source -- an image folder --
// applies its own: RandomResizedCrop + flip when augmenting, resize + centre crop otherwise),
// deterministic shuffling. Batches of the next
// epoch are prepared in a background thread so data loading never starves training.
#pragma once

#include "nnslim/data/dataset.h"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

namespace nnslim {

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool augment = false;      // random crop + flip (when the flags below allow)
  int64_t crop_padding = 4;  // random crop after zero-padding by this many pixels (0 = no crop;
                             // in-memory data only)
  bool hflip = true;         // random horizontal flip
  bool drop_last = false;
  uint64_t seed = 0;     // shuffling and augmentation of epoch e use seed ^ hash(e)
  int64_t prefetch = 4;  // batches prepared ahead by the worker thread
  // Data-parallel training: batch i of the epoch is the same global batch on every rank, and
  // rank r takes its examples r, r + W, r + 2W, ... (the stride of PyTorch's
  // DistributedSampler), with the augmentation each would get in one process. A last batch
  // smaller than W is dropped on every rank, so that all run the same steps.
  int64_t rank = 0, world_size = 1;
};

struct Batch {
  torch::Tensor x;  // float32 [B, C, H, W], normalised
  torch::Tensor y;  // int64 [B]
};

// Makes batch number `index` of epoch `epoch` (pure function of its arguments; the order and the
// augmentation of an epoch depend only on seed and epoch, which makes resumed runs exact).
class BatchMaker {
 public:
  BatchMaker(const Dataset& data, LoaderOptions options);
  int64_t batches_per_epoch() const;
  // Examples in global batch `index` (all ranks together).
  int64_t global_batch_size(int64_t index) const;
  // Order of example indices in `epoch`.
  std::vector<int64_t> order(int64_t epoch) const;
  Batch make(const std::vector<int64_t>& order, int64_t index, int64_t epoch) const;

 private:
  Batch make_from_source(const std::vector<int64_t>& order, int64_t index, int64_t epoch) const;
  const Dataset& data_;
  LoaderOptions opt_;
};

// Iterates one epoch, producing batches in a worker thread.
//   EpochLoader it(data, options, epoch);
//   while (auto b = it.next()) { ... b->x ... }
class EpochLoader {
 public:
  // Starts at batch `first_batch` (a run resumed inside an epoch): the batches are those an
  // uninterrupted pass would deliver from there on.
  EpochLoader(const Dataset& data, LoaderOptions options, int64_t epoch, int64_t first_batch = 0);
  ~EpochLoader();
  EpochLoader(const EpochLoader&) = delete;
  EpochLoader& operator=(const EpochLoader&) = delete;
  int64_t size() const { return maker_.batches_per_epoch(); }
  // Next batch, or an empty optional at the end of the epoch. Rethrows worker errors.
  std::unique_ptr<Batch> next();

 private:
  void work();
  BatchMaker maker_;
  int64_t epoch_, first_batch_;
  std::vector<int64_t> order_;
  int64_t produced_ = 0, consumed_ = 0, prefetch_;
  std::deque<Batch> queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread worker_;
};

}  // namespace nnslim
