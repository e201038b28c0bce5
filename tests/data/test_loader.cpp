#include "nnslim/data/loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <vector>

using nnslim::Batch;
using nnslim::BatchMaker;
using nnslim::Dataset;
using nnslim::EpochLoader;
using nnslim::LoaderOptions;

namespace {

// n examples whose label is their index, with distinct random pixels.
Dataset indexed_dataset(int64_t n, int64_t c = 2, int64_t h = 8, int64_t w = 8) {
  Dataset d;
  d.name = "indexed";
  d.images = torch::empty({n, c, h, w}, torch::kUInt8);
  std::mt19937 rng(123);
  uint8_t* p = d.images.data_ptr<uint8_t>();
  for (int64_t k = 0; k < d.images.numel(); ++k) p[k] = uint8_t(1 + rng() % 255);
  d.labels = torch::arange(n, torch::kInt64);
  d.classes = n;
  for (int64_t k = 0; k < c; ++k) {
    d.mean.push_back(0.25f + 0.1f * k);
    d.std.push_back(0.5f - 0.1f * k);
  }
  return d;
}

std::vector<int64_t> labels_of(const Batch& b) {
  return std::vector<int64_t>(b.y.data_ptr<int64_t>(), b.y.data_ptr<int64_t>() + b.y.size(0));
}

// Raw pixel values (0..255) that a normalised batch came from.
torch::Tensor denormalise(const torch::Tensor& x, const Dataset& d) {
  const int64_t c = x.size(1);
  const auto mean = torch::tensor(d.mean).view({1, c, 1, 1});
  const auto sd = torch::tensor(d.std).view({1, c, 1, 1});
  return (x * sd + mean) * 255.0;
}

std::vector<Batch> whole_epoch(const BatchMaker& m, int64_t epoch) {
  const auto order = m.order(epoch);
  std::vector<Batch> out;
  for (int64_t i = 0; i < m.batches_per_epoch(); ++i) out.push_back(m.make(order, i, epoch));
  return out;
}

}  // namespace

TEST(LoaderBatchMaker, ShuffledEpochCoversEveryExampleOnce) {
  const Dataset d = indexed_dataset(103);
  LoaderOptions o;
  o.batch_size = 10;
  o.seed = 5;
  o.augment = true;
  const BatchMaker m(d, o);
  ASSERT_EQ(m.batches_per_epoch(), 11);
  std::vector<int64_t> seen;
  for (const Batch& b : whole_epoch(m, 3)) {
    EXPECT_EQ(b.x.size(0), b.y.size(0));
    for (int64_t y : labels_of(b)) seen.push_back(y);
  }
  ASSERT_EQ(seen.size(), 103u);
  std::vector<int64_t> sorted = seen;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> expected(103);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(sorted, expected);
  EXPECT_NE(seen, expected);  // actually shuffled
}

TEST(LoaderBatchMaker, DropLastAndBatchSizes) {
  const Dataset d = indexed_dataset(103);
  LoaderOptions o;
  o.batch_size = 10;
  o.drop_last = true;
  const BatchMaker dropping(d, o);
  EXPECT_EQ(dropping.batches_per_epoch(), 10);
  for (const Batch& b : whole_epoch(dropping, 0)) EXPECT_EQ(b.x.size(0), 10);
  o.drop_last = false;
  const BatchMaker keeping(d, o);
  const auto batches = whole_epoch(keeping, 0);
  ASSERT_EQ(batches.size(), 11u);
  EXPECT_EQ(batches.back().x.size(0), 3);
  EXPECT_THROW(keeping.make(keeping.order(0), 11, 0), c10::Error);
}

TEST(LoaderBatchMaker, SameSeedAndEpochGiveIdenticalBatches) {
  const Dataset d = indexed_dataset(50);
  LoaderOptions o;
  o.batch_size = 16;
  o.seed = 11;
  o.augment = true;
  const BatchMaker a(d, o), b(d, o);
  torch::manual_seed(0);
  const auto ea = whole_epoch(a, 4);
  torch::manual_seed(99);  // global torch RNG state must not matter
  const auto eb = whole_epoch(b, 4);
  ASSERT_EQ(ea.size(), eb.size());
  for (size_t i = 0; i < ea.size(); ++i) {
    EXPECT_TRUE(ea[i].x.equal(eb[i].x));
    EXPECT_TRUE(ea[i].y.equal(eb[i].y));
  }
  // A single batch made out of sequence (a resumed run) equals the one made in sequence.
  EXPECT_TRUE(a.make(a.order(4), 2, 4).x.equal(ea[2].x));
}

TEST(LoaderBatchMaker, EpochsAndSeedsChangeTheOrder) {
  const Dataset d = indexed_dataset(64);
  LoaderOptions o;
  o.seed = 1;
  const BatchMaker a(d, o);
  EXPECT_NE(a.order(0), a.order(1));
  EXPECT_NE(a.order(1), a.order(2));
  o.seed = 2;
  const BatchMaker b(d, o);
  EXPECT_NE(a.order(0), b.order(0));
  o.shuffle = false;
  const BatchMaker fixed(d, o);
  std::vector<int64_t> identity(64);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(fixed.order(7), identity);
}

TEST(LoaderBatchMaker, NormalisationWithoutAugmentationRecoversPixels) {
  const Dataset d = indexed_dataset(20, 3, 5, 7);
  LoaderOptions o;
  o.batch_size = 8;
  o.shuffle = false;
  const BatchMaker m(d, o);
  const auto batches = whole_epoch(m, 0);
  const auto x = torch::cat({batches[0].x, batches[1].x, batches[2].x});
  EXPECT_EQ(x.scalar_type(), torch::kFloat32);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{20, 3, 5, 7}));
  const auto pixels = denormalise(x, d);
  EXPECT_LT((pixels - d.images.to(torch::kFloat32)).abs().max().item<float>(), 1e-3);
}

TEST(LoaderBatchMaker, AugmentationIsAShiftedPossiblyFlippedCrop) {
  const int64_t pad = 2;
  const Dataset d = indexed_dataset(40, 2, 8, 8);
  LoaderOptions o;
  o.batch_size = 40;
  o.augment = true;
  o.crop_padding = pad;
  o.seed = 3;
  const BatchMaker m(d, o);
  const auto order = m.order(0);
  const Batch b = m.make(order, 0, 0);
  ASSERT_EQ(b.x.sizes(), d.images.sizes());
  const auto raw = denormalise(b.x, d).round();
  // Reference: torchvision-style zero padding, every crop offset, optional flip.
  const auto padded = torch::constant_pad_nd(d.images.to(torch::kFloat32), {pad, pad, pad, pad}, 0);
  int changed = 0, flipped = 0;
  for (int64_t i = 0; i < 40; ++i) {
    const auto src = padded[order[i]];
    bool matched = false;
    for (int64_t oy = 0; oy <= 2 * pad && !matched; ++oy) {
      for (int64_t ox = 0; ox <= 2 * pad && !matched; ++ox) {
        const auto crop = src.narrow(1, oy, 8).narrow(2, ox, 8);
        if (raw[i].equal(crop)) {
          matched = true;
          changed += (oy != pad || ox != pad);
        } else if (raw[i].equal(crop.flip({2}))) {
          matched = true;
          ++flipped;
          changed += 1;
        }
      }
    }
    EXPECT_TRUE(matched) << "sample " << i;
  }
  EXPECT_GT(changed, 20);
  EXPECT_GT(flipped, 5);
  EXPECT_LT(flipped, 35);
}

TEST(LoaderBatchMaker, AugmentFlagsAreRespected) {
  const Dataset d = indexed_dataset(16);
  LoaderOptions o;
  o.shuffle = false;
  o.augment = true;
  o.crop_padding = 0;
  o.hflip = false;
  const BatchMaker m(d, o);
  const auto pixels = denormalise(m.make(m.order(0), 0, 0).x, d);
  EXPECT_LT((pixels - d.images.to(torch::kFloat32)).abs().max().item<float>(), 1e-3);
}

TEST(LoaderEpoch, MatchesBatchMakerAndEnds) {
  const Dataset d = indexed_dataset(77);
  LoaderOptions o;
  o.batch_size = 8;
  o.augment = true;
  o.seed = 9;
  o.prefetch = 2;
  const BatchMaker m(d, o);
  const auto expected = whole_epoch(m, 6);
  EpochLoader it(d, o, 6);
  EXPECT_EQ(it.size(), 10);
  size_t i = 0;
  while (auto b = it.next()) {
    ASSERT_LT(i, expected.size());
    EXPECT_TRUE(b->x.equal(expected[i].x));
    EXPECT_TRUE(b->y.equal(expected[i].y));
    ++i;
  }
  EXPECT_EQ(i, expected.size());
  EXPECT_EQ(it.next(), nullptr);
}

TEST(LoaderEpoch, EarlyDestructionDoesNotHang) {
  const Dataset d = indexed_dataset(500);
  LoaderOptions o;
  o.batch_size = 4;
  o.prefetch = 2;
  const auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < 20; ++k) {
    EpochLoader it(d, o, k);
    if (k % 2) {
      ASSERT_NE(it.next(), nullptr);  // sometimes consume one, sometimes none
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 5.0);
}

TEST(LoaderEpoch, EmptyDatasetEndsAtOnce) {
  Dataset d = indexed_dataset(10);
  d.images = d.images.narrow(0, 0, 0);
  d.labels = d.labels.narrow(0, 0, 0);
  EpochLoader it(d, LoaderOptions{}, 0);
  EXPECT_EQ(it.size(), 0);
  EXPECT_EQ(it.next(), nullptr);
}

TEST(LoaderEpoch, WorkerErrorsReachNext) {
  Dataset d = indexed_dataset(10);
  d.images = d.images.to(torch::kFloat32);  // not uint8: making a batch fails in the worker
  EpochLoader it(d, LoaderOptions{}, 0);
  EXPECT_THROW(it.next(), c10::Error);
  EXPECT_THROW(it.next(), c10::Error);
}
