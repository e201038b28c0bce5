#include "nnslim/data/image_source.h"

#include "nnslim/data/image_transforms.h"
#include "nnslim/data/stream_rng.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <exception>
#include <thread>

namespace nnslim {

ImageSource::ImageSource(std::vector<ImageFile> files, int64_t image_size, int64_t workers,
                         int64_t cache_bytes)
    : store_(std::make_shared<Store>()), size_(image_size), workers_(workers) {
  TORCH_CHECK(image_size >= 1, "image size must be >= 1, got ", image_size);
  TORCH_CHECK(workers >= 0, "workers must be >= 0, got ", workers);
  store_->files = std::move(files);
  store_->cache.resize(store_->files.size());
  store_->cache_bytes = cache_bytes;
  index_.resize(store_->files.size());
  for (size_t i = 0; i < index_.size(); ++i) index_[i] = static_cast<int64_t>(i);
}

std::shared_ptr<const SampleSource> ImageSource::subset(const std::vector<int64_t>& indices) const {
  auto s = std::shared_ptr<ImageSource>(new ImageSource());
  s->store_ = store_;
  s->size_ = size_;
  s->workers_ = workers_;
  s->index_.reserve(indices.size());
  for (int64_t i : indices) {
    TORCH_CHECK(i >= 0 && i < size(), "image subset: index ", i, " out of range [0, ", size(), ")");
    s->index_.push_back(index_[i]);
  }
  return s;
}

const ImageFile& ImageSource::file(int64_t i) const {
  TORCH_CHECK(i >= 0 && i < size(), "image example ", i, " out of range [0, ", size(), ")");
  return store_->files[index_[i]];
}

std::shared_ptr<const RgbImage> ImageSource::decoded(int64_t i) const {
  const ImageFile& f = file(i);
  const int64_t at = index_[i];
  if (store_->cache_bytes > 0) {
    std::lock_guard<std::mutex> lock(store_->mu);
    if (store_->cache[at]) return store_->cache[at];
  }
  auto img = std::make_shared<const RgbImage>(read_image(f.path, eval_resize_size(size_)));
  if (store_->cache_bytes > 0) {
    std::lock_guard<std::mutex> lock(store_->mu);
    const auto bytes = static_cast<int64_t>(img->pixels.size());
    if (!store_->cache[at] && store_->cached_bytes + bytes <= store_->cache_bytes) {
      store_->cache[at] = img;
      store_->cached_bytes += bytes;
    }
  }
  return img;
}

int64_t ImageSource::workers() const {
  if (workers_ > 0) return workers_;
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  return std::max<int64_t>(1, cores - at::get_num_threads());
}

void ImageSource::parallel(int64_t n, const std::function<void(int64_t)>& fn) const {
  const int64_t threads = std::min(workers(), n);
  if (threads <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::mutex mu;
  std::exception_ptr error;
  int64_t error_at = n;
  auto run = [&] {
    for (int64_t i; (i = next.fetch_add(1)) < n;) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (i < error_at) {  // the first failing item, whatever the thread timing
          error_at = i;
          error = std::current_exception();
        }
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(run);
  run();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

void ImageSource::fill(const std::vector<int64_t>& examples, const SampleRequest& r,
                       float* out) const {
  const int64_t hw = size_ * size_, per = 3 * hw;
  parallel(static_cast<int64_t>(examples.size()), [&](int64_t k) {
    const int64_t example = examples[k];
    const auto img = decoded(example);
    float* dst = out + k * per;
    if (r.augment) {
      auto rng = detail::stream_rng(r.seed, detail::Stream::kImageSample, r.epoch, example);
      CropRandom random{[&](double lo, double hi) { return detail::uniform(rng, lo, hi); },
                        [&](int64_t n) { return static_cast<int64_t>(detail::below(rng, n)); }};
      train_transform(*img, size_, random, r.hflip, dst);
    } else {
      eval_transform(*img, size_, dst);
    }
    normalize_chw(dst, hw, r.mean, r.std);
  });
}

}  // namespace nnslim
