// The SampleSource of an image folder: files decoded (image_decode.h) and transformed
// (image_transforms.h) on request, a batch's samples spread over worker threads. The random
// numbers of example i in epoch e come from a generator seeded by (seed, e, i), so batches are
// the same whatever the number of workers, and a run resumed inside an epoch gets the batches it
// would have had. Decoded images may be cached in memory (shared by subsets).
#pragma once

#include "nnslim/data/image_decode.h"
#include "nnslim/data/image_folder.h"
#include "nnslim/data/sample_source.h"

#include <atomic>
#include <memory>
#include <mutex>

namespace nnslim {

class ImageSource : public SampleSource {
 public:
  // `files` are decoded with their short side >= eval_resize_size(image_size) (DCT scaling).
  // cache_bytes > 0: decoded images are kept until that many bytes are held.
  ImageSource(std::vector<ImageFile> files, int64_t image_size, int64_t workers,
              int64_t cache_bytes);

  int64_t size() const override { return static_cast<int64_t>(index_.size()); }
  std::vector<int64_t> image_shape() const override { return {3, size_, size_}; }
  std::shared_ptr<const SampleSource> subset(const std::vector<int64_t>& indices) const override;
  void fill(const std::vector<int64_t>& examples, const SampleRequest& request,
            float* out) const override;

  const ImageFile& file(int64_t i) const;
  // The decoded image of example i (from the cache when there).
  std::shared_ptr<const RgbImage> decoded(int64_t i) const;
  // The number of threads fill() uses.
  int64_t workers() const;
  // Runs fn(i) for i in [0, n) on the worker threads; rethrows the first error.
  void parallel(int64_t n, const std::function<void(int64_t)>& fn) const;

 private:
  struct Store {
    std::vector<ImageFile> files;
    std::vector<std::shared_ptr<const RgbImage>> cache;
    std::mutex mu;
    int64_t cache_bytes = 0, cached_bytes = 0;
  };
  ImageSource() = default;
  std::shared_ptr<Store> store_;
  std::vector<int64_t> index_;  // example -> file in the store
  int64_t size_ = 0, workers_ = 0;
};

}  // namespace nnslim
