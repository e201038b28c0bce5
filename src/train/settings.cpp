#include "nnslim/train/settings.h"

#include "nnslim/data/image_folder.h"

#include "nnslim/core/error.h"
#include "nnslim/graph/shape.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <sstream>

namespace nnslim {

std::string number_text(double x) {
  for (int digits = 1;; ++digits) {
    std::ostringstream os;
    os.precision(digits);
    os << x;
    // 10, not 1e+01: exponents only for very small or large values.
    const bool exponent = os.str().find('e') != std::string::npos;
    const double a = std::fabs(x);
    const bool wants_exponent = a != 0 && (a < 1e-4 || a >= 1e15);
    if (digits >= 17 ||
        (std::strtod(os.str().c_str(), nullptr) == x && (!exponent || wants_exponent)))
      return os.str();
  }
}

namespace {

// ---- value kinds: each parses text into a field and prints it back ----------------------------

int64_t parse_integer(const std::string& key, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE)
    throw RequestError("--" + key + " expects an integer, got '" + v + "'");
  return x;
}

double parse_number(const std::string& key, const std::string& v) {
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !std::isfinite(x))
    throw RequestError("--" + key + " expects a number, got '" + v + "'");
  return x;
}

bool parse_flag(const std::string& key, const std::string& v) {
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  throw RequestError("--" + key + " takes no value (got '" + v + "')");
}

std::vector<int64_t> parse_integers(const std::string& key, const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0')
      throw RequestError("--" + key + " expects comma-separated integers, got '" + s + "'");
    out.push_back(v);
  }
  return out;
}

std::string integers_text(const std::vector<int64_t>& v) {
  std::string s;
  for (auto x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

// A table row for a field of each kind. `field` returns the member (of a const or mutable
// RunSettings), so one lambda serves both directions.
template <typename Get>
RunOption integer(const char* key, const char* metavar, const char* help, OptionGroup g,
                  bool shapes, Get field) {
  return {key,
          metavar,
          help,
          g,
          shapes,
          [=](RunSettings& s, const std::string& v) { field(s) = parse_integer(key, v); },
          [=](const RunSettings& s) { return std::to_string(field(s)); }};
}

template <typename Get>
RunOption number(const char* key, const char* metavar, const char* help, OptionGroup g, bool shapes,
                 Get field) {
  return {key,
          metavar,
          help,
          g,
          shapes,
          [=](RunSettings& s, const std::string& v) { field(s) = parse_number(key, v); },
          [=](const RunSettings& s) { return number_text(field(s)); }};
}

template <typename Get>
RunOption text(const char* key, const char* metavar, const char* help, OptionGroup g, bool shapes,
               Get field) {
  return {key,
          metavar,
          help,
          g,
          shapes,
          [=](RunSettings& s, const std::string& v) { field(s) = v; },
          [=](const RunSettings& s) { return std::string(field(s)); }};
}

// Text that must be one of `allowed` (refused by set(), naming the option and the choices).
template <typename Get>
RunOption one_of(const char* key, const char* metavar, const char* help, OptionGroup g, bool shapes,
                 std::vector<std::string> allowed, Get field) {
  RunOption o = text(key, metavar, help, g, shapes, field);
  o.set = [=](RunSettings& s, const std::string& v) {
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw RequestError(std::string("--") + key + ": '" + v + "' is not one of " + list);
    }
    field(s) = v;
  };
  return o;
}

// A flag; `inverted` for the --no-X flags of a setting that is on by default.
template <typename Get>
RunOption flag(const char* key, const char* help, OptionGroup g, bool shapes, bool inverted,
               Get field) {
  return {
      key,
      "",
      help,
      g,
      shapes,
      [=](RunSettings& s, const std::string& v) { field(s) = parse_flag(key, v) != inverted; },
      [=](const RunSettings& s) { return std::string(field(s) != inverted ? "true" : "false"); }};
}

std::vector<RunOption> make_table() {
  using G = OptionGroup;
  std::vector<RunOption> t = {
      // compression (after the method's training)
      integer(
          "finetune-epochs", "N", "fine-tuning epochs after the surgery", G::kCompress, true,
          [](auto& s) -> auto& { return s.finetune_epochs; }),
      number(
          "finetune-lr", "X", "fine-tuning learning rate (cosine decay)", G::kCompress, true,
          [](auto& s) -> auto& { return s.finetune_lr; }),
      integer(
          "recalibrate-bn", "N",
          "re-estimate BatchNorm statistics on N training batches right after the\n"
          "                            surgery (0 = off); helps where the surgery changed weights\n"
          "                            (magnitude, unify); reported as after_recalibration",
          G::kCompress, true, [](auto& s) -> auto& { return s.recalibrate_batches; }),
      flag(
          "no-latency", "skip latency measurements (faster)", G::kCompress, false, true,
          [](auto& s) -> auto& { return s.measure_latency; }),
      // data
      text(
          "dataset", "NAME",
          "dataset: fashion-mnist, mnist, cifar10, cifar100, synthetic (generated images of "
          "the model's input shape and classes: any model runs without data), or imagefolder "
          "(--data-dir DIR with train/<class>/*.jpg|png... and val/<class>/..., or class "
          "folders only)",
          G::kData, true, [](auto& s) -> auto& { return s.data.dataset; }),
      text(
          "data-dir", "DIR",
          "where the dataset files are (default: the dataset's standard place, e.g. "
          "/usr/share/datasets/fashion-mnist)",
          G::kData, false, [](auto& s) -> auto& { return s.data.data_dir; }),
      integer(
          "image-size", "S",
          "imagefolder: crop size; training takes RandomResizedCrop(S) + flip, evaluation\n"
          "                            resizes the short side to round(S*256/224) and centre-crops "
          "S\n"
          "                            (default 224, or the model's input size)",
          G::kData, true, [](auto& s) -> auto& { return s.data.image_size; }),
      one_of(
          "normalize", "KIND",
          "imagefolder: imagenet (torchvision's mean/std, default) or dataset (computed on\n"
          "                            the training images)",
          G::kTrainingData, true, {"imagenet", "dataset"},
          [](auto& s) -> auto& { return s.data.normalize; }),
      integer(
          "workers", "N",
          "imagefolder: image decoding threads (0 = the cores training does not use, >= 1)",
          G::kData, false, [](auto& s) -> auto& { return s.data.workers; }),
      flag(
          "cache", "imagefolder: keep decoded images in memory (up to half the RAM)", G::kData,
          false, false, [](auto& s) -> auto& { return s.data.cache; }),
      flag(
          "skip-bad-images",
          "imagefolder: leave out unreadable images (and say how many) instead of stopping",
          G::kData, true, false, [](auto& s) -> auto& { return s.data.skip_bad_images; }),
      integer(
          "limit-train", "N", "use only the first N training images (0 = all)", G::kTrainingData,
          true, [](auto& s) -> auto& { return s.data.limit_train; }),
      integer(
          "limit-test", "N", "evaluate on the first N test images (0 = all)", G::kData, true,
          [](auto& s) -> auto& { return s.data.limit_test; }),
      integer(
          "val-split", "N",
          "hold out the last N training images as a validation set for per-epoch evaluation\n"
          "                            (imagefolder: N images picked by a fixed seed; without "
          "val/\n"
          "                            they are also the test images)",
          G::kTrainingData, true, [](auto& s) -> auto& { return s.data.val_split; }),
      // training
      integer(
          "epochs", "N", "epochs to train", G::kTraining, true,
          [](auto& s) -> auto& { return s.train.epochs; }),
      integer(
          "batch-size", "B", "mini-batch size", G::kTraining, true,
          [](auto& s) -> auto& { return s.train.batch_size; }),
      number(
          "lr", "X", "initial learning rate", G::kTraining, true,
          [](auto& s) -> auto& { return s.train.schedule.base_lr; }),
      number(
          "momentum", "X", "SGD momentum", G::kTraining, true,
          [](auto& s) -> auto& { return s.train.momentum; }),
      flag(
          "nesterov", "use Nesterov momentum", G::kTraining, true, false,
          [](auto& s) -> auto& { return s.train.nesterov; }),
      number(
          "weight-decay", "X", "L2 weight decay", G::kTraining, true,
          [](auto& s) -> auto& { return s.train.weight_decay; }),
      text(
          "schedule", "KIND", "lr schedule: constant, step, multistep, cosine, grda", G::kTraining,
          true, [](auto& s) -> auto& { return s.train.schedule.kind; }),
      {"milestones", "E1,E2", "multistep: epochs where lr is multiplied by gamma", G::kTraining,
       true,
       [](RunSettings& s, const std::string& v) {
         s.train.schedule.milestones = parse_integers("milestones", v);
       },
       [](const RunSettings& s) { return integers_text(s.train.schedule.milestones); }},
      number(
          "gamma", "X", "step/multistep: lr factor", G::kTraining, true,
          [](auto& s) -> auto& { return s.train.schedule.gamma; }),
      integer(
          "step-size", "N", "step: epochs between lr drops", G::kTraining, true,
          [](auto& s) -> auto& { return s.train.schedule.step_size; }),
      number(
          "warmup-epochs", "X", "linear lr warm-up length in epochs", G::kTraining, true,
          [](auto& s) -> auto& { return s.train.schedule.warmup_epochs; }),
      {"seed", "S", "seed for weights, shuffling and augmentation", G::kTraining, true,
       [](RunSettings& s, const std::string& v) {
         s.train.seed = static_cast<uint64_t>(parse_integer("seed", v));
       },
       [](const RunSettings& s) { return std::to_string(static_cast<int64_t>(s.train.seed)); }},
      flag(
          "no-augment", "no random crop / flip", G::kTraining, true, true,
          [](auto& s) -> auto& { return s.train.augment; }),
      flag(
          "no-flip", "random crop only, no horizontal flip", G::kTraining, true, true,
          [](auto& s) -> auto& { return s.train.hflip; }),
      // runtime: may change between a run and its --resume
      text(
          "device", "DEV", "cpu, cuda or auto (cuda when available)", G::kRuntime, false,
          [](auto& s) -> auto& { return s.train.device; }),
      integer(
          "threads", "N", "CPU threads (0 = all cores)", G::kRuntime, false,
          [](auto& s) -> auto& { return s.threads; }),
      number(
          "checkpoint-minutes", "M",
          "also checkpoint inside an epoch every M minutes, so --resume after a kill loses at "
          "most that much (0 = at epoch ends only)",
          G::kRuntime, false, [](auto& s) -> auto& { return s.checkpoint_minutes; }),
      flag(
          "quiet", "print nothing while training", G::kRuntime, false, false,
          [](auto& s) -> auto& { return s.quiet; }),
      one_of(
          "dist-backend", "NAME",
          "under torchrun (or srun, PyTorchJob): c10d backend gloo, nccl or auto (nccl on "
          "CUDA where LibTorch has it, else gloo); one process ignores it",
          G::kRuntime, false, {"auto", "gloo", "nccl"},
          [](auto& s) -> auto& { return s.dist_backend; }),
  };
  return t;
}

}  // namespace

const std::vector<RunOption>& run_options() {
  static const std::vector<RunOption> table = make_table();
  return table;
}

const RunOption* find_run_option(const std::string& key) {
  for (const auto& o : run_options())
    if (o.key == key) return &o;
  return nullptr;
}

std::string known_datasets() {
  std::string names;
  for (const auto& n : dataset_names()) names += (names.empty() ? "" : ", ") + n;
  return names + ", imagefolder";
}

void check_dataset_name(const std::string& name) {
  if (name == "imagefolder") return;
  for (const auto& n : dataset_names())
    if (n == name) return;
  throw RequestError("--dataset: unknown dataset '" + name + "' (known: " + known_datasets() + ")");
}

namespace {
void check_data_limits(const DataSelection& f) {
  if (f.limit_train < 0) throw RequestError("--limit-train must be >= 0");
  if (f.limit_test < 0) throw RequestError("--limit-test must be >= 0");
  if (f.val_split < 0) throw RequestError("--val-split must be >= 0");
  if (f.image_size < 0) throw RequestError("--image-size must be >= 1");
  if (f.workers < 0) throw RequestError("--workers must be >= 0 (0 = the cores training leaves)");
  if (f.normalize != "imagenet" && f.normalize != "dataset")
    throw RequestError("--normalize: unknown '" + f.normalize + "' (known: imagenet, dataset)");
}
}  // namespace

void follow_model(DataSelection& data, const Graph& model) {
  data.synthetic_shape = model.input_shape;
  if (data.image_size == 0 && model.input_shape.size() == 3) data.image_size = model.input_shape[1];
  const Shape out = infer_shapes(model).at(model.output);
  data.synthetic_classes = out.size() == 1 ? out[0] : 0;
  if (data.synthetic_classes == 0) {  // not a classifier's [F] output: the classes it records
    auto it = model.meta.find("classes");
    if (it != model.meta.end())
      data.synthetic_classes = std::strtoll(it->second.c_str(), nullptr, 10);
  }
}

LoadedData load_data(const DataSelection& f) {
  check_data_limits(f);
  check_dataset_name(f.dataset);
  LoadedData d;
  DataSplits s;
  if (f.dataset == "imagefolder") {
    ImageFolderOptions o;
    o.image_size = f.image_size > 0 ? f.image_size : 224;
    o.workers = f.workers;
    o.normalize_dataset = f.normalize == "dataset";
    o.cache = f.cache;
    o.skip_bad_images = f.skip_bad_images;
    o.check_train = f.check_train;
    s = load_image_folder(f.data_dir, o, &d.notes);
    for (const auto& n : d.notes) std::cerr << "note: " << n << "\n";
  } else {
    s = f.dataset == "synthetic" && !f.synthetic_shape.empty()
            ? synthetic_for(f.synthetic_shape, std::max<int64_t>(f.synthetic_classes, 1))
            : load_dataset(f.dataset, f.data_dir);
  }
  d.train = take_first(s.train, f.limit_train);
  d.test = take_first(s.test, f.limit_test);
  if (f.val_split > 0) {
    if (f.val_split >= d.train.size())
      throw RequestError("--val-split " + std::to_string(f.val_split) +
                         " leaves no training images");
    std::tie(d.train, d.val) = split_validation(d.train, f.val_split);
    if (f.dataset == "imagefolder" && d.test.size() == 0) d.test = d.val;
  }
  return d;
}

void validate_settings(const RunSettings& s) {
  check_data_limits(s.data);  // before any work, not only when the data is read
  if (s.finetune_epochs < 0) throw RequestError("--finetune-epochs must be >= 0");
  if (!(s.finetune_lr > 0)) throw RequestError("--finetune-lr must be > 0");
  if (s.recalibrate_batches < 0)
    throw RequestError("--recalibrate-bn must be >= 0 (batches; 0 = off)");
  if (!(s.checkpoint_minutes >= 0))
    throw RequestError("--checkpoint-minutes must be >= 0 (0 = at epoch ends only)");
  try {
    s.train.validate();
  } catch (const c10::Error& e) {
    throw RequestError(e.what_without_backtrace());
  }
}

TrainOptions training_options(const RunSettings& s, const std::string& out_dir) {
  validate_settings(s);
  TrainOptions o = s.train;
  o.checkpoint_seconds = 60 * s.checkpoint_minutes;
  o.out_dir = out_dir;
  return o;
}

CompressOptions compression_options(const RunSettings& s, const std::string& out_dir, bool resume) {
  CompressOptions co;
  co.train = training_options(s, out_dir);
  co.finetune_epochs = s.finetune_epochs;
  co.finetune_lr = s.finetune_lr;
  co.recalibrate_batches = s.recalibrate_batches;
  co.measure_latency = s.measure_latency;
  co.resume = resume;
  return co;
}

std::vector<std::string> ineffective_options(const RunSettings& s,
                                             const std::set<std::string>& given,
                                             const std::string& what_trains) {
  std::vector<std::string> notes;
  if (s.data.dataset != "imagefolder")
    for (const char* o : {"image-size", "normalize", "workers", "cache", "skip-bad-images"})
      if (given.count(o))
        notes.push_back(std::string("--") + o +
                        " has no effect: only --dataset imagefolder uses it");
  if (s.train.epochs == 0) {
    for (const char* o : {"lr", "schedule", "warmup-epochs", "milestones", "gamma", "step-size"})
      if (given.count(o))
        notes.push_back(std::string("--") + o + " has no effect: --epochs is 0, so " + what_trains);
    return notes;
  }
  const std::string& k = s.train.schedule.kind;
  if (given.count("milestones") && k != "multistep")
    notes.push_back("--milestones has no effect with --schedule " + k +
                    " (only multistep uses it)");
  if (given.count("gamma") && k != "step" && k != "multistep")
    notes.push_back("--gamma has no effect with --schedule " + k +
                    " (only step and multistep use it)");
  if (given.count("step-size") && k != "step")
    notes.push_back("--step-size has no effect with --schedule " + k + " (only step uses it)");
  return notes;
}

Json result_settings(const RunSettings& s) {
  Json j = Json::object();
  for (const auto& o : run_options())
    if (o.shapes_result) j.set(o.key, o.get(s));
  return j;
}

}  // namespace nnslim
