// What a user chooses about a training or compression run -- data, training, fine-tuning and
// runtime -- and the one table that declares each of those options: its name, value, help text
// and where it lives. The CLI makes its flags from the table, recipes validate and apply their
// keys with it, and a run records from it the options that shaped its result (run.json), so an
// option is declared once and read the same way everywhere.
#pragma once

#include "nnslim/core/json.h"
#include "nnslim/data/dataset.h"
#include "nnslim/train/compress.h"
#include "nnslim/train/trainer.h"

#include <functional>
#include <set>
#include <string>
#include <vector>

namespace nnslim {

// Which data a run reads.
struct DataSelection {
  std::string dataset = "fashion-mnist";  // a name of dataset_names()
  std::string data_dir;                   // "" = the dataset's standard place
  int64_t limit_train = 0;                // the first N training images (0 = all)
  int64_t limit_test = 0;                 // the first N test images (0 = all)
  int64_t val_split = 0;                  // the last N training images held out (0 = none)
  // What "synthetic" generates: images of this [C, H, W] shape in this many classes (empty and
  // 0: 1x32x32 in 10 classes). follow_model sets them from the model the data is for.
  std::vector<int64_t> synthetic_shape;
  int64_t synthetic_classes = 0;
  // Image folders (--dataset imagefolder; data/image_folder.h).
  int64_t image_size = 0;              // crop size S (0 = the model's input size, else 224)
  std::string normalize = "imagenet";  // "imagenet" or "dataset" (the training split's)
  int64_t workers = 0;                 // decoding threads (0 = the cores training leaves)
  bool cache = false;                  // decoded images kept in memory
  bool skip_bad_images = false;        // unreadable images left out instead of stopping
  bool check_train = true;             // decode the training images up front (eval: false)
};

struct LoadedData {
  Dataset train, test, val;        // val is empty unless val_split > 0
  std::vector<std::string> notes;  // what loading left out (image folders), for the user
};
// Throws RequestError for an unknown name or impossible limits; c10::Error for unreadable files.
// An image folder without val/ uses its --val-split images as the test split too. Prints the
// notes of loading to stderr.
LoadedData load_data(const DataSelection& data);
void check_dataset_name(const std::string& name);  // RequestError listing the known names
// Makes "synthetic" data follow `model`: its input shape and its class count (the width of its
// output), so any model -- an imported 3x224x224 one with 1000 classes -- runs without data.
void follow_model(DataSelection& data, const Graph& model);
std::string known_datasets();  // "fashion-mnist, mnist, ..."

struct RunSettings {
  DataSelection data;
  TrainOptions train;                 // its device defaults to "auto" here
  int64_t finetune_epochs = 0;        // compression: fine-tuning epochs after the surgery
  double finetune_lr = 0.01;          // compression: cosine from this rate
  int64_t recalibrate_batches = 0;    // compression: BN statistics re-estimated on N batches
  bool measure_latency = true;        // compression: latency in summary.json
  int64_t threads = 0;                // CPU threads (0 = all cores)
  double checkpoint_minutes = 10;     // checkpoints inside an epoch this often (0 = at epoch ends)
  bool quiet = false;                 // no progress output
  std::string dist_backend = "auto";  // launched by torchrun & co.: gloo, nccl or auto
  RunSettings() { train.device = "auto"; }
};

// Where an option belongs: the verbs offer the groups they use, in this order.
enum class OptionGroup {
  kCompress,      // fine-tuning, BN recalibration, latency: compress only
  kData,          // every verb that reads data
  kTrainingData,  // data options that only a verb that trains can use (limits, validation)
  kTraining,
  kRuntime,
};

struct RunOption {
  std::string key;      // the flag without "--"; also the recipe key
  std::string metavar;  // "" = a flag, given without a value
  std::string help;
  OptionGroup group;
  bool shapes_result;  // recorded in run.json: a --resume must give the same value
  // Parses text into the settings (flags: "true"/"false"); throws RequestError naming --key.
  std::function<void(RunSettings&, const std::string&)> set;
  // The value as text that set() reads back exactly.
  std::function<std::string(const RunSettings&)> get;
  bool is_flag() const { return metavar.empty(); }
};

// The table, in the order the help lists it.
const std::vector<RunOption>& run_options();
const RunOption* find_run_option(const std::string& key);  // nullptr if none

// Checks the settings as a whole (ranges, the schedule, the device); throws RequestError naming
// the option.
void validate_settings(const RunSettings& s);

// The trainer's options for these settings, writing into out_dir ("" = no files). Progress
// output is the caller's to set.
TrainOptions training_options(const RunSettings& s, const std::string& out_dir);
// The compression pipeline's options (training with the method, then fine-tuning).
CompressOptions compression_options(const RunSettings& s, const std::string& out_dir, bool resume);

// The options in `given` that cannot change this run (an --lr when nothing trains, --milestones
// without the multistep schedule): one sentence each. `what_trains` completes "--epochs is 0,
// so ..." ("the model does not train").
std::vector<std::string> ineffective_options(const RunSettings& s,
                                             const std::set<std::string>& given,
                                             const std::string& what_trains);

// Every option that shapes the result, key -> text: run.json's "settings".
Json result_settings(const RunSettings& s);

// The shortest text that reads back as exactly x: "0.1", "10", "1e-05".
std::string number_text(double x);

}  // namespace nnslim
