// Recipes: a file of compression stages run one after another, each stage's output model the
// next one's input. The format is a small TOML subset:
//
//   # comments, blank lines
//   epochs = 1                 # keys before the first [[stage]] apply to every stage
//   [[stage]]
//   method = "adapruner"       # required in every stage
//   target-macs = 0.6          # any 'nnslim compress' option or option of the method
//   finetune-epochs = 2
//   [[stage]]
//   method = "trp"
//
// Values are numbers, true/false or "strings". Keys are the compress flags without "--".
#pragma once

#include <string>
#include <vector>

namespace nnslim::cli {

struct RecipeKey {
  std::string key, value;
  int line = 0;
};

struct RecipeStage {
  int line = 0;              // of its [[stage]] header
  int method_line = 0;
  std::string method;        // from its method key
  std::vector<RecipeKey> keys;  // shared keys first, then the stage's own (method excluded)
};

// Parses the file; syntax errors throw UsageError "FILE:LINE: ...".
std::vector<RecipeStage> parse_recipe(const std::string& path);

// Command-line arguments for one stage ("--key value" pairs; flags as "--key" when true).
std::vector<std::string> stage_args(const RecipeStage& stage);

// `nnslim compress --recipe FILE --model IN --out DIR [common options]`: validates every stage,
// then runs them in order into DIR/<n>-<method>/, and writes DIR/model.nnslim and
// DIR/summary.json comparing the input model with the final one.
int run_recipe(const std::vector<std::string>& args);

}  // namespace nnslim::cli
