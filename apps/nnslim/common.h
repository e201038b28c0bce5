// Pieces shared by the verbs: option groups, data loading, output directories, tables.
#pragma once

#include "args.h"

#include "nnslim/core/json.h"
#include "nnslim/data/dataset.h"
#include "nnslim/graph/cost.h"
#include "nnslim/report/comparison.h"  // human_count
#include "nnslim/train/run_dir.h"
#include "nnslim/train/settings.h"
#include "nnslim/train/trainer.h"

#include <initializer_list>

#include <string>

namespace nnslim::cli {

// Every verb: a verb's entry point takes its arguments (after the verb) and returns an exit code.
using VerbFn = int (*)(const std::vector<std::string>& args);

// Adds the run options of `groups` (train/settings.h's table) as flags bound to `settings`, in
// the table's order under the sections "data", "training" and "runtime" (compression options
// under the current section). dataset_default: the help's words for the --dataset default.
void add_run_options(ArgParser& p, RunSettings& settings, std::initializer_list<OptionGroup> groups,
                     const std::string& dataset_default = "");

// One "note: TEXT" line on stderr each: options that were given but cannot change the run.
void print_notes(const std::vector<std::string>& notes);

// Sets LibTorch's intra-op threads (0 = all cores); Debian's LibTorch starts with one.
void set_threads(int64_t threads);

// A process started by torchrun, srun or PyTorchJob (their RANK/WORLD_SIZE variables) joins its
// data-parallel group here; alone, it gets null and runs as always. Ranks other than 0 become
// quiet; --threads 0 shares the cores among the machine's processes; --device cuda becomes this
// process's GPU (LOCAL_RANK). Rank 0 prints one line naming the group.
std::shared_ptr<dist::ProcessGroup> join_launched_group(RunSettings& settings);
// True on rank 0 (or alone): the process that writes files.
inline bool writes_files(const std::shared_ptr<dist::ProcessGroup>& g) {
  return !g || g->rank() == 0;
}

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

// For verbs that take a model file as MODEL or a zoo model as --model NAME: the model, with a
// file given as --model accepted too (what users of `compress --model FILE` type). Throws a
// UsageError when neither or both are given.
Graph file_or_zoo_model(std::string& path, std::string& model, const std::string& input,
                        int64_t classes);

// Writes text atomically.
void write_text(const std::string& path, const std::string& text);

// Per-layer table of a cost report.
std::string cost_table(const CostReport& r);

}  // namespace nnslim::cli
