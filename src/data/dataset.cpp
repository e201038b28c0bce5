#include "nnslim/data/dataset.h"

#include "nnslim/data/image_folder.h"
#include "nnslim/data/stream_rng.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

namespace nnslim {
namespace fs = std::filesystem;

namespace {

constexpr uint32_t kIdxLabelMagic = 0x00000801;
constexpr uint32_t kIdxImageMagic = 0x00000803;
constexpr int64_t kCifarPixels = 3 * 32 * 32;
constexpr int64_t kPaddedSize = 32;

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

uint32_t read_be32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + offset;
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::string read_raw_file(const std::string& path) {
  std::error_code ec;
  TORCH_CHECK(fs::exists(path, ec), path, ": file not found");
  TORCH_CHECK(!fs::is_directory(path, ec), path, ": is a directory, expected a file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  TORCH_CHECK(in, path, ": cannot open for reading");
  const std::streamoff size = in.tellg();
  TORCH_CHECK(size >= 0, path, ": cannot determine the file size");
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (size > 0) in.read(bytes.data(), size);
  TORCH_CHECK(in.gcount() == size, path, ": read error after ", in.gcount(), " of ", size,
              " bytes");
  return bytes;
}

bool is_gzip(const std::string& bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

struct InflateGuard {
  z_stream* zs;
  ~InflateGuard() { inflateEnd(zs); }
};

// Every iteration either makes progress or ends with an error (zlib returns Z_BUF_ERROR when it
// cannot move), so corrupt or truncated input cannot loop forever.
std::string gunzip(const std::string& path, const std::string& in, uint64_t max_bytes) {
  z_stream zs{};
  TORCH_CHECK(inflateInit2(&zs, 15 + 16) == Z_OK, path, ": cannot initialise zlib");
  InflateGuard guard{&zs};

  // The gzip trailer holds the uncompressed size mod 2^32. It is only a hint, as the file may be
  // corrupt or truncated, so it is capped by deflate's maximum ratio (1032:1).
  size_t capacity = in.size() * 4 + 1024;
  if (in.size() >= 18) {
    const auto* t = reinterpret_cast<const unsigned char*>(in.data()) + in.size() - 4;
    const size_t hint =
        uint32_t(t[0]) | (uint32_t(t[1]) << 8) | (uint32_t(t[2]) << 16) | (uint32_t(t[3]) << 24);
    // One spare byte lets inflate read the trailer without a needless doubling at the end.
    capacity = std::min(hint + 1, in.size() * 1032 + 1024);
  }
  // Never more than the cap (+1 byte, to see that the data goes past it), and the first
  // allocation at most 64 MiB whatever the hint says: the buffer doubles as data arrives.
  const size_t cap = static_cast<size_t>(std::min<uint64_t>(max_bytes, SIZE_MAX - 1)) + 1;
  capacity = std::min({capacity, cap, size_t{64} << 20});
  std::string out(capacity, '\0');
  size_t in_pos = 0, out_pos = 0;
  for (;;) {
    if (zs.avail_in == 0 && in_pos < in.size()) {
      const size_t chunk = std::min<size_t>(in.size() - in_pos, UINT_MAX);
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data())) + in_pos;
      zs.avail_in = static_cast<uInt>(chunk);
      in_pos += chunk;
    }
    if (out_pos == out.size()) {
      TORCH_CHECK(out.size() < cap, path, ": decompresses to more than ", max_bytes,
                  " bytes, the limit for a gzip data file (corrupt file or a gzip bomb?)");
      out.resize(std::min(out.size() * 2, cap));
    }
    const size_t room = std::min<size_t>(out.size() - out_pos, UINT_MAX);
    zs.next_out = reinterpret_cast<Bytef*>(out.data()) + out_pos;
    zs.avail_out = static_cast<uInt>(room);
    const int ret = inflate(&zs, Z_NO_FLUSH);
    out_pos += room - zs.avail_out;
    if (ret == Z_STREAM_END) {
      const size_t rest = zs.avail_in + (in.size() - in_pos);
      const size_t next = in.size() - rest;
      // Concatenated gzip members form one file (as with `cat a.gz b.gz`); other trailing bytes
      // are ignored, as gzip itself does.
      if (rest >= 2 && static_cast<unsigned char>(in[next]) == 0x1f &&
          static_cast<unsigned char>(in[next + 1]) == 0x8b) {
        TORCH_CHECK(inflateReset(&zs) == Z_OK, path, ": cannot reset zlib");
        continue;
      }
      break;
    }
    if (ret == Z_OK) continue;
    if (ret == Z_BUF_ERROR && zs.avail_out > 0) {
      TORCH_CHECK(false, path, ": truncated gzip stream (ends after ", out_pos,
                  " decompressed bytes)");
    }
    if (ret == Z_BUF_ERROR) continue;  // output full: grow and go on
    TORCH_CHECK(ret != Z_MEM_ERROR, path, ": out of memory while decompressing");
    TORCH_CHECK(false, path, ": corrupt gzip data (", zs.msg ? zs.msg : "zlib error", ")");
  }
  TORCH_CHECK(out_pos <= max_bytes, path, ": decompresses to more than ", max_bytes,
              " bytes, the limit for a gzip data file (corrupt file or a gzip bomb?)");
  out.resize(out_pos);
  return out;
}

// Reads and checks an IDX header; returns the dimensions.
std::vector<uint32_t> idx_dims(const std::string& path, const std::string& bytes, uint32_t magic,
                               const char* what) {
  TORCH_CHECK(bytes.size() >= 4, path, ": truncated (", bytes.size(),
              " bytes, too short for an IDX header)");
  const uint32_t found = read_be32(bytes, 0);
  if (found != magic) {
    std::string hint;
    if (found == kIdxImageMagic) hint = "; this looks like an IDX image file";
    if (found == kIdxLabelMagic) hint = "; this looks like an IDX label file";
    TORCH_CHECK(false, path, ": bad magic ", hex32(found), ", expected ", hex32(magic), " (", what,
                ")", hint);
  }
  const size_t ndims = magic & 0xff;
  const size_t header = 4 + 4 * ndims;
  TORCH_CHECK(bytes.size() >= header, path, ": truncated (", bytes.size(), " bytes, the ", what,
              " header needs ", header, ")");
  std::vector<uint32_t> dims(ndims);
  for (size_t i = 0; i < ndims; ++i) dims[i] = read_be32(bytes, 4 + 4 * i);
  std::string shape;
  for (uint32_t d : dims) shape += (shape.empty() ? "" : "x") + std::to_string(d);
  uint64_t expected = 1;
  for (uint32_t d : dims) {
    // Stops before the product can overflow: it already exceeds the file.
    TORCH_CHECK(d == 0 || expected <= bytes.size() / d, path, ": truncated (", bytes.size(),
                " bytes, too few for ", what, " of shape ", shape, ")");
    expected *= d;
  }
  expected += header;
  TORCH_CHECK(bytes.size() >= expected, path, ": truncated (", bytes.size(), " bytes, expected ",
              expected, " for ", what, " of shape ", shape, ")");
  TORCH_CHECK(bytes.size() == expected, path, ": ", bytes.size() - expected,
              " unexpected trailing bytes after ", what, " of shape ", shape);
  return dims;
}

void check_label_range(const std::string& path, const torch::Tensor& labels, int64_t classes) {
  const int64_t* p = labels.data_ptr<int64_t>();
  for (int64_t i = 0, n = labels.numel(); i < n; ++i) {
    TORCH_CHECK(p[i] >= 0 && p[i] < classes, path, ": label ", p[i], " at index ", i,
                " out of range [0, ", classes, ")");
  }
}

// Per-channel mean and std in [0,1] units, exact via a 256-bin histogram per channel.
void set_statistics(Dataset& d) {
  const auto& images = d.images;
  const int64_t n = images.size(0), c = images.size(1), hw = images.size(2) * images.size(3);
  const torch::Tensor contiguous = images.contiguous();
  const uint8_t* p = contiguous.data_ptr<uint8_t>();
  std::vector<std::array<uint64_t, 256>> hist(c);
  for (auto& h : hist) h.fill(0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t ch = 0; ch < c; ++ch) {
      auto& h = hist[ch];
      const uint8_t* src = p + (i * c + ch) * hw;
      for (int64_t k = 0; k < hw; ++k) ++h[src[k]];
    }
  }
  d.mean.assign(c, 0.f);
  d.std.assign(c, 1.f);
  const double count = double(n) * double(hw);
  if (count == 0) return;
  for (int64_t ch = 0; ch < c; ++ch) {
    double sum = 0, sq = 0;
    for (int v = 0; v < 256; ++v) {
      const double x = v / 255.0;
      sum += hist[ch][v] * x;
      sq += hist[ch][v] * x * x;
    }
    const double mean = sum / count;
    const double var = std::max(0.0, sq / count - mean * mean);
    d.mean[ch] = static_cast<float>(mean);
    // A constant channel would divide by zero when normalising.
    d.std[ch] = var > 0 ? static_cast<float>(std::sqrt(var)) : 1.f;
  }
}

Dataset make_dataset(const std::string& name, torch::Tensor images, torch::Tensor labels,
                     int64_t classes) {
  Dataset d;
  d.name = name;
  d.images = std::move(images);
  d.labels = std::move(labels);
  d.classes = classes;
  return d;
}

std::string find_idx_file(const fs::path& dir, const std::string& base) {
  const fs::path raw = dir / base;
  const fs::path gz = dir / (base + ".gz");
  std::error_code ec;
  if (fs::exists(raw, ec)) return raw.string();
  if (fs::exists(gz, ec)) return gz.string();
  TORCH_CHECK(false, raw.string(), "[.gz]: file not found");
}

std::pair<torch::Tensor, torch::Tensor> load_idx_pair(const fs::path& dir,
                                                      const std::string& prefix, int64_t classes) {
  const std::string image_path = find_idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string label_path = find_idx_file(dir, prefix + "-labels-idx1-ubyte");
  torch::Tensor images = load_idx_images(image_path);
  torch::Tensor labels = load_idx_labels(label_path);
  TORCH_CHECK(labels.size(0) == images.size(0), label_path, ": ", labels.size(0), " labels, but ",
              image_path, " has ", images.size(0), " images");
  TORCH_CHECK(images.size(2) <= kPaddedSize && images.size(3) <= kPaddedSize, image_path,
              ": images are ", images.size(2), "x", images.size(3), ", larger than ", kPaddedSize,
              "x", kPaddedSize);
  check_label_range(label_path, labels, classes);
  return {pad_to(images, kPaddedSize), labels};
}

DataSplits load_mnist_like(const std::string& name, const std::string& dir,
                           const std::string& missing_hint) {
  std::error_code ec;
  TORCH_CHECK(fs::is_directory(dir, ec), dir, ": ", name, " directory not found; ", missing_hint);
  DataSplits s;
  auto train = load_idx_pair(dir, "train", 10);
  auto test = load_idx_pair(dir, "t10k", 10);
  s.train = make_dataset(name, train.first, train.second, 10);
  s.test = make_dataset(name, test.first, test.second, 10);
  set_statistics(s.train);
  s.test.mean = s.train.mean;
  s.test.std = s.train.std;
  return s;
}

Dataset load_cifar_split(const std::string& name, const fs::path& dir,
                         const std::vector<std::string>& files, bool cifar100) {
  std::vector<torch::Tensor> images, labels;
  for (const auto& f : files) load_cifar_file((dir / f).string(), cifar100, images, labels);
  return make_dataset(name, torch::cat(images), torch::cat(labels), cifar100 ? 100 : 10);
}

DataSplits load_cifar(const std::string& name, const std::string& dir, bool cifar100) {
  std::error_code ec;
  TORCH_CHECK(fs::is_directory(dir, ec), dir, ": ", name,
              " directory not found; download the binary version from "
              "https://www.cs.toronto.edu/~kriz/cifar.html, extract its .bin files into it, or "
              "pass --data-dir");
  std::vector<std::string> train_files, test_files;
  if (cifar100) {
    train_files = {"train.bin"};
    test_files = {"test.bin"};
  } else {
    for (int i = 1; i <= 5; ++i) train_files.push_back("data_batch_" + std::to_string(i) + ".bin");
    test_files = {"test_batch.bin"};
  }
  DataSplits s;
  s.train = load_cifar_split(name, dir, train_files, cifar100);
  s.test = load_cifar_split(name, dir, test_files, cifar100);
  set_statistics(s.train);
  s.test.mean = s.train.mean;
  s.test.std = s.train.std;
  return s;
}

// Sources of randomness for make_synthetic whose output is fixed by the C++ standard
// (std::mt19937_64), unlike std::*_distribution, so data are the same with every standard library.
class SyntheticRng {
 public:
  explicit SyntheticRng(uint64_t seed) : gen_(seed) {}
  double uniform() { return double(gen_() >> 11) * 0x1.0p-53; }
  uint64_t next() { return gen_(); }
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = gen_();
    while (x >= limit);
    return x % n;
  }

 private:
  std::mt19937_64 gen_;
};

uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  uint64_t x = seed + 0x9e3779b97f4a7c15ULL * (stream + 1);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Samples are a class prototype plus Gaussian pixel noise. Prototypes are smooth (a coarse random
// grid, bilinearly upsampled) so that random crops and flips keep the classes apart.
// The coarse random grids of the class prototypes: [classes * C][gh * gw] values in [16, 240).
struct PrototypeGrids {
  int64_t gh = 0, gw = 0;
  std::vector<double> values;
};

// The prototype of `label` at full size (C x H x W floats, bilinear from its grids), into dst.
// Computed per image rather than stored: 1000 classes of 3x224x224 would be 600 MB of floats.
void upsample_prototype(const PrototypeGrids& g, int64_t label, const std::vector<int64_t>& shape,
                        float* dst) {
  const int64_t c = shape[0], h = shape[1], w = shape[2], gh = g.gh, gw = g.gw;
  for (int64_t ch = 0; ch < c; ++ch) {
    const double* grid = g.values.data() + (label * c + ch) * gh * gw;
    float* plane = dst + ch * h * w;
    for (int64_t y = 0; y < h; ++y) {
      const double fy = std::clamp((y + 0.5) * gh / h - 0.5, 0.0, double(gh - 1));
      const int64_t y0 = std::min<int64_t>(int64_t(fy), gh - 1), y1 = std::min(y0 + 1, gh - 1);
      const double ay = fy - y0;
      for (int64_t x = 0; x < w; ++x) {
        const double fx = std::clamp((x + 0.5) * gw / w - 0.5, 0.0, double(gw - 1));
        const int64_t x0 = std::min<int64_t>(int64_t(fx), gw - 1), x1 = std::min(x0 + 1, gw - 1);
        const double ax = fx - x0;
        const double top = grid[y0 * gw + x0] * (1 - ax) + grid[y0 * gw + x1] * ax;
        const double bottom = grid[y1 * gw + x0] * (1 - ax) + grid[y1 * gw + x1] * ax;
        plane[y * w + x] = static_cast<float>(top * (1 - ay) + bottom * ay);
      }
    }
  }
}

Dataset synthetic_split(const PrototypeGrids& prototypes, int64_t n, int64_t classes,
                        int64_t pixels, const std::vector<int64_t>& shape, uint64_t seed) {
  SyntheticRng rng(seed);
  std::vector<int64_t> label_values(n);
  for (int64_t i = 0; i < n; ++i) label_values[i] = i % classes;  // balanced classes
  for (int64_t i = n - 1; i > 0; --i) std::swap(label_values[i], label_values[rng.below(i + 1)]);

  torch::Tensor images = torch::empty({n, shape[0], shape[1], shape[2]}, torch::kUInt8);
  torch::Tensor labels = torch::empty({n}, torch::kInt64);
  uint8_t* img = images.data_ptr<uint8_t>();
  int64_t* lab = labels.data_ptr<int64_t>();
  // Noise is a sum of four uniform bytes (near-Gaussian, sd 147.8 before scaling): two values per
  // engine output and no libm calls, which keeps generation within its time budget.
  constexpr float kNoise = 48.f;
  const float scale = kNoise / std::sqrt(4.f * (256.f * 256.f - 1.f) / 12.f);
  auto clamp_round = [](float v) { return static_cast<uint8_t>(std::clamp(v + 0.5f, 0.f, 255.f)); };
  std::vector<float> proto_buf(pixels);
  for (int64_t i = 0; i < n; ++i) {
    lab[i] = label_values[i];
    upsample_prototype(prototypes, label_values[i], shape, proto_buf.data());
    const float* proto = proto_buf.data();
    uint8_t* dst = img + i * pixels;
    for (int64_t k = 0; k < pixels; k += 2) {
      const uint64_t r = rng.next();
      const int a = int(r & 0xff) + int((r >> 8) & 0xff) + int((r >> 16) & 0xff) +
                    int((r >> 24) & 0xff) - 510;
      const int b = int((r >> 32) & 0xff) + int((r >> 40) & 0xff) + int((r >> 48) & 0xff) +
                    int(r >> 56) - 510;
      dst[k] = clamp_round(proto[k] + scale * a);
      if (k + 1 < pixels) dst[k + 1] = clamp_round(proto[k + 1] + scale * b);
    }
  }
  return make_dataset("synthetic", images, labels, classes);
}

}  // namespace

std::vector<int64_t> Dataset::image_shape() const {
  if (source) return source->image_shape();
  if (!images.defined() || images.dim() != 4) return {};
  return {images.size(1), images.size(2), images.size(3)};
}

std::string default_data_dir(const std::string& dataset) {
  if (dataset == "fashion-mnist") return "/usr/share/datasets/fashion-mnist";
  return "./data/" + dataset;
}

std::vector<std::string> dataset_names() {
  return {"fashion-mnist", "mnist", "cifar10", "cifar100", "synthetic"};
}

DataSplits load_dataset(const std::string& name, const std::string& dir) {
  const std::string d = dir.empty() ? default_data_dir(name) : dir;
  if (name == "fashion-mnist") {
    return load_mnist_like(name, d,
                           "install Debian's dataset-fashion-mnist (apt install "
                           "dataset-fashion-mnist) or pass --data-dir");
  }
  if (name == "mnist") {
    return load_mnist_like(name, d,
                           "download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                           "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz into it, or "
                           "pass --data-dir");
  }
  if (name == "cifar10") return load_cifar(name, d, false);
  if (name == "imagefolder") return load_image_folder(dir, ImageFolderOptions{});
  if (name == "cifar100") return load_cifar(name, d, true);
  if (name == "synthetic") return synthetic_for({1, 32, 32}, 10);
  std::string known;
  for (const auto& n : dataset_names()) known += (known.empty() ? "" : ", ") + n;
  TORCH_CHECK(false, "unknown dataset '", name, "' (known: ", known, ")");
}

std::string read_file_maybe_gz(const std::string& path, uint64_t max_bytes) {
  std::string bytes = read_raw_file(path);
  return is_gzip(bytes) ? gunzip(path, bytes, max_bytes) : bytes;
}

torch::Tensor load_idx_images(const std::string& path) {
  const std::string bytes = read_file_maybe_gz(path);
  const auto dims = idx_dims(path, bytes, kIdxImageMagic, "IDX images");
  TORCH_CHECK(dims[1] > 0 && dims[2] > 0, path, ": empty ", dims[1], "x", dims[2], " images");
  torch::Tensor images =
      torch::empty({int64_t(dims[0]), 1, int64_t(dims[1]), int64_t(dims[2])}, torch::kUInt8);
  std::memcpy(images.data_ptr<uint8_t>(), bytes.data() + 16, images.numel());
  return images;
}

torch::Tensor load_idx_labels(const std::string& path) {
  const std::string bytes = read_file_maybe_gz(path);
  const auto dims = idx_dims(path, bytes, kIdxLabelMagic, "IDX labels");
  torch::Tensor labels = torch::empty({int64_t(dims[0])}, torch::kInt64);
  int64_t* dst = labels.data_ptr<int64_t>();
  const auto* src = reinterpret_cast<const unsigned char*>(bytes.data()) + 8;
  for (uint32_t i = 0; i < dims[0]; ++i) dst[i] = src[i];
  return labels;
}

void load_cifar_file(const std::string& path, bool cifar100, std::vector<torch::Tensor>& images,
                     std::vector<torch::Tensor>& labels) {
  const std::string bytes = read_file_maybe_gz(path);
  const int64_t label_bytes = cifar100 ? 2 : 1;
  const int64_t record = label_bytes + kCifarPixels;
  const int64_t size = static_cast<int64_t>(bytes.size());
  TORCH_CHECK(size > 0, path, ": empty file");
  TORCH_CHECK(size % record == 0, path, ": truncated or not a CIFAR-", cifar100 ? 100 : 10,
              " binary file (", size, " bytes is not a whole number of ", record, "-byte records)");
  const int64_t n = size / record, classes = cifar100 ? 100 : 10;
  torch::Tensor img = torch::empty({n, 3, 32, 32}, torch::kUInt8);
  torch::Tensor lab = torch::empty({n}, torch::kInt64);
  uint8_t* ip = img.data_ptr<uint8_t>();
  int64_t* lp = lab.data_ptr<int64_t>();
  const auto* src = reinterpret_cast<const unsigned char*>(bytes.data());
  for (int64_t i = 0; i < n; ++i) {
    const unsigned char* rec = src + i * record;
    lp[i] = rec[label_bytes - 1];  // CIFAR-100: the fine label follows the coarse one
    // The record stores R, G, B planes of 32x32 row-major: already the CHW layout.
    std::memcpy(ip + i * kCifarPixels, rec + label_bytes, kCifarPixels);
  }
  check_label_range(path, lab, classes);
  images.push_back(img);
  labels.push_back(lab);
}

DataSplits synthetic_for(const std::vector<int64_t>& image_shape, int64_t classes) {
  TORCH_CHECK(image_shape.size() == 3, "synthetic data: images must be [C, H, W], got ",
              image_shape.size(), " dimensions");
  const int64_t pixels = image_shape[0] * image_shape[1] * image_shape[2];
  const int64_t kBudget = int64_t(64) << 20;  // bytes of training images
  const int64_t train = std::clamp<int64_t>(kBudget / std::max<int64_t>(pixels, 1), 64, 1024);
  return make_synthetic(train, train / 4, image_shape, classes, 0);
}

DataSplits make_synthetic(int64_t train_size, int64_t test_size, std::vector<int64_t> image_shape,
                          int64_t classes, uint64_t seed) {
  TORCH_CHECK(image_shape.size() == 3, "make_synthetic: image_shape must be [C, H, W], got ",
              image_shape.size(), " dimensions");
  TORCH_CHECK(image_shape[0] > 0 && image_shape[1] > 0 && image_shape[2] > 0,
              "make_synthetic: image dimensions must be positive");
  TORCH_CHECK(classes >= 1, "make_synthetic: need at least one class, got ", classes);
  TORCH_CHECK(train_size >= 0 && test_size >= 0, "make_synthetic: negative split size");
  const int64_t c = image_shape[0], h = image_shape[1], w = image_shape[2];
  const int64_t pixels = c * h * w;

  SyntheticRng proto_rng(mix_seed(seed, 0));
  PrototypeGrids prototypes;
  prototypes.gh = std::min<int64_t>(4, h);
  prototypes.gw = std::min<int64_t>(4, w);
  prototypes.values.resize(classes * c * prototypes.gh * prototypes.gw);
  for (auto& g : prototypes.values) g = 16.0 + 224.0 * proto_rng.uniform();
  DataSplits s;
  s.train =
      synthetic_split(prototypes, train_size, classes, pixels, image_shape, mix_seed(seed, 1));
  s.test = synthetic_split(prototypes, test_size, classes, pixels, image_shape, mix_seed(seed, 2));
  set_statistics(s.train);
  s.test.mean = s.train.mean;
  s.test.std = s.train.std;
  return s;
}

torch::Tensor pad_to(const torch::Tensor& images, int64_t size) {
  TORCH_CHECK(images.dim() == 4, "pad_to: expected images [N, C, H, W], got ", images.sizes());
  const int64_t h = images.size(2), w = images.size(3);
  TORCH_CHECK(h <= size && w <= size, "pad_to: images of ", h, "x", w, " do not fit in ", size, "x",
              size);
  if (h == size && w == size) return images;
  torch::Tensor out = torch::zeros({images.size(0), images.size(1), size, size}, images.options());
  const int64_t top = (size - h) / 2, left = (size - w) / 2;
  out.narrow(2, top, h).narrow(3, left, w).copy_(images);
  return out;
}

namespace {
// The examples of a source-backed dataset at `indices`, in that order.
Dataset source_subset(const Dataset& d, const std::vector<int64_t>& indices) {
  Dataset out = d;
  out.source = d.source->subset(indices);
  out.labels = d.labels.index_select(0, torch::tensor(indices, torch::kInt64));
  return out;
}
// A fixed-seed permutation of [0, n) (the same on every run).
std::vector<int64_t> fixed_permutation(int64_t n) {
  std::vector<int64_t> idx(n);
  for (int64_t i = 0; i < n; ++i) idx[i] = i;
  auto rng = detail::stream_rng(0, detail::Stream::kSubset, 0, 0);
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[detail::below(rng, i)]);
  return idx;
}
// Splits a source-backed dataset: `n` examples of a fixed permutation vs the rest, each sorted.
std::pair<Dataset, Dataset> source_split(const Dataset& d, int64_t n) {
  auto perm = fixed_permutation(d.size());
  std::vector<int64_t> picked(perm.begin(), perm.begin() + n), rest(perm.begin() + n, perm.end());
  std::sort(picked.begin(), picked.end());
  std::sort(rest.begin(), rest.end());
  return {source_subset(d, rest), source_subset(d, picked)};
}
}  // namespace

Dataset take_first(const Dataset& d, int64_t n) {
  if (n <= 0 || n >= d.size()) return d;
  if (d.source) return source_split(d, n).second;
  Dataset out = d;
  out.images = d.images.narrow(0, 0, n);
  out.labels = d.labels.narrow(0, 0, n);
  return out;
}

std::pair<Dataset, Dataset> split_validation(const Dataset& d, int64_t n) {
  TORCH_CHECK(n >= 0 && n < d.size(), "split_validation: cannot split ", n,
              " validation examples off a dataset of ", d.size());
  if (d.source) return source_split(d, n);
  const int64_t rest = d.size() - n;
  Dataset train = d, val = d;
  train.images = d.images.narrow(0, 0, rest);
  train.labels = d.labels.narrow(0, 0, rest);
  val.images = d.images.narrow(0, rest, n);
  val.labels = d.labels.narrow(0, rest, n);
  return {train, val};
}

}  // namespace nnslim
