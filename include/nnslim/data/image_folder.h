// Image-folder datasets in torchvision's ImageFolder convention: ROOT/<class>/**/<image>, the
// classes being the sorted names of ROOT's sub-folders, an image being a file whose extension
// (case-insensitive) is one of .jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp. A DIR with
// train/ and val/ (or test/) sub-folders gives both splits (val's classes are train's); a DIR
// with class folders only gives a training split (held-out images via --val-split).
#pragma once

#include "nnslim/data/dataset.h"

#include <string>
#include <vector>

namespace nnslim {

struct ImageFile {
  std::string path;
  int64_t label = 0;
};

struct ImageFolderScan {
  std::string root;
  std::vector<std::string> classes;     // sorted folder names
  std::vector<ImageFile> images;        // by class, then by path
  std::vector<int64_t> per_class;       // image counts, by class
  std::vector<std::string> non_images;  // files skipped for their extension
};

// True for the extensions torchvision's ImageFolder accepts (case-insensitive).
bool has_image_extension(const std::string& path);

// Scans ROOT. With `classes` empty, the classes are ROOT's sorted sub-folders and each must hold
// an image; otherwise these are the classes (a val split labelled as train), a folder not among
// them is an error and a class may be missing. RequestError naming the folder: ROOT missing or
// not a directory, no class folders, an empty class, an unknown class, no images.
ImageFolderScan scan_image_folder(const std::string& root,
                                  const std::vector<std::string>& classes = {});

struct ImageFolderOptions {
  int64_t image_size = 224;        // S: train crops and eval centre crops are S x S
  int64_t workers = 0;             // decoding threads (0 = the cores training does not use, >= 1)
  bool normalize_dataset = false;  // mean/std from the training split instead of ImageNet's
  bool cache = false;              // keep decoded images in memory (up to half the RAM)
  bool skip_bad_images = false;    // leave out unreadable images instead of stopping
  // Decode every training image up front. Off (evaluation): only the test images are checked,
  // and a DIR without val/ is the test split as a whole.
  bool check_train = true;
};

// The mean and std torchvision's ImageNet models are normalised with.
std::vector<float> imagenet_mean();
std::vector<float> imagenet_std();

// Loads DIR as an image folder: scans it (train = DIR/train, test = DIR/val or DIR/test when
// DIR/train exists; otherwise train = DIR and test empty), then decodes every image once in
// `workers` threads to find unreadable ones before any training: a corrupt, truncated or
// undecodable file stops with a RequestError naming it (all of them, up to 10), unless
// skip_bad_images, which leaves them out and says how many in `notes`. The datasets have a
// SampleSource (image_source.h), name "imagefolder", class_names, and mean/std (ImageNet's or
// the training split's, over its eval-transformed pixels).
DataSplits load_image_folder(const std::string& dir, const ImageFolderOptions& options,
                             std::vector<std::string>* notes = nullptr);

}  // namespace nnslim
