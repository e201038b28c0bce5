#include "nnslim/data/loader.h"

#include "nnslim/data/stream_rng.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <random>

namespace nnslim {

using detail::below;
using detail::Stream;
using detail::stream_rng;

BatchMaker::BatchMaker(const Dataset& data, LoaderOptions options)
    : data_(data), opt_(std::move(options)) {
  TORCH_CHECK(opt_.batch_size > 0, "batch size must be positive, got ", opt_.batch_size);
  TORCH_CHECK(opt_.crop_padding >= 0, "crop padding must be >= 0, got ", opt_.crop_padding);
  TORCH_CHECK(opt_.world_size >= 1 && opt_.rank >= 0 && opt_.rank < opt_.world_size, "rank ",
              opt_.rank, " of ", opt_.world_size, " is not a valid rank");
  TORCH_CHECK(opt_.batch_size >= opt_.world_size, "the batch size (", opt_.batch_size,
              ") is the global batch of all ", opt_.world_size,
              " processes: it must be at least the number of processes");
}

int64_t BatchMaker::batches_per_epoch() const {
  const int64_t n = data_.size(), b = opt_.batch_size;
  const bool keep_last = !opt_.drop_last && n % b >= opt_.world_size;
  return n / b + (keep_last ? 1 : 0);
}

int64_t BatchMaker::global_batch_size(int64_t index) const {
  return std::min(opt_.batch_size, data_.size() - index * opt_.batch_size);
}

std::vector<int64_t> BatchMaker::order(int64_t epoch) const {
  std::vector<int64_t> idx(data_.size());
  std::iota(idx.begin(), idx.end(), int64_t{0});
  if (!opt_.shuffle) return idx;
  auto rng = stream_rng(opt_.seed, Stream::kOrder, epoch, 0);
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[below(rng, i)]);
  return idx;
}

// Data are checked here rather than in the constructor because the dataset is held by reference;
// errors raised in EpochLoader's worker reach the caller through next().
Batch BatchMaker::make(const std::vector<int64_t>& order, int64_t index, int64_t epoch) const {
  if (data_.source) return make_from_source(order, index, epoch);
  const torch::Tensor& images = data_.images;
  const torch::Tensor& labels = data_.labels;
  const int64_t n = data_.size();
  TORCH_CHECK(images.defined() && images.dim() == 4 && images.scalar_type() == torch::kUInt8,
              "dataset '", data_.name, "': images must be uint8 [N, C, H, W]");
  TORCH_CHECK(images.is_contiguous(), "dataset '", data_.name, "': images must be contiguous");
  TORCH_CHECK(labels.dim() == 1 && labels.scalar_type() == torch::kInt64 && labels.is_contiguous(),
              "dataset '", data_.name, "': labels must be a contiguous int64 vector");
  TORCH_CHECK(images.size(0) == n, "dataset '", data_.name, "': ", images.size(0), " images but ",
              n, " labels");
  TORCH_CHECK(static_cast<int64_t>(order.size()) == n, "batch order has ", order.size(),
              " entries for a dataset of ", n);
  TORCH_CHECK(index >= 0 && index < batches_per_epoch(), "batch index ", index,
              " out of range [0, ", batches_per_epoch(), ")");

  const int64_t c = images.size(1), h = images.size(2), w = images.size(3), hw = h * w;
  std::vector<float> mean(c, 0.f), stdev(c, 1.f);
  if (!data_.mean.empty() || !data_.std.empty()) {
    TORCH_CHECK(
        static_cast<int64_t>(data_.mean.size()) == c && static_cast<int64_t>(data_.std.size()) == c,
        "dataset '", data_.name, "': mean/std need one value per channel (", c, ")");
    mean = data_.mean;
    stdev = data_.std;
  }
  // Normalisation as a table: each of the 256 pixel values maps to one float per channel.
  std::vector<std::array<float, 256>> lut(c);
  for (int64_t ch = 0; ch < c; ++ch) {
    TORCH_CHECK(stdev[ch] > 0, "dataset '", data_.name, "': std of channel ", ch,
                " must be positive");
    for (int v = 0; v < 256; ++v) lut[ch][v] = (v / 255.f - mean[ch]) / stdev[ch];
  }

  const int64_t begin = index * opt_.batch_size;
  const int64_t count = global_batch_size(index);
  const int64_t world = opt_.world_size, rank = opt_.rank;
  const int64_t mine = (count - rank + world - 1) / world;  // positions rank, rank + W, ...
  Batch batch;
  batch.x = torch::empty({mine, c, h, w}, torch::kFloat32);
  batch.y = torch::empty({mine}, torch::kInt64);
  float* out = batch.x.data_ptr<float>();
  int64_t* y = batch.y.data_ptr<int64_t>();
  const uint8_t* src_all = images.data_ptr<uint8_t>();
  const int64_t* lab = labels.data_ptr<int64_t>();

  const int64_t pad = opt_.augment ? opt_.crop_padding : 0;
  const bool flip_allowed = opt_.augment && opt_.hflip;
  auto rng = stream_rng(opt_.seed, Stream::kAugment, epoch, index);
  for (int64_t g = 0; g < count; ++g) {
    // Offset of the crop window inside the image zero-padded by `pad` on every side; pixels that
    // fall into the padding take the normalised value of raw 0, as padding before Normalize does.
    // Drawn for every position of the global batch, so each rank's examples are augmented as
    // in one process.
    const int64_t dy = pad > 0 ? static_cast<int64_t>(below(rng, 2 * pad + 1)) - pad : 0;
    const int64_t dx = pad > 0 ? static_cast<int64_t>(below(rng, 2 * pad + 1)) - pad : 0;
    const bool flip = flip_allowed && (rng() >> 63) != 0;
    if (g % world != rank) continue;
    const int64_t b = g / world;
    const int64_t example = order[begin + g];
    TORCH_CHECK(example >= 0 && example < n, "batch order entry ", example, " out of range [0, ", n,
                ")");
    y[b] = lab[example];
    const uint8_t* src = src_all + example * c * hw;
    float* dst = out + b * c * hw;
    for (int64_t ch = 0; ch < c; ++ch) {
      const auto& table = lut[ch];
      const float zero = table[0];
      const uint8_t* plane = src + ch * hw;
      for (int64_t i = 0; i < h; ++i) {
        float* row = dst + ch * hw + i * w;
        const int64_t sy = i + dy;
        if (sy < 0 || sy >= h) {
          std::fill(row, row + w, zero);
          continue;
        }
        const uint8_t* src_row = plane + sy * w;
        if (!flip && dx == 0) {
          for (int64_t j = 0; j < w; ++j) row[j] = table[src_row[j]];
          continue;
        }
        for (int64_t j = 0; j < w; ++j) {
          const int64_t sx = (flip ? w - 1 - j : j) + dx;
          row[j] = (sx >= 0 && sx < w) ? table[src_row[sx]] : zero;
        }
      }
    }
  }
  return batch;
}

// Examples made by the dataset's source (an image folder): it decodes, transforms and
// normalises; the augmentation of each example depends on (seed, epoch, example) only.
Batch BatchMaker::make_from_source(const std::vector<int64_t>& order, int64_t index,
                                   int64_t epoch) const {
  const int64_t n = data_.size();
  const torch::Tensor& labels = data_.labels;
  TORCH_CHECK(labels.dim() == 1 && labels.scalar_type() == torch::kInt64 && labels.is_contiguous(),
              "dataset '", data_.name, "': labels must be a contiguous int64 vector");
  TORCH_CHECK(data_.source->size() == n, "dataset '", data_.name, "': ", data_.source->size(),
              " examples but ", n, " labels");
  TORCH_CHECK(static_cast<int64_t>(order.size()) == n, "batch order has ", order.size(),
              " entries for a dataset of ", n);
  TORCH_CHECK(index >= 0 && index < batches_per_epoch(), "batch index ", index,
              " out of range [0, ", batches_per_epoch(), ")");
  const auto shape = data_.source->image_shape();
  const int64_t c = shape.at(0);
  SampleRequest r;
  r.augment = opt_.augment;
  r.hflip = opt_.hflip;
  r.seed = opt_.seed;
  r.epoch = epoch;
  r.mean = data_.mean.empty() ? std::vector<float>(c, 0.f) : data_.mean;
  r.std = data_.std.empty() ? std::vector<float>(c, 1.f) : data_.std;
  const int64_t begin = index * opt_.batch_size;
  // This rank's positions of the global batch: rank, rank + W, ... (all of it in one process).
  std::vector<int64_t> examples;
  for (int64_t g = opt_.rank; g < global_batch_size(index); g += opt_.world_size)
    examples.push_back(order[begin + g]);
  const int64_t count = static_cast<int64_t>(examples.size());
  Batch batch;
  batch.x = torch::empty({count, shape[0], shape[1], shape[2]}, torch::kFloat32);
  batch.y = torch::empty({count}, torch::kInt64);
  const int64_t* lab = labels.data_ptr<int64_t>();
  for (int64_t b = 0; b < count; ++b) {
    TORCH_CHECK(examples[b] >= 0 && examples[b] < n, "batch order entry ", examples[b],
                " out of range [0, ", n, ")");
    batch.y[b] = lab[examples[b]];
  }
  data_.source->fill(examples, r, batch.x.data_ptr<float>());
  return batch;
}

EpochLoader::EpochLoader(const Dataset& data, LoaderOptions options, int64_t epoch,
                         int64_t first_batch)
    : maker_(data, options),
      epoch_(epoch),
      first_batch_(first_batch),
      order_(maker_.order(epoch)),
      prefetch_(std::max<int64_t>(1, options.prefetch)) {
  TORCH_CHECK(first_batch >= 0 && first_batch <= maker_.batches_per_epoch(), "loader: batch ",
              first_batch, " is outside an epoch of ", maker_.batches_per_epoch(), " batches");
  produced_ = consumed_ = first_batch;
  worker_ = std::thread(&EpochLoader::work, this);
}

EpochLoader::~EpochLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void EpochLoader::work() {
  const int64_t total = maker_.batches_per_epoch();
  for (int64_t i = first_batch_; i < total; ++i) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || static_cast<int64_t>(queue_.size()) < prefetch_; });
      if (stop_) return;
    }
    try {
      Batch batch = maker_.make(order_, i, epoch_);
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(batch));
      ++produced_;
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    cv_.notify_all();
  }
}

std::unique_ptr<Batch> EpochLoader::next() {
  std::unique_lock<std::mutex> lock(mu_);
  if (consumed_ >= maker_.batches_per_epoch()) return nullptr;
  // Batches made before a failure are still delivered; the error surfaces where they end.
  cv_.wait(lock, [&] { return !queue_.empty() || error_; });
  if (queue_.empty()) std::rethrow_exception(error_);
  auto batch = std::make_unique<Batch>(std::move(queue_.front()));
  queue_.pop_front();
  ++consumed_;
  lock.unlock();
  cv_.notify_all();
  return batch;
}

}  // namespace nnslim
