// Image folders: scanning and class mapping, decoding (PNG colour types, grey/CMYK JPEG, DCT
// scaling, damaged files), torchvision's transform geometry, determinism across worker counts
// and resumed epochs, the errors, and a short training run through the CLI.
#include "nnslim/core/error.h"
#include "nnslim/data/image_decode.h"
#include "nnslim/data/image_folder.h"
#include "nnslim/data/image_source.h"
#include "nnslim/data/image_transforms.h"
#include "nnslim/data/loader.h"
#include "support/fixtures.h"
#include "support/image_files.h"

#include <gtest/gtest.h>
#include <png.h>
#include <torch/torch.h>
#include <turbojpeg.h>

#include <deque>
#include <filesystem>
#include <random>

namespace nnslim {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

// An RGB image of w x h whose pixel (x, y) is (x*7+c*50+seed) & 255 ... (deterministic).
std::vector<uint8_t> rgb_pattern(int w, int h, int seed) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        px[(y * w + x) * 3 + c] = static_cast<uint8_t>((x * 7 + y * 3 + c * 50 + seed) & 255);
  return px;
}

void png_rgb(const std::string& path, int w, int h, int seed) {
  testing::write_png(path, w, h, PNG_COLOR_TYPE_RGB, 8, rgb_pattern(w, h, seed));
}

std::string expect_request_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const RequestError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a RequestError: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no error";
  return "";
}

// A tree of train/{a_cat,b_dog,c_eel} and val/{a_cat,c_eel} with various sizes and formats.
void make_tree(const std::string& root) {
  for (const char* c : {"b_dog", "a_cat", "c_eel"}) fs::create_directories(root + "/train/" + c);
  fs::create_directories(root + "/train/a_cat/nested");
  fs::create_directories(root + "/val/a_cat");
  fs::create_directories(root + "/val/c_eel");
  png_rgb(root + "/train/a_cat/1.png", 40, 30, 1);
  png_rgb(root + "/train/a_cat/nested/2.PNG", 30, 50, 2);
  testing::write_jpeg(root + "/train/b_dog/1.JPG", 64, 48, TJPF_RGB, rgb_pattern(64, 48, 3));
  testing::write_jpeg(root + "/train/b_dog/2.jpeg", 33, 35, TJPF_GRAY,
                      std::vector<uint8_t>(33 * 35, 120));
  png_rgb(root + "/train/c_eel/1.png", 37, 41, 4);
  testing::write_bytes(root + "/train/c_eel/readme.txt", "not an image");
  png_rgb(root + "/val/a_cat/v.png", 36, 36, 5);
  png_rgb(root + "/val/c_eel/v.png", 50, 40, 6);
}

TEST(ImageFolderScan, ClassesAreSortedFoldersAndExtensionsAreCaseInsensitive) {
  TempDir t;
  make_tree(t.path);
  auto scan = scan_image_folder(t.path + "/train");
  EXPECT_EQ(scan.classes, (std::vector<std::string>{"a_cat", "b_dog", "c_eel"}));
  ASSERT_EQ(scan.images.size(), 5u);
  EXPECT_EQ(scan.per_class, (std::vector<int64_t>{2, 2, 1}));
  EXPECT_EQ(fs::path(scan.images[0].path).filename(), "1.png");
  EXPECT_EQ(fs::path(scan.images[1].path).filename(), "2.PNG");  // nested, still a_cat
  EXPECT_EQ(scan.images[1].label, 0);
  EXPECT_EQ(scan.images[2].label, 1);
  EXPECT_EQ(scan.images[4].label, 2);
  ASSERT_EQ(scan.non_images.size(), 1u);
  EXPECT_NE(scan.non_images[0].find("readme.txt"), std::string::npos);
  // val labelled with train's classes: c_eel is class 2 even though val has two classes.
  auto val = scan_image_folder(t.path + "/val", scan.classes);
  ASSERT_EQ(val.images.size(), 2u);
  EXPECT_EQ(val.images[1].label, 2);
  EXPECT_TRUE(has_image_extension("x/y.JpEg"));
  EXPECT_FALSE(has_image_extension("x/y.gif"));

  ImageFolderOptions o;
  o.image_size = 24;
  std::vector<std::string> notes;
  auto d = load_image_folder(t.path, o, &notes);
  EXPECT_EQ(d.train.size(), 5);
  EXPECT_EQ(d.test.size(), 2);
  EXPECT_EQ(d.train.classes, 3);
  EXPECT_EQ(d.test.class_names, scan.classes);
  EXPECT_EQ(d.train.image_shape(), (std::vector<int64_t>{3, 24, 24}));
  EXPECT_EQ(d.train.labels[4].item<int64_t>(), 2);
  EXPECT_EQ(d.train.mean, imagenet_mean());
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("ignored 1 files"), std::string::npos);
}

TEST(ImageFolderScan, ErrorsNameTheFolderOrFile) {
  TempDir t;
  std::string msg = expect_request_error([&] { scan_image_folder(t.path + "/nope"); });
  EXPECT_NE(msg.find("nope: no such directory"), std::string::npos) << msg;
  msg = expect_request_error([&] { scan_image_folder(t.path); });
  EXPECT_NE(msg.find("no class folders"), std::string::npos) << msg;

  make_tree(t.path);
  fs::create_directories(t.path + "/train/d_empty");
  testing::write_bytes(t.path + "/train/d_empty/notes.txt", "x");
  msg = expect_request_error([&] { load_image_folder(t.path, {}); });
  EXPECT_NE(msg.find("train/d_empty: class folder 'd_empty' holds no images"), std::string::npos)
      << msg;
  fs::remove_all(t.path + "/train/d_empty");

  fs::create_directories(t.path + "/val/z_unknown");
  png_rgb(t.path + "/val/z_unknown/1.png", 20, 20, 0);
  msg = expect_request_error([&] { load_image_folder(t.path, {}); });
  EXPECT_NE(msg.find("val/z_unknown: class 'z_unknown' is not among the training classes"),
            std::string::npos)
      << msg;
  fs::remove_all(t.path + "/val/z_unknown");

  msg = expect_request_error([&] { load_image_folder("", {}); });
  EXPECT_NE(msg.find("--data-dir"), std::string::npos) << msg;
}

TEST(ImageFolderBadImages, CorruptAndTruncatedFilesStopTheRunOrAreSkipped) {
  TempDir t;
  make_tree(t.path);
  testing::write_bytes(t.path + "/train/b_dog/corrupt.jpg", "\xFF\xD8\xFFgarbage garbage");
  const std::string good = testing::read_bytes(t.path + "/train/b_dog/1.JPG");
  testing::write_bytes(t.path + "/train/c_eel/truncated.jpg", good.substr(0, good.size() / 2));
  ImageFolderOptions o;
  o.image_size = 16;
  std::string msg = expect_request_error([&] { load_image_folder(t.path, o); });
  EXPECT_NE(msg.find("2 images cannot be read"), std::string::npos) << msg;
  EXPECT_NE(msg.find("b_dog/corrupt.jpg: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("c_eel/truncated.jpg: corrupt or truncated JPEG"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--skip-bad-images"), std::string::npos) << msg;

  o.skip_bad_images = true;
  std::vector<std::string> notes;
  auto d = load_image_folder(t.path, o, &notes);
  EXPECT_EQ(d.train.size(), 5);
  bool said = false;
  for (const auto& n : notes)
    said = said || n.find("skipped 2 unreadable images") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(ImageDecode, PngColourTypesBecomeRgbAsPilConvertDoes) {
  TempDir t;
  const int w = 5, h = 3;
  // Grey 8-bit.
  std::vector<uint8_t> grey(w * h);
  for (int i = 0; i < w * h; ++i) grey[i] = static_cast<uint8_t>(i * 10);
  testing::write_png(t.file("g.png"), w, h, PNG_COLOR_TYPE_GRAY, 8, grey);
  RgbImage g = read_image(t.file("g.png"));
  ASSERT_EQ(g.width, w);
  ASSERT_EQ(g.height, h);
  for (int i = 0; i < w * h; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(g.pixels[3 * i + c], grey[i]);
  // RGBA: alpha dropped, colours kept (not composited).
  std::vector<uint8_t> rgba(w * h * 4);
  for (int i = 0; i < w * h; ++i) {
    rgba[4 * i] = 200;
    rgba[4 * i + 1] = static_cast<uint8_t>(i);
    rgba[4 * i + 2] = 7;
    rgba[4 * i + 3] = static_cast<uint8_t>(i * 15);
  }
  testing::write_png(t.file("a.png"), w, h, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba);
  RgbImage a = read_image(t.file("a.png"));
  for (int i = 0; i < w * h; ++i) {
    EXPECT_EQ(a.pixels[3 * i], 200);
    EXPECT_EQ(a.pixels[3 * i + 1], i);
    EXPECT_EQ(a.pixels[3 * i + 2], 7);
  }
  // Palette.
  std::vector<uint8_t> idx(w * h);
  for (int i = 0; i < w * h; ++i) idx[i] = static_cast<uint8_t>(i % 2);
  testing::write_png(t.file("p.png"), w, h, PNG_COLOR_TYPE_PALETTE, 8, idx,
                     {10, 20, 30, 250, 0, 5});
  RgbImage p = read_image(t.file("p.png"));
  EXPECT_EQ(p.pixels[0], 10);
  EXPECT_EQ(p.pixels[2], 30);
  EXPECT_EQ(p.pixels[3], 250);
  EXPECT_EQ(p.pixels[5], 5);
  // 16-bit RGB: scaled to 8 bits (the high byte, within 1).
  std::vector<uint8_t> s16(w * h * 6);
  for (int i = 0; i < w * h * 3; ++i) {
    s16[2 * i] = static_cast<uint8_t>(i * 5);
    s16[2 * i + 1] = 0x80;
  }
  testing::write_png(t.file("16.png"), w, h, PNG_COLOR_TYPE_RGB, 16, s16);
  RgbImage b16 = read_image(t.file("16.png"));
  for (int i = 0; i < w * h * 3; ++i) EXPECT_NEAR(b16.pixels[i], (i * 5) & 255, 1) << i;
}

TEST(ImageDecode, JpegGreyCmykAndDctScaling) {
  TempDir t;
  testing::write_jpeg(t.file("g.jpg"), 16, 8, TJPF_GRAY, std::vector<uint8_t>(16 * 8, 90));
  RgbImage g = read_image(t.file("g.jpg"));
  ASSERT_EQ(g.width, 16);
  for (size_t i = 0; i < g.pixels.size(); ++i) EXPECT_NEAR(g.pixels[i], 90, 2);
  // CMYK (inverted, Adobe convention as TurboJPEG writes it): R = C*K/255.
  std::vector<uint8_t> cmyk(16 * 16 * 4);
  for (size_t i = 0; i < cmyk.size(); i += 4) {
    cmyk[i] = 200;
    cmyk[i + 1] = 100;
    cmyk[i + 2] = 255;
    cmyk[i + 3] = 128;
  }
  testing::write_jpeg(t.file("c.jpg"), 16, 16, TJPF_CMYK, cmyk, 100);
  RgbImage c = read_image(t.file("c.jpg"));
  ASSERT_EQ(c.width, 16);
  EXPECT_NEAR(c.pixels[0], 200 * 128 / 255, 3);
  EXPECT_NEAR(c.pixels[1], 100 * 128 / 255, 3);
  EXPECT_NEAR(c.pixels[2], 128, 3);
  // DCT scaling: 400x300 with short side >= 100 -> the 3/8 factor, 150x113.
  testing::write_jpeg(t.file("big.jpg"), 400, 300, TJPF_RGB, rgb_pattern(400, 300, 0));
  RgbImage full = read_image(t.file("big.jpg"));
  EXPECT_EQ(full.width, 400);
  RgbImage small = read_image(t.file("big.jpg"), 100);
  EXPECT_EQ(small.width, 150);
  EXPECT_EQ(small.height, 113);
  EXPECT_EQ(read_image(t.file("big.jpg"), 300).height, 300);  // no factor below 1 keeps 300
  // Unknown bytes and an empty file name the file.
  testing::write_bytes(t.file("x.png"), "hello");
  try {
    read_image(t.file("x.png"));
    ADD_FAILURE();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.png: not an image"), std::string::npos) << e.what();
  }
}

// A scripted random source: uniform() returns the listed values in turn (as fractions of
// [lo, hi)), below(n) the listed values.
struct Script {
  std::deque<double> u;
  std::deque<int64_t> b;
  CropRandom random() {
    return {[this](double lo, double hi) {
              double f = u.front();
              u.pop_front();
              return lo + f * (hi - lo);
            },
            [this](int64_t n) {
              int64_t v = b.front();
              b.pop_front();
              EXPECT_LT(v, n);
              return v;
            }};
  }
};

TEST(ImageTransforms, RandomResizedCropMatchesTorchvisionByHand) {
  // h=100, w=200; scale fraction f gives area 20000*(0.08 + 0.92 f). Aim at 10000 (ratio 1):
  // f = (0.5 - 0.08) / 0.92, ratio fraction 0.5 (log ratio 0) -> 100 x 100, top below(1)=0,
  // left below(101) scripted 37.
  Script s;
  s.u = {(0.5 - 0.08) / 0.92, 0.5};
  s.b = {0, 37};
  EXPECT_EQ(random_resized_crop_box(100, 200, s.random()), (CropBox{0, 37, 100, 100}));
  // Python rounds half to even: area 6.25 of a 10x10 image, ratio 1 -> sqrt = 2.5 -> 2.
  Script r;
  r.u = {(0.0625 - 0.08) / 0.92, 0.5};
  r.b = {5, 6};
  EXPECT_EQ(random_resized_crop_box(10, 10, r.random()), (CropBox{5, 6, 2, 2}));
  // Ten failures (the whole area at ratio 4/3 never fits a 300x100 image: w=200) -> fallback:
  // in_ratio 1/3 < 3/4 -> w=100, h=round(100/0.75)=133, centred: top=(300-133)//2=83.
  Script f;
  for (int i = 0; i < 10; ++i) {
    f.u.push_back(1.0);
    f.u.push_back(1.0);
  }
  EXPECT_EQ(random_resized_crop_box(300, 100, f.random()), (CropBox{83, 0, 133, 100}));
  EXPECT_TRUE(f.u.empty());
  // Wide image fallback: 100x400, in_ratio 4 > 4/3 -> h=100, w=round(133.33)=133, left 133.
  Script wide;
  for (int i = 0; i < 10; ++i) {
    wide.u.push_back(1.0);
    wide.u.push_back(0.0);  // ratio 3/4: h = round(sqrt(40000/0.75)) = 231 > 100
  }
  EXPECT_EQ(random_resized_crop_box(100, 400, wide.random()), (CropBox{0, 133, 100, 133}));
}

TEST(ImageTransforms, EvalGeometryAndBilinearMatchTorch) {
  EXPECT_EQ(eval_resize_size(224), 256);
  EXPECT_EQ(eval_resize_size(32), 37);  // 36.57
  EXPECT_EQ(resize_short_side(375, 500, 256), (std::pair<int64_t, int64_t>{256, 341}));
  EXPECT_EQ(resize_short_side(500, 375, 256), (std::pair<int64_t, int64_t>{341, 256}));
  // (341-224)/2 = 58.5 rounds to 58 (half to even), as torchvision's CenterCrop.
  EXPECT_EQ(center_crop_box(256, 341, 224, 224), (CropBox{16, 58, 224, 224}));

  RgbImage img;
  img.width = 23;
  img.height = 17;
  img.pixels = rgb_pattern(23, 17, 9);
  auto t = torch::from_blob(img.pixels.data(), {17, 23, 3}, torch::kUInt8)
               .permute({2, 0, 1})
               .to(torch::kFloat)
               .unsqueeze(0);
  namespace F = torch::nn::functional;
  auto interp = [](const torch::Tensor& x, int64_t h, int64_t w) {
    return F::interpolate(x, F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{h, w})
                                 .mode(torch::kBilinear)
                                 .align_corners(false));
  };
  for (auto [box, oh, ow] : std::vector<std::tuple<CropBox, int64_t, int64_t>>{
           {{0, 0, 17, 23}, 9, 31}, {{3, 5, 10, 7}, 16, 16}, {{1, 2, 15, 20}, 8, 5}}) {
    std::vector<float> out(3 * oh * ow);
    resize_bilinear(img, box, oh, ow, out.data());
    auto ref = interp(t.narrow(2, box.top, box.height).narrow(3, box.left, box.width), oh, ow);
    auto mine = torch::from_blob(out.data(), {1, 3, oh, ow});
    EXPECT_LT(testing::max_abs_diff(mine, ref), 1e-3) << oh << "x" << ow;
  }
  // Eval: resize short side 17 -> 37 (long side int(37*23/17) = 50), centre crop 32.
  std::vector<float> ev(3 * 32 * 32);
  eval_transform(img, 32, ev.data());
  auto ref = interp(t, 37, 50).narrow(2, 2, 32).narrow(3, 9, 32);  // top round(2.5)=2, left 9
  EXPECT_LT(testing::max_abs_diff(torch::from_blob(ev.data(), {1, 3, 32, 32}), ref), 1e-3);
}

TEST(ImageFolderLoader, BatchesAreTheSameForAnyWorkerCountAndResumeExactly) {
  TempDir t;
  for (int c = 0; c < 2; ++c) {
    fs::create_directories(t.path + "/k" + std::to_string(c));
    for (int i = 0; i < 7; ++i)
      png_rgb(t.path + "/k" + std::to_string(c) + "/" + std::to_string(i) + ".png", 20 + 3 * i,
              18 + 2 * i, c * 10 + i);
  }
  auto load = [&](int64_t workers, bool cache) {
    ImageFolderOptions o;
    o.image_size = 16;
    o.workers = workers;
    o.cache = cache;
    return load_image_folder(t.path, o).train;
  };
  Dataset one = load(1, false), three = load(3, false), cached = load(4, true);
  ASSERT_EQ(one.size(), 14);
  LoaderOptions lo;
  lo.batch_size = 4;
  lo.augment = true;
  lo.seed = 11;
  BatchMaker m1(one, lo), m3(three, lo), mc(cached, lo);
  for (int64_t epoch : {0, 1}) {
    auto order = m1.order(epoch);
    for (int64_t b = 0; b < m1.batches_per_epoch(); ++b) {
      Batch a = m1.make(order, b, epoch), c = m3.make(order, b, epoch),
            d = mc.make(order, b, epoch);
      EXPECT_TRUE(torch::equal(a.x, c.x)) << epoch << " " << b;
      EXPECT_TRUE(torch::equal(a.x, d.x)) << epoch << " " << b;
      EXPECT_TRUE(torch::equal(a.y, c.y));
    }
  }
  // Another epoch draws other crops; eval batches have no randomness.
  auto o0 = m1.order(0);
  EXPECT_FALSE(torch::equal(m1.make(o0, 0, 0).x, m1.make(o0, 0, 1).x));
  // Resumed inside the epoch: the loader started at batch 2 delivers batch 2 of the full pass.
  EpochLoader full(three, lo, 1), resumed(three, lo, 1, 2);
  std::vector<Batch> all;
  while (auto b = full.next()) all.push_back(*b);
  auto first = resumed.next();
  ASSERT_TRUE(first);
  EXPECT_TRUE(torch::equal(first->x, all.at(2).x));
  EXPECT_TRUE(torch::equal(first->y, all.at(2).y));
  // Normalised: ImageNet mean/std applied (a pixel 0..255 maps into [-2.2, 2.7]).
  EXPECT_LE(all[0].x.max().item<float>(), 2.65f);
  EXPECT_GE(all[0].x.min().item<float>(), -2.12f);
  // The val split is a fixed-seed choice, the same every time, covering both classes here.
  auto [rest, val] = split_validation(one, 4);
  auto [rest2, val2] = split_validation(three, 4);
  EXPECT_EQ(rest.size(), 10);
  EXPECT_TRUE(torch::equal(val.labels, val2.labels));
  // --normalize dataset: the statistics of the eval-transformed images.
  ImageFolderOptions o;
  o.image_size = 16;
  o.normalize_dataset = true;
  auto stats = load_image_folder(t.path, o).train;
  ASSERT_EQ(stats.mean.size(), 3u);
  EXPECT_NE(stats.mean, imagenet_mean());
  EXPECT_GT(stats.std[0], 0.1f);
}

// Three classes told apart by a pattern: horizontal stripes, vertical stripes, a checkerboard,
// each with random colours, period and phase; 32x32 PNGs and JPEGs.
void make_pattern_tree(const std::string& root, int per_class, int seed) {
  std::mt19937 rng(seed);
  const char* names[] = {"checker", "horizontal", "vertical"};
  for (int c = 0; c < 3; ++c) {
    fs::create_directories(root + "/" + names[c]);
    for (int i = 0; i < per_class; ++i) {
      const int period = 4 + static_cast<int>(rng() % 5), phase = static_cast<int>(rng() % 8);
      uint8_t fg[3], bg[3];
      for (int k = 0; k < 3; ++k) {
        fg[k] = static_cast<uint8_t>(rng() % 100);
        bg[k] = static_cast<uint8_t>(155 + rng() % 100);
      }
      std::vector<uint8_t> px(32 * 32 * 3);
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) {
          const bool h = ((y + phase) / period) % 2, v = ((x + phase) / period) % 2;
          const bool on = c == 0 ? (h != v) : c == 1 ? h : v;
          for (int k = 0; k < 3; ++k) px[(y * 32 + x) * 3 + k] = on ? fg[k] : bg[k];
        }
      const std::string base = root + "/" + names[c] + "/" + std::to_string(i);
      if (i % 2)
        testing::write_jpeg(base + ".jpg", 32, 32, TJPF_RGB, px, 95);
      else
        testing::write_png(base + ".png", 32, 32, PNG_COLOR_TYPE_RGB, 8, px);
    }
  }
}

TEST(ImageFolderCli, TrainsEvaluatesAndKeepsClassNames) {
  TempDir t;
  make_pattern_tree(t.path + "/data/train", 60, 1);
  make_pattern_tree(t.path + "/data/val", 20, 2);
  std::string out;
  const std::string run = t.path + "/run";
  ASSERT_EQ(testing::run_cli("train --model lenet5 --dataset imagefolder --data-dir " + t.path +
                                 "/data --image-size 32 --epochs 6 --batch-size 16 --lr 0.05 "
                                 "--schedule cosine --workers 2 --threads 1 --no-latency --quiet "
                                 "--out " +
                                 run,
                             &out),
            0)
      << out;
  ASSERT_EQ(testing::run_cli("eval " + run + "/model.nnslim --dataset imagefolder --data-dir " +
                                 t.path + "/data --json",
                             &out),
            0)
      << out;
  const auto j = Json::parse(out.substr(out.find('{')));
  EXPECT_EQ(j.get("examples").integer(), 60);
  EXPECT_GT(j.get("top1").num(), 80.0) << out;  // chance: 33%
  ASSERT_EQ(testing::run_cli("info " + run + "/model.nnslim", &out), 0) << out;
  EXPECT_NE(out.find("classes (3): 0=checker 1=horizontal 2=vertical"), std::string::npos) << out;
  // A folder of other classes is refused with the class that differs.
  make_pattern_tree(t.path + "/other/zzz", 2, 3);
  fs::rename(t.path + "/other/zzz/checker", t.path + "/other/zzz/aaa");
  EXPECT_EQ(testing::run_cli("eval " + run + "/model.nnslim --dataset imagefolder --data-dir " +
                                 t.path + "/other/zzz",
                             &out),
            2)
      << out;
  // A DIR without images, and a corrupt file: clear errors, exit 2.
  fs::create_directories(t.path + "/nothing");
  EXPECT_EQ(testing::run_cli("train --model lenet5 --dataset imagefolder --data-dir " + t.path +
                                 "/nothing --image-size 32 --epochs 1 --out " + t.path + "/r2",
                             &out),
            2);
  EXPECT_NE(out.find("no class folders"), std::string::npos) << out;
  testing::write_bytes(t.path + "/data/train/checker/bad.png", "\x89PNG\r\n\x1A\nbroken");
  EXPECT_EQ(testing::run_cli("train --model lenet5 --dataset imagefolder --data-dir " + t.path +
                                 "/data --image-size 32 --epochs 1 --out " + t.path + "/r3",
                             &out),
            2);
  EXPECT_NE(out.find("checker/bad.png: "), std::string::npos) << out;
}

}  // namespace
}  // namespace nnslim
