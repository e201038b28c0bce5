#include "nnslim/data/dataset.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using nnslim::Dataset;
using nnslim::DataSplits;

namespace {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("nnslim_dataset_test_" + std::to_string(rd()) + "_" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string gzip(const std::string& raw) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&zs, raw.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

void put_be32(std::string& s, uint32_t v) {
  s.push_back(char(v >> 24));
  s.push_back(char(v >> 16));
  s.push_back(char(v >> 8));
  s.push_back(char(v));
}

// Pixel value of image i at (r, c): distinct per image so that order mistakes show.
uint8_t pixel(int64_t i, int64_t r, int64_t c) { return uint8_t((i * 31 + r * 7 + c * 3) % 256); }

std::string idx_images(int64_t n, int64_t rows, int64_t cols) {
  std::string s;
  put_be32(s, 0x803);
  put_be32(s, uint32_t(n));
  put_be32(s, uint32_t(rows));
  put_be32(s, uint32_t(cols));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) s.push_back(char(pixel(i, r, c)));
  return s;
}

std::string idx_labels(const std::vector<uint8_t>& labels) {
  std::string s;
  put_be32(s, 0x801);
  put_be32(s, uint32_t(labels.size()));
  for (uint8_t l : labels) s.push_back(char(l));
  return s;
}

std::vector<uint8_t> cyclic_labels(int64_t n, int64_t classes) {
  std::vector<uint8_t> l(n);
  for (int64_t i = 0; i < n; ++i) l[i] = uint8_t(i % classes);
  return l;
}

// A small MNIST-style directory: training files gzipped, test files raw (both forms must work).
void write_mnist_dir(const TempDir& dir, int64_t train = 6, int64_t test = 4) {
  write_bytes(dir.file("train-images-idx3-ubyte.gz"), gzip(idx_images(train, 28, 28)));
  write_bytes(dir.file("train-labels-idx1-ubyte.gz"), gzip(idx_labels(cyclic_labels(train, 10))));
  write_bytes(dir.file("t10k-images-idx3-ubyte"), idx_images(test, 28, 28));
  write_bytes(dir.file("t10k-labels-idx1-ubyte"), idx_labels(cyclic_labels(test, 10)));
}

// Runs f, expecting a c10::Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << parts.front() << "'";
  } catch (const c10::Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg;
  }
}

double population_std(const torch::Tensor& x) {
  return (x - x.mean()).pow(2).mean().sqrt().item<double>();
}

std::string cifar_record(int coarse, int fine, bool cifar100, int seed) {
  std::string r;
  if (cifar100) r.push_back(char(coarse));
  r.push_back(char(fine));
  for (int k = 0; k < 3072; ++k) r.push_back(char((k + seed * 13) % 256));
  return r;
}

}  // namespace

TEST(DatasetIdx, RawAndGzipGiveTheSameImages) {
  TempDir dir;
  const std::string raw = idx_images(3, 28, 28);
  write_bytes(dir.file("a"), raw);
  write_bytes(dir.file("a.gz"), gzip(raw));
  const auto a = nnslim::load_idx_images(dir.file("a"));
  const auto b = nnslim::load_idx_images(dir.file("a.gz"));
  ASSERT_EQ(a.sizes(), (std::vector<int64_t>{3, 1, 28, 28}));
  EXPECT_EQ(a.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(a.equal(b));
  EXPECT_EQ(a[2][0][5][7].item<int64_t>(), pixel(2, 5, 7));

  write_bytes(dir.file("l.gz"), gzip(idx_labels({3, 1, 4})));
  const auto l = nnslim::load_idx_labels(dir.file("l.gz"));
  EXPECT_EQ(l.scalar_type(), torch::kInt64);
  EXPECT_EQ(std::vector<int64_t>(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + 3),
            (std::vector<int64_t>{3, 1, 4}));
}

TEST(DatasetIdx, ConcatenatedGzipMembersAreOneFile) {
  TempDir dir;
  const std::string raw = idx_labels({1, 2, 3, 4, 5, 6});
  write_bytes(dir.file("l.gz"), gzip(raw.substr(0, 9)) + gzip(raw.substr(9)));
  EXPECT_EQ(nnslim::read_file_maybe_gz(dir.file("l.gz")), raw);
}

// A gzip file is refused once it decompresses past the cap (a "gzip bomb"), whether in one
// member or many; the trailer's size is only a hint (issue 31).
TEST(DatasetIdx, GzipDecompressionIsCapped) {
  TempDir dir;
  const std::string zeros(8 << 20, '\0');
  write_bytes(dir.file("bomb.gz"), gzip(zeros));
  expect_error([&] { nnslim::read_file_maybe_gz(dir.file("bomb.gz"), 1 << 20); },
               {dir.file("bomb.gz"), "decompresses to more than 1048576 bytes"});
  write_bytes(dir.file("many.gz"),
              gzip(zeros.substr(0, 600 << 10)) + gzip(zeros.substr(0, 600 << 10)));
  expect_error([&] { nnslim::read_file_maybe_gz(dir.file("many.gz"), 1 << 20); },
               {dir.file("many.gz"), "decompresses to more than 1048576 bytes"});
  // Exactly at the cap is fine; a trailer that claims 4 GiB for 6 bytes is a clean error.
  EXPECT_EQ(nnslim::read_file_maybe_gz(dir.file("bomb.gz"), 8 << 20).size(), zeros.size());
  std::string lying = gzip("abcdef");
  for (int k = 1; k <= 4; ++k) lying[lying.size() - k] = '\xff';
  write_bytes(dir.file("lying.gz"), lying);
  expect_error([&] { nnslim::read_file_maybe_gz(dir.file("lying.gz")); },
               {dir.file("lying.gz"), "corrupt gzip data"});
}

TEST(DatasetIdx, WrongMagicNamesFileAndMagic) {
  TempDir dir;
  write_bytes(dir.file("labels-as-images"), idx_labels({1, 2}));
  expect_error([&] { nnslim::load_idx_images(dir.file("labels-as-images")); },
               {dir.file("labels-as-images"), "bad magic 0x00000801", "expected 0x00000803"});
  write_bytes(dir.file("junk"), std::string(64, 'x'));
  expect_error([&] { nnslim::load_idx_labels(dir.file("junk")); }, {dir.file("junk"), "bad magic"});
}

TEST(DatasetIdx, TruncatedFilesNameFile) {
  TempDir dir;
  std::string raw = idx_images(3, 28, 28);
  write_bytes(dir.file("short"), raw.substr(0, raw.size() - 1));
  expect_error([&] { nnslim::load_idx_images(dir.file("short")); },
               {dir.file("short"), "truncated"});
  write_bytes(dir.file("header"), raw.substr(0, 10));
  expect_error([&] { nnslim::load_idx_images(dir.file("header")); },
               {dir.file("header"), "truncated"});
  write_bytes(dir.file("empty"), "");
  expect_error([&] { nnslim::load_idx_labels(dir.file("empty")); },
               {dir.file("empty"), "truncated"});
  // A header that claims an enormous count must not overflow the size arithmetic.
  std::string huge;
  put_be32(huge, 0x803);
  for (int k = 0; k < 3; ++k) put_be32(huge, 0xffffffffu);
  write_bytes(dir.file("huge"), huge);
  expect_error([&] { nnslim::load_idx_images(dir.file("huge")); }, {dir.file("huge"), "truncated"});
}

TEST(DatasetIdx, TruncatedAndCorruptGzipThrow) {
  TempDir dir;
  const std::string gz = gzip(idx_images(20, 28, 28));
  write_bytes(dir.file("cut.gz"), gz.substr(0, gz.size() / 2));
  expect_error([&] { nnslim::load_idx_images(dir.file("cut.gz")); },
               {dir.file("cut.gz"), "truncated gzip"});
  write_bytes(dir.file("header-only.gz"), gz.substr(0, 5));
  expect_error([&] { nnslim::load_idx_images(dir.file("header-only.gz")); },
               {dir.file("header-only.gz")});

  // Damage the deflate data at several places; the CRC or the decoder must catch every one.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    std::string bad = gz;
    for (int k = 0; k < 8; ++k) bad[20 + rng() % (bad.size() - 40)] ^= char(1 + rng() % 255);
    write_bytes(dir.file("bad.gz"), bad);
    expect_error([&] { nnslim::load_idx_images(dir.file("bad.gz")); }, {dir.file("bad.gz")});
  }
}

TEST(DatasetIdx, MissingFileNamesPath) {
  TempDir dir;
  expect_error([&] { nnslim::read_file_maybe_gz(dir.file("nope")); },
               {dir.file("nope"), "not found"});
}

TEST(DatasetMnist, LoadsPadsAndComputesStatistics) {
  TempDir dir;
  write_mnist_dir(dir);
  const DataSplits s = nnslim::load_dataset("mnist", dir.str());
  EXPECT_EQ(s.train.name, "mnist");
  EXPECT_EQ(s.train.size(), 6);
  EXPECT_EQ(s.test.size(), 4);
  EXPECT_EQ(s.train.classes, 10);
  EXPECT_EQ(s.train.image_shape(), (std::vector<int64_t>{1, 32, 32}));
  EXPECT_EQ(s.test.image_shape(), (std::vector<int64_t>{1, 32, 32}));
  // 28 -> 32 pads two zero rows/columns on each side.
  const auto img = s.train.images[5][0];
  EXPECT_EQ(img.narrow(0, 0, 2).sum().item<int64_t>(), 0);
  EXPECT_EQ(img.narrow(1, 30, 2).sum().item<int64_t>(), 0);
  EXPECT_EQ(img[2 + 4][2 + 9].item<int64_t>(), pixel(5, 4, 9));
  EXPECT_EQ(s.test.images[3][0][2 + 27][2 + 27].item<int64_t>(), pixel(3, 27, 27));
  EXPECT_EQ(s.train.labels[5].item<int64_t>(), 5);

  const auto x = s.train.images.to(torch::kFloat64) / 255.0;
  ASSERT_EQ(s.train.mean.size(), 1u);
  EXPECT_NEAR(s.train.mean[0], x.mean().item<double>(), 1e-6);
  EXPECT_NEAR(s.train.std[0], population_std(x), 1e-6);
  EXPECT_EQ(s.test.mean, s.train.mean);
  EXPECT_EQ(s.test.std, s.train.std);
}

TEST(DatasetMnist, MissingDirectoryExplainsWhatToDo) {
  TempDir dir;
  const std::string missing = dir.file("absent");
  expect_error([&] { nnslim::load_dataset("fashion-mnist", missing); },
               {missing, "dataset-fashion-mnist", "--data-dir"});
  expect_error([&] { nnslim::load_dataset("mnist", missing); }, {missing, "--data-dir"});
}

TEST(DatasetMnist, MissingFileNamesIt) {
  TempDir dir;
  write_mnist_dir(dir);
  fs::remove(dir.file("t10k-labels-idx1-ubyte"));
  expect_error([&] { nnslim::load_dataset("mnist", dir.str()); },
               {dir.file("t10k-labels-idx1-ubyte"), "not found"});
}

TEST(DatasetMnist, LabelCountMismatchNamesFiles) {
  TempDir dir;
  write_mnist_dir(dir);
  write_bytes(dir.file("train-labels-idx1-ubyte.gz"), gzip(idx_labels(cyclic_labels(5, 10))));
  expect_error([&] { nnslim::load_dataset("mnist", dir.str()); },
               {dir.file("train-labels-idx1-ubyte.gz"), "5 labels", "6 images"});
}

TEST(DatasetMnist, LabelOutOfRangeNamesFile) {
  TempDir dir;
  write_mnist_dir(dir);
  write_bytes(dir.file("t10k-labels-idx1-ubyte"), idx_labels({0, 1, 10, 2}));
  expect_error([&] { nnslim::load_dataset("mnist", dir.str()); },
               {dir.file("t10k-labels-idx1-ubyte"), "label 10 at index 2 out of range"});
}

TEST(DatasetMnist, WrongMagicInDirectoryNamesFile) {
  TempDir dir;
  write_mnist_dir(dir);
  write_bytes(dir.file("t10k-images-idx3-ubyte"), idx_labels({1, 2, 3, 4}));
  expect_error([&] { nnslim::load_dataset("mnist", dir.str()); },
               {dir.file("t10k-images-idx3-ubyte"), "bad magic 0x00000801"});
}

TEST(DatasetCifar, Cifar10LoadsAllBatches) {
  TempDir dir;
  for (int b = 1; b <= 5; ++b) {
    write_bytes(dir.file("data_batch_" + std::to_string(b) + ".bin"),
                cifar_record(0, b, false, b) + cifar_record(0, (b + 5) % 10, false, b + 10));
  }
  write_bytes(dir.file("test_batch.bin"), cifar_record(0, 9, false, 99));
  const DataSplits s = nnslim::load_dataset("cifar10", dir.str());
  EXPECT_EQ(s.train.size(), 10);
  EXPECT_EQ(s.test.size(), 1);
  EXPECT_EQ(s.train.classes, 10);
  EXPECT_EQ(s.train.image_shape(), (std::vector<int64_t>{3, 32, 32}));
  EXPECT_EQ(s.train.labels[2].item<int64_t>(), 2);  // first record of data_batch_2
  EXPECT_EQ(s.test.labels[0].item<int64_t>(), 9);
  // Record byte k (after the label) is channel k/1024, row (k%1024)/32, column k%32.
  const int k = 1024 * 2 + 32 * 5 + 7;
  EXPECT_EQ(s.train.images[2][2][5][7].item<int64_t>(), (k + 2 * 13) % 256);
  ASSERT_EQ(s.train.mean.size(), 3u);
  ASSERT_EQ(s.train.std.size(), 3u);
  const auto x = s.train.images.to(torch::kFloat64) / 255.0;
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(s.train.mean[c], x.select(1, c).mean().item<double>(), 1e-6);
    EXPECT_NEAR(s.train.std[c], population_std(x.select(1, c)), 1e-6);
  }
}

TEST(DatasetCifar, Cifar100UsesFineLabel) {
  TempDir dir;
  write_bytes(dir.file("train.bin"), cifar_record(3, 77, true, 1) + cifar_record(19, 99, true, 2));
  write_bytes(dir.file("test.bin"), cifar_record(4, 42, true, 3));
  const DataSplits s = nnslim::load_dataset("cifar100", dir.str());
  EXPECT_EQ(s.train.classes, 100);
  EXPECT_EQ(s.train.labels[0].item<int64_t>(), 77);
  EXPECT_EQ(s.train.labels[1].item<int64_t>(), 99);
  EXPECT_EQ(s.test.labels[0].item<int64_t>(), 42);
  EXPECT_EQ(s.test.images[0][0][0][1].item<int64_t>(), (1 + 3 * 13) % 256);
}

TEST(DatasetCifar, BadFilesNameThem) {
  TempDir dir;
  const std::string rec = cifar_record(0, 1, false, 0);
  write_bytes(dir.file("cut.bin"), rec + rec.substr(0, 100));
  std::vector<torch::Tensor> images, labels;
  expect_error([&] { nnslim::load_cifar_file(dir.file("cut.bin"), false, images, labels); },
               {dir.file("cut.bin"), "truncated"});
  write_bytes(dir.file("label.bin"), rec + cifar_record(0, 10, false, 1));
  expect_error([&] { nnslim::load_cifar_file(dir.file("label.bin"), false, images, labels); },
               {dir.file("label.bin"), "label 10 at index 1 out of range"});
  EXPECT_TRUE(images.empty());

  // A missing batch file in a CIFAR-10 directory.
  for (int b = 1; b <= 4; ++b)
    write_bytes(dir.file("data_batch_" + std::to_string(b) + ".bin"), rec);
  expect_error([&] { nnslim::load_dataset("cifar10", dir.str()); },
               {dir.file("data_batch_5.bin"), "not found"});
  expect_error([&] { nnslim::load_dataset("cifar100", dir.file("none")); },
               {dir.file("none"), "--data-dir"});
}

TEST(DatasetSynthetic, DeterministicInSeedOnly) {
  torch::manual_seed(1);
  const DataSplits a = nnslim::make_synthetic(64, 32, {3, 8, 8}, 4, 42);
  torch::manual_seed(2);
  (void)torch::rand({10});
  const DataSplits b = nnslim::make_synthetic(64, 32, {3, 8, 8}, 4, 42);
  const DataSplits c = nnslim::make_synthetic(64, 32, {3, 8, 8}, 4, 43);
  EXPECT_TRUE(a.train.images.equal(b.train.images));
  EXPECT_TRUE(a.train.labels.equal(b.train.labels));
  EXPECT_TRUE(a.test.images.equal(b.test.images));
  EXPECT_EQ(a.train.mean, b.train.mean);
  EXPECT_FALSE(a.train.images.equal(c.train.images));
  EXPECT_FALSE(a.train.images.equal(a.test.images.narrow(0, 0, 32).repeat({2, 1, 1, 1})));
  EXPECT_EQ(a.train.images.sizes(), (std::vector<int64_t>{64, 3, 8, 8}));
  EXPECT_EQ(a.train.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(a.train.labels.min().item<int64_t>(), 0);
  EXPECT_EQ(a.train.labels.max().item<int64_t>(), 3);
  EXPECT_EQ(a.train.mean.size(), 3u);
}

TEST(DatasetSynthetic, NearestClassMeanSeparatesTheClasses) {
  const DataSplits s = nnslim::load_dataset("synthetic");
  EXPECT_EQ(s.train.size(), 1024);
  EXPECT_EQ(s.test.size(), 256);
  EXPECT_EQ(s.train.classes, 10);
  EXPECT_EQ(s.train.image_shape(), (std::vector<int64_t>{1, 32, 32}));
  // Class means of the training split classify the test split: the task is learnable.
  const auto xtr = s.train.images.to(torch::kFloat32).flatten(1);
  const auto xte = s.test.images.to(torch::kFloat32).flatten(1);
  std::vector<torch::Tensor> centres;
  for (int64_t k = 0; k < 10; ++k) centres.push_back(xtr.index({s.train.labels == k}).mean(0));
  const auto pred = torch::cdist(xte, torch::stack(centres)).argmin(1);
  const double acc = (pred == s.test.labels).to(torch::kFloat64).mean().item<double>();
  EXPECT_GT(acc, 0.9);
  // The training statistics are real statistics, not placeholders.
  EXPECT_GT(s.train.mean[0], 0.2f);
  EXPECT_LT(s.train.mean[0], 0.8f);
  EXPECT_GT(s.train.std[0], 0.05f);
}

TEST(DatasetSynthetic, IsFast) {
  const auto t0 = std::chrono::steady_clock::now();
  (void)nnslim::load_dataset("synthetic");
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  // The budget is 50 ms; the bound leaves room for a loaded test machine.
  EXPECT_LT(ms, 500.0);
}

TEST(DatasetOps, PadToCentres) {
  const auto x = torch::ones({2, 3, 5, 6}, torch::kUInt8);
  const auto p = nnslim::pad_to(x, 9);
  EXPECT_EQ(p.sizes(), (std::vector<int64_t>{2, 3, 9, 9}));
  EXPECT_EQ(p.sum().item<int64_t>(), 2 * 3 * 5 * 6);
  EXPECT_EQ(p.narrow(2, 2, 5).narrow(3, 1, 6).sum().item<int64_t>(), 2 * 3 * 5 * 6);
  EXPECT_THROW(nnslim::pad_to(x, 4), c10::Error);
}

TEST(DatasetOps, TakeFirstAndSplitValidation) {
  const DataSplits s = nnslim::make_synthetic(20, 4, {1, 4, 4}, 3, 1);
  const Dataset& d = s.train;
  EXPECT_EQ(nnslim::take_first(d, 0).size(), 20);
  EXPECT_EQ(nnslim::take_first(d, 25).size(), 20);
  const Dataset f = nnslim::take_first(d, 7);
  EXPECT_EQ(f.size(), 7);
  EXPECT_EQ(f.images.size(0), 7);
  EXPECT_TRUE(f.labels.equal(d.labels.narrow(0, 0, 7)));
  EXPECT_EQ(f.mean, d.mean);
  EXPECT_EQ(f.classes, 3);

  const auto [rest, val] = nnslim::split_validation(d, 5);
  EXPECT_EQ(rest.size(), 15);
  EXPECT_EQ(val.size(), 5);
  EXPECT_TRUE(val.images.equal(d.images.narrow(0, 15, 5)));
  EXPECT_TRUE(rest.labels.equal(d.labels.narrow(0, 0, 15)));
  EXPECT_EQ(val.mean, d.mean);
  EXPECT_EQ(val.std, d.std);
  EXPECT_EQ(nnslim::split_validation(d, 0).second.size(), 0);
  EXPECT_THROW(nnslim::split_validation(d, 20), c10::Error);
  EXPECT_THROW(nnslim::split_validation(d, -1), c10::Error);
}

TEST(DatasetOps, NamesAndDefaults) {
  EXPECT_EQ(nnslim::default_data_dir("fashion-mnist"), "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(nnslim::default_data_dir("mnist"), "./data/mnist");
  EXPECT_EQ(nnslim::default_data_dir("cifar10"), "./data/cifar10");
  EXPECT_EQ(nnslim::dataset_names().size(), 5u);
  expect_error([] { nnslim::load_dataset("imagenet"); }, {"imagenet", "fashion-mnist"});
}

TEST(DatasetFashionMnist, RealFilesIfInstalled) {
  const std::string dir = nnslim::default_data_dir("fashion-mnist");
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " not present (Debian dataset-fashion-mnist)";
  const DataSplits s = nnslim::load_dataset("fashion-mnist");
  EXPECT_EQ(s.train.size(), 60000);
  EXPECT_EQ(s.test.size(), 10000);
  EXPECT_EQ(s.train.image_shape(), (std::vector<int64_t>{1, 32, 32}));
  EXPECT_EQ(s.test.image_shape(), (std::vector<int64_t>{1, 32, 32}));
  EXPECT_EQ(s.train.labels.min().item<int64_t>(), 0);
  EXPECT_EQ(s.train.labels.max().item<int64_t>(), 9);
  EXPECT_EQ(s.test.labels.max().item<int64_t>(), 9);
  // Published Fashion-MNIST statistics at 28x28 are mean 0.2860, std 0.3530; padding to 32x32
  // with zeros scales the mean by (28/32)^2.
  ASSERT_EQ(s.train.mean.size(), 1u);
  EXPECT_NEAR(s.train.mean[0], 0.2860 * 784.0 / 1024.0, 2e-3);
  EXPECT_GT(s.train.std[0], 0.3);
  EXPECT_LT(s.train.std[0], 0.4);
}
