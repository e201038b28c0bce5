// Recipes: a file of compression stages run one after another, each stage's output model the
// next one's input. The format is a small TOML subset:
//
//   # comments, blank lines
//   epochs = 1                 # keys before the first [[stage]] apply to every stage
//   [[stage]]
//   method = "adapruner"       # required in every stage
//   target-macs = 0.6          # any run option (train/settings.h) or option of the method
//   finetune-epochs = 2
//   [[stage]]
//   method = "trp"
//
// Values are numbers, true/false or "strings". Keys are the compress flags without "--".
// A recipe runs into OUT/<n>-<method>/ per stage and writes OUT/model.nnslim (the last stage's)
// and OUT/summary.json comparing the recipe's input model with its output.
#pragma once

#include "nnslim/core/json.h"
#include "nnslim/train/compress_run.h"

#include <iosfwd>
#include <string>
#include <vector>

namespace nnslim {

struct RecipeKey {
  std::string key, value;
  int line = 0;
};

struct RecipeStage {
  int line = 0;         // of its [[stage]] header
  int method_line = 0;  // of its method key
  std::string method;
  std::vector<RecipeKey> keys;  // the shared keys first, then the stage's own (method excluded)
};

struct Recipe {
  std::string path;
  std::vector<RecipeStage> stages;
};

// Reads and parses the file; syntax errors throw RequestError "FILE:LINE: ...".
Recipe parse_recipe(const std::string& path);

// The job of stage `i`: `base` (the command line's settings, input model and output) with the
// stage's method and keys applied -- run options to the settings, the others to the method.
// Every mistake throws RequestError "FILE:LINE: stage N (method): ..." naming the key's line.
CompressRun stage_run(const Recipe& recipe, size_t i, CompressJob base);

// Validates every stage and the request (the output directory, the input model, the dataset)
// before anything runs; writes nothing.
void check_recipe(const Recipe& recipe, const CompressJob& base);

// Runs the stages into base.out_dir (resuming: finished stages are kept, an interrupted one
// continues from its checkpoints) and returns the summary it wrote. Stage lines go to `log`.
Json run_recipe(const Recipe& recipe, const CompressJob& base, std::ostream* log);

}  // namespace nnslim
