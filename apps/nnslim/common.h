// Pieces shared by the verbs: option groups, data loading, output directories, tables.
#pragma once

#include "args.h"

#include "nnslim/data/dataset.h"
#include "nnslim/graph/cost.h"
#include "nnslim/graph/model_file.h"
#include "nnslim/report/json.h"
#include "nnslim/train/trainer.h"

#include <string>

namespace nnslim::cli {

// Every verb: a verb's entry point takes its arguments (after the verb) and returns an exit code.
using VerbFn = int (*)(const std::vector<std::string>& args);

struct DataFlags {
  std::string dataset = "fashion-mnist";
  std::string data_dir;
  int64_t limit_train = 0;
  int64_t limit_test = 0;
  int64_t val_split = 0;
};
// default_from_model: the verb reads a model and uses the dataset recorded in it unless --dataset
// is given (eval, compress); the help says so.
// trains = false (eval): the verb uses only the test split, so --limit-train and --val-split,
// which could not change anything, are not offered.
void add_data_flags(ArgParser& p, DataFlags& f, bool default_from_model = false, bool trains = true);

// Usage error (exit 2) unless NAME is a known dataset.
void check_dataset_name(const std::string& name);

// Train/test (and optional validation) data as the flags say.
struct LoadedData {
  Dataset train, test, val;  // val empty unless --val-split
};
LoadedData load_data(const DataFlags& f);

struct TrainFlags {
  int64_t epochs = 30;
  int64_t batch_size = 128;
  double lr = 0.1;
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 5e-4;
  std::string schedule = "cosine";
  std::string milestones;
  double gamma = 0.1;
  int64_t step_size = 30;
  double warmup_epochs = 0;
  int64_t seed = 0;
  bool no_augment = false;
  bool no_flip = false;
  std::string device = "auto";
  int64_t threads = 0;
  double checkpoint_minutes = 10;
  bool quiet = false;
};
void add_train_flags(ArgParser& p, TrainFlags& f);
TrainOptions to_train_options(const TrainFlags& f, const std::string& out_dir);

// Options that were given but cannot change the run (a --milestones without --schedule
// multistep, an --lr when --epochs is 0): one "note:" line each on stderr, so the user learns
// why an option did nothing. The run goes on. `what_trains` names what --epochs counts, for the
// note ("the model does not train", "the method does not train").
void note_ineffective_options(const ArgParser& p, const TrainFlags& f, const std::string& what_trains);
// "note: TEXT" on stderr; nothing while g_print_notes is off, as while a recipe validates its
// stages (each stage notes its own when it runs).
void note(const std::string& text);
extern bool g_print_notes;

// Sets LibTorch's intra-op threads (0 = all cores); Debian's LibTorch starts with one.
void set_threads(int64_t threads);

// Refuses an existing non-empty directory unless force (call it before slow work: fail early).
void check_out_dir(const std::string& dir, bool force);
// Creates it (and its parents). Call it once the inputs are known good, so that a refused model
// or dataset leaves no empty directory behind.
void create_out_dir(const std::string& dir);

// Output files never replace a model, checkpoint or input: refuses `out` (the value of `flag`)
// when it is one of `inputs` or an existing nnslim file (models and checkpoints start "NNSLIM").
// Another existing file is replaced only when it is of the `kind` the verb writes (its own
// earlier output) or with `force`: a mistyped name must not destroy the user's data.
enum class OutKind { Onnx, Html };
void check_out_file(const std::string& out, const std::string& flag,
                    const std::vector<std::string>& inputs, OutKind kind, bool force);

// The model file of eval and export: MODEL or --model FILE (the way compress takes it).
struct ModelFileArg {
  std::string positional, flag;
  void add_to(ArgParser& p);
  std::string path() const;  // throws UsageError unless exactly one was given
};

// What a resumed run must match (graph/model_file.h).
using nnslim::file_fingerprint;

// Loads a model file (graph/model_file.h): an ordinary *.nnslim or the compact unified form
// (model.unified.nnslim); a directory or checkpoint given as the model is a usage error (exit 2).
inline Graph load_model_file(const std::string& path) {
  try {
    return nnslim::load_model_file(path);
  } catch (const NotAModelFileError& e) {
    throw UsageError(e.what());
  }
}

// For verbs that take a model file as MODEL or a zoo model as --model NAME: the model, with a
// file given as --model accepted too (what users of `compress --model FILE` type). Throws a
// UsageError when neither or both are given.
Graph file_or_zoo_model(std::string& path, std::string& model, const std::string& input, int64_t classes);

// A clear usage error when `graph` (loaded from `path`) cannot take `data`'s images or labels.
void check_fits_data(const Graph& graph, const Dataset& data, const std::string& path);

// Reads a JSON file; errors name the file.
Json read_json_file(const std::string& path);

// A compression run's identity, kept in OUT/run.json: the method, its options and the input
// model's fingerprint. A fresh run writes it; `--resume` refuses a command that differs (another
// method, other method options or another input model would mix two runs' checkpoints).
void check_or_record_run(const std::string& out, const Json& identity, bool resume);

// Writes text atomically.
void write_text(const std::string& path, const std::string& text);

// "1.23M", "40.8M" style numbers for tables.
std::string human(double v);

// Per-layer table of a cost report.
std::string cost_table(const CostReport& r);

}  // namespace nnslim::cli
