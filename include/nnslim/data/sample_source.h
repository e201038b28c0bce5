// Where a Dataset's examples come from when they are not held in memory as one uint8 tensor
// (dataset.h): a SampleSource makes normalised float samples on request -- an image folder
// decodes files and applies its transforms (image_source.h). BatchMaker (loader.h) asks it for
// the examples of a batch, so training, evaluation and BN recalibration read either kind of
// dataset through the same loader.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace nnslim {

struct SampleRequest {
  bool augment = false;  // training transforms (random crop, flip) instead of eval ones
  bool hflip = true;     // with augment: random horizontal flip
  uint64_t seed = 0;     // the augmentation of example i in epoch e depends on (seed, e, i) only
  int64_t epoch = 0;
  std::vector<float> mean, std;  // per channel, 0..1 units
};

class SampleSource {
 public:
  virtual ~SampleSource() = default;
  virtual int64_t size() const = 0;
  virtual std::vector<int64_t> image_shape() const = 0;  // [C, H, W] of every sample
  // The examples `indices` of this source, in that order (shares decoded data and caches).
  virtual std::shared_ptr<const SampleSource> subset(const std::vector<int64_t>& indices) const = 0;
  // Writes sample examples[k] to out + k * C*H*W (float, normalised). Throws naming the file of
  // an example it cannot make.
  virtual void fill(const std::vector<int64_t>& examples, const SampleRequest& request,
                    float* out) const = 0;
};

}  // namespace nnslim
