#include "nnslim/data/image_folder.h"

#include "nnslim/core/error.h"
#include "nnslim/data/image_source.h"
#include "nnslim/data/image_transforms.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>

namespace nnslim {
namespace fs = std::filesystem;

namespace {
std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Files under a class folder, recursively (symlinks followed, as os.walk(followlinks=True)).
std::vector<std::string> files_under(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec);
  if (ec) throw RequestError(dir.string() + ": cannot read the folder (" + ec.message() + ")");
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw RequestError(dir.string() + ": cannot read the folder (" + ec.message() + ")");
    if (it->is_regular_file(ec)) out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

int64_t half_the_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page / 2 : int64_t(1) << 30;
}

Dataset make_split(const ImageFolderScan& scan, const ImageFolderOptions& o) {
  Dataset d;
  d.name = "imagefolder";
  d.classes = static_cast<int64_t>(scan.classes.size());
  d.class_names = scan.classes;
  std::vector<int64_t> labels;
  labels.reserve(scan.images.size());
  for (const auto& f : scan.images) labels.push_back(f.label);
  d.labels = torch::tensor(labels, torch::kInt64);
  d.source = std::make_shared<ImageSource>(scan.images, o.image_size, o.workers,
                                           o.cache ? half_the_memory() : 0);
  return d;
}

// Decodes every image of the split once (in the source's workers) and lists those that fail.
std::vector<std::string> unreadable(const ImageSource& s) {
  std::vector<std::string> bad;
  std::mutex mu;
  s.parallel(s.size(), [&](int64_t i) {
    try {
      s.decoded(i);
    } catch (const c10::Error& e) {
      std::lock_guard<std::mutex> lock(mu);
      bad.push_back(e.what_without_backtrace());
    }
  });
  std::sort(bad.begin(), bad.end());
  return bad;
}

// Drops the unreadable images of `scan` (their paths lead the messages) or refuses; true when
// images were dropped.
bool handle_bad(ImageFolderScan& scan, const std::vector<std::string>& bad,
                const ImageFolderOptions& o, std::vector<std::string>* notes) {
  if (bad.empty()) return false;
  if (!o.skip_bad_images) {
    std::string msg = scan.root + ": " + std::to_string(bad.size()) +
                      (bad.size() == 1 ? " image cannot be read" : " images cannot be read");
    for (size_t i = 0; i < std::min<size_t>(bad.size(), 10); ++i) msg += "\n  " + bad[i];
    if (bad.size() > 10) msg += "\n  ...";
    throw RequestError(msg + "\n(pass --skip-bad-images to leave them out)");
  }
  std::set<std::string> drop;
  for (const auto& f : scan.images)
    for (const auto& m : bad)
      if (m.compare(0, f.path.size() + 1, f.path + ":") == 0) drop.insert(f.path);
  std::vector<ImageFile> kept;
  for (const auto& f : scan.images)
    if (!drop.count(f.path)) kept.push_back(f);
  scan.images = std::move(kept);
  std::fill(scan.per_class.begin(), scan.per_class.end(), 0);
  for (const auto& f : scan.images) ++scan.per_class[f.label];
  if (notes)
    notes->push_back(scan.root + ": skipped " + std::to_string(bad.size()) +
                     (bad.size() == 1 ? " unreadable image" : " unreadable images") +
                     " (first: " + bad.front() + ")");
  return true;
}

// Mean and std per channel of the eval-transformed training images, in image order (the same
// numbers whatever the number of workers).
void dataset_statistics(const ImageSource& s, std::vector<float>& mean, std::vector<float>& std) {
  const int64_t n = s.size(), size = s.image_shape()[1], hw = size * size;
  std::vector<double> sums(6 * n, 0.0);
  s.parallel(n, [&](int64_t i) {
    std::vector<float> px(3 * hw);
    eval_transform(*s.decoded(i), size, px.data());
    for (int c = 0; c < 3; ++c)
      for (int64_t p = 0; p < hw; ++p) {
        const double v = px[c * hw + p] / 255.0;
        sums[6 * i + c] += v;
        sums[6 * i + 3 + c] += v * v;
      }
  });
  mean.assign(3, 0.f);
  std.assign(3, 0.f);
  for (int c = 0; c < 3; ++c) {
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < n; ++i) {
      s1 += sums[6 * i + c];
      s2 += sums[6 * i + 3 + c];
    }
    const double count = static_cast<double>(n) * hw, m = s1 / count;
    mean[c] = static_cast<float>(m);
    std[c] = static_cast<float>(std::sqrt(std::max(s2 / count - m * m, 1e-12)));
  }
}
}  // namespace

bool has_image_extension(const std::string& path) {
  static const std::set<std::string> ext = {".jpg", ".jpeg", ".png",  ".ppm", ".bmp",
                                            ".pgm", ".tif",  ".tiff", ".webp"};
  return ext.count(lower(fs::path(path).extension().string())) > 0;
}

std::vector<float> imagenet_mean() { return {0.485f, 0.456f, 0.406f}; }
std::vector<float> imagenet_std() { return {0.229f, 0.224f, 0.225f}; }

ImageFolderScan scan_image_folder(const std::string& root,
                                  const std::vector<std::string>& classes) {
  std::error_code ec;
  if (!fs::exists(root, ec)) throw RequestError(root + ": no such directory");
  if (!fs::is_directory(root, ec)) throw RequestError(root + ": not a directory");
  ImageFolderScan scan;
  scan.root = root;
  std::vector<std::string> folders;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory()) folders.push_back(e.path().filename().string());
  if (ec) throw RequestError(root + ": cannot read the folder (" + ec.message() + ")");
  std::sort(folders.begin(), folders.end());
  if (folders.empty())
    throw RequestError(root + ": no class folders (expected " + root +
                       "/<class>/<image>, or train/ and val/ folders holding them)");
  const bool given = !classes.empty();
  scan.classes = given ? classes : folders;
  scan.per_class.assign(scan.classes.size(), 0);
  for (const auto& folder : folders) {
    const auto it = std::find(scan.classes.begin(), scan.classes.end(), folder);
    if (it == scan.classes.end())
      throw RequestError(root + "/" + folder + ": class '" + folder +
                         "' is not among the training classes");
    const auto label = static_cast<int64_t>(it - scan.classes.begin());
    for (auto& path : files_under(fs::path(root) / folder)) {
      if (!has_image_extension(path)) {
        scan.non_images.push_back(std::move(path));
        continue;
      }
      scan.images.push_back({std::move(path), label});
      ++scan.per_class[label];
    }
    if (!given && scan.per_class[label] == 0)
      throw RequestError(root + "/" + folder + ": class folder '" + folder +
                         "' holds no images (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp)");
  }
  if (scan.images.empty()) throw RequestError(root + ": no images in its class folders");
  // Sorted by class, then path: torchvision's make_dataset order.
  std::stable_sort(scan.images.begin(), scan.images.end(),
                   [](const ImageFile& a, const ImageFile& b) { return a.label < b.label; });
  return scan;
}

DataSplits load_image_folder(const std::string& dir, const ImageFolderOptions& o,
                             std::vector<std::string>* notes) {
  if (o.image_size < 1)
    throw RequestError("--image-size must be >= 1, got " + std::to_string(o.image_size));
  if (o.workers < 0) throw RequestError("--workers must be >= 0 (0 = the cores training leaves)");
  if (dir.empty()) throw RequestError("--dataset imagefolder needs --data-dir DIR");
  std::error_code ec;
  const bool split = fs::is_directory(fs::path(dir) / "train", ec);
  ImageFolderScan train = scan_image_folder(split ? (fs::path(dir) / "train").string() : dir);
  std::optional<ImageFolderScan> test;
  if (split) {
    for (const char* name : {"val", "test"})
      if (fs::is_directory(fs::path(dir) / name, ec)) {
        test = scan_image_folder((fs::path(dir) / name).string(), train.classes);
        break;
      }
  }
  for (const ImageFolderScan* s : {&train, test ? &*test : nullptr})
    if (s && notes && !s->non_images.empty())
      notes->push_back(s->root + ": ignored " + std::to_string(s->non_images.size()) +
                       " files without an image extension (first: " + s->non_images.front() + ")");

  DataSplits out;
  out.train = make_split(train, o);
  // Evaluation only (check_train off) of a folder without val/: the whole folder is the test.
  const bool whole_is_test = !test && !o.check_train;
  if (o.check_train || whole_is_test) {
    if (handle_bad(train, unreadable(static_cast<const ImageSource&>(*out.train.source)), o,
                   notes)) {
      for (size_t c = 0; c < train.classes.size(); ++c)
        if (train.per_class[c] == 0)
          throw RequestError(train.root + "/" + train.classes[c] +
                             ": no readable images left in class '" + train.classes[c] + "'");
      out.train = make_split(train, o);  // cached images are decoded again: rare, and simple
    }
  }
  if (test) {
    out.test = make_split(*test, o);
    if (handle_bad(*test, unreadable(static_cast<const ImageSource&>(*out.test.source)), o,
                   notes)) {
      if (test->images.empty()) throw RequestError(test->root + ": no readable images");
      out.test = make_split(*test, o);
    }
  } else if (whole_is_test) {
    out.test = out.train;
  } else {
    out.test = out.train;  // the same classes, no examples
    out.test.labels = torch::empty({0}, torch::kInt64);
    out.test.source = out.train.source->subset({});
  }
  if (o.normalize_dataset) {
    dataset_statistics(static_cast<const ImageSource&>(*out.train.source), out.train.mean,
                       out.train.std);
  } else {
    out.train.mean = imagenet_mean();
    out.train.std = imagenet_std();
  }
  out.test.mean = out.train.mean;
  out.test.std = out.train.std;
  return out;
}

}  // namespace nnslim
