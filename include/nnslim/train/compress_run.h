// A compression run as one library call: what `nnslim compress` does, for library users too.
// It validates the request, loads the input model, refuses a run directory that belongs to
// another run, runs the pipeline of train/compress.h with checkpoints under OUT/{train,finetune},
// and writes OUT/model.nnslim, OUT/model.unified.nnslim (when layers are unified),
// OUT/summary.json and OUT/metrics.jsonl (both phases' records, each tagged with its phase).
#pragma once

#include "nnslim/core/json.h"
#include "nnslim/methods/method.h"
#include "nnslim/train/compress.h"
#include "nnslim/train/settings.h"

#include <iosfwd>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace nnslim {

struct CompressJob {
  std::string method;                                 // a name of method_registry()
  std::map<std::string, std::string> method_options;  // the method's options (absent = default)
  std::string input_model;                            // a model file
  std::string out_dir;
  RunSettings settings;
  // The settings keys the user gave; for the rest the defaults apply, and the dataset recorded
  // in the input model replaces the default dataset.
  std::set<std::string> given;
  bool resume = false;               // continue the run in out_dir from its checkpoints
  bool force = false;                // write into a non-empty out_dir
  std::ostream* progress = nullptr;  // progress lines (nullptr = silent)
  bool progress_bar = false;         // a live bar (terminals) instead of lines
  std::ostream* notes = nullptr;     // "note: ..." lines about the request itself
  // Data-parallel ranks (null = one process): every phase trains on all of them; the surgery
  // runs on each, identically (the same weights and data); rank 0 alone writes the files.
  std::shared_ptr<dist::ProcessGroup> group;
};

struct CompressRunOutcome {
  bool already_finished = false;  // a --resume of a finished run: nothing was done or written
  CompressResult result;
  Json summary;  // what OUT/summary.json holds
  Graph model;   // the compressed model (what OUT/model.nnslim holds)
};

class CompressRun {
 public:
  // Validates the settings and the method's options; throws RequestError naming the option.
  explicit CompressRun(CompressJob job);
  // Checks out_dir, loads the input model and resolves the dataset; writes nothing. run() calls
  // it when it has not been called.
  void prepare();
  // Runs the pipeline and writes the files.
  CompressRunOutcome run();

  const CompressJob& job() const { return job_; }
  const Graph& input() const { return input_; }  // after prepare(), until run()
  // The options that were given but cannot change this run, one sentence each.
  std::vector<std::string> ineffective_options() const;

 private:
  Json identity() const;
  CompressJob job_;
  std::shared_ptr<Method> method_;
  Graph input_;
  bool prepared_ = false;
};

// Whether OUT holds a finished run: summary.json written and model.nnslim readable (a damaged
// model is reported on `log` and the run is finished again from its checkpoints).
bool finished_run_intact(const std::string& out, std::ostream* log);

}  // namespace nnslim
