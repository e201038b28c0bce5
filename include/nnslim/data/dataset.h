// Datasets held in memory as raw uint8 images, decoded once, or read from files on request
// through a SampleSource (sample_source.h: image folders). Normalisation and augmentation
// happen when batches are made (loader.h).
#pragma once

#include "nnslim/data/sample_source.h"

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace nnslim {

struct Dataset {
  std::string name;  // "fashion-mnist", "mnist", "cifar10", "cifar100", "synthetic", "imagefolder"
  torch::Tensor images;  // uint8 [N, C, H, W]; undefined when `source` makes the examples
  torch::Tensor labels;  // int64 [N], each in [0, classes)
  int64_t classes = 0;
  std::vector<float> mean;  // per channel, in [0,1] units (statistics of the training split)
  std::vector<float> std;
  std::vector<std::string> class_names;  // by label, where the data names them (image folders)
  // Set for data read from files: example i is made by source->fill (labels stay here).
  std::shared_ptr<const SampleSource> source;

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  std::vector<int64_t> image_shape() const;  // [C, H, W]
};

struct DataSplits {
  Dataset train;
  Dataset test;
};

// Default directory for a dataset name (Fashion-MNIST: /usr/share/datasets/fashion-mnist, where
// Debian's dataset-fashion-mnist installs it; others: ./data/<name>).
std::string default_data_dir(const std::string& dataset);

// The known in-memory dataset names, for help texts and errors ("imagefolder", read from files
// through image_folder.h, comes on top).
std::vector<std::string> dataset_names();

// Loads train and test splits by name ("imagefolder": load_image_folder of image_folder.h with
// default options) from `dir` ("" = default_data_dir). Fashion-MNIST/MNIST come
// from the four IDX files (gzipped or not) and are zero-padded from 28x28 to 32x32; CIFAR-10/100
// from their binary-format files. "synthetic" is generated (see make_synthetic). Every error names
// the file and the problem (missing, bad magic, truncated, label count != image count, label out of
// range).
DataSplits load_dataset(const std::string& name, const std::string& dir = "");

// IDX readers (gz or raw; detected by the gzip magic). Images: uint8 [N, 1, rows, cols].
torch::Tensor load_idx_images(const std::string& path);
torch::Tensor load_idx_labels(const std::string& path);  // int64 [N]

// CIFAR binary: records of <1 or 2 label bytes><3072 pixel bytes>. For CIFAR-100 the fine label
// (second byte) is used.
void load_cifar_file(const std::string& path, bool cifar100, std::vector<torch::Tensor>& images,
                     std::vector<torch::Tensor>& labels);

// A seeded synthetic classification set that a small network can learn: each class has a fixed
// random prototype image; samples are the prototype plus noise. Deterministic in `seed`.
DataSplits make_synthetic(int64_t train_size, int64_t test_size, std::vector<int64_t> image_shape,
                          int64_t classes, uint64_t seed);

// The "synthetic" dataset for images of this shape and this many classes: 1024 training and 256
// test images, fewer for large images (64 MiB of training pixels at most; 445 and 111 at
// 3x224x224, never fewer than 64 and 16). load_dataset("synthetic") is synthetic_for({1,32,32},
// 10).
DataSplits synthetic_for(const std::vector<int64_t>& image_shape, int64_t classes);

// Zero-pads images [N,C,H,W] symmetrically to [N,C,size,size].
torch::Tensor pad_to(const torch::Tensor& images, int64_t size);

// Keeps the first n examples (n <= 0 or n >= size: unchanged). A dataset with a source (an image
// folder, ordered by class) keeps n examples picked by a fixed-seed permutation instead, in
// their order, so that every class is represented.
Dataset take_first(const Dataset& d, int64_t n);
// Splits off the last `n` examples as a validation set: returns {rest, last n}. With a source,
// the n held-out examples are picked by a fixed-seed permutation (the same split every run).
std::pair<Dataset, Dataset> split_validation(const Dataset& d, int64_t n);

// Reads a whole file (decompressing gzip if it starts with the gzip magic). Throws naming path.
// A gzip file that decompresses to more than `max_bytes` is refused (a "gzip bomb"; the gzip
// trailer's size is only a hint and never trusted beyond it).
constexpr uint64_t kMaxDecompressedBytes = uint64_t(4) << 30;  // 4 GiB; CIFAR-100 is 0.2 GB
std::string read_file_maybe_gz(const std::string& path, uint64_t max_bytes = kMaxDecompressedBytes);

}  // namespace nnslim
