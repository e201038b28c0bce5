// Recipes: stages chained through `nnslim compress --recipe`, validated before any training.
#include "nnslim/core/json.h"
#include "nnslim/graph/serialize.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace nnslim {
namespace {

namespace fs = std::filesystem;
using testing::run_cli;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

struct RecipeRun {
  testing::TempDir dir;
  RecipeRun() {
    std::string out;
    EXPECT_EQ(
        run_cli("train --model lenet5 --dataset synthetic --epochs 0 --quiet --no-latency --out " +
                    dir.file("in"),
                &out),
        0)
        << out;
  }
  int compress(const std::string& recipe_text, std::string* out, const std::string& extra = "") {
    std::ofstream(dir.file("r.toml")) << recipe_text;
    return run_cli(
        "compress --recipe " + dir.file("r.toml") + " --model " + dir.file("in/model.nnslim") +
            " --dataset synthetic --limit-train 128 --limit-test 64 --no-latency --quiet --out " +
            dir.file("out") + " " + extra,
        out);
  }
};

TEST(Recipe, StagesChainAndTheSummaryComparesInputWithOutput) {
  RecipeRun r;
  std::string out;
  ASSERT_EQ(r.compress("# prune, then sparsify\nepochs = 1\n\n[[stage]]\nmethod = \"magnitude\"\n"
                       "target-macs = 0.6   # half-ish\nfinetune-epochs = 1\n\n"
                       "[[stage]]\nmethod = \"grda\"\nlr = 0.01\n",
                       &out),
            0)
      << out;
  for (const char* f : {"out/1-magnitude/summary.json", "out/2-grda/summary.json",
                        "out/model.nnslim", "out/summary.json"})
    EXPECT_TRUE(fs::exists(r.dir.file(f))) << f;
  std::ifstream f(r.dir.file("out/summary.json"));
  Json s = Json::parse(std::string((std::istreambuf_iterator<char>(f)), {}));
  EXPECT_EQ(s.get("method").str(), "magnitude+grda");
  ASSERT_EQ(s.get("stages").size(), 2u);
  // The second stage starts from the first stage's output; the summary spans both.
  EXPECT_EQ(s.get("stages").items()[1].get("input_model").str(),
            r.dir.file("out/1-magnitude/model.nnslim"));
  EXPECT_EQ(s.get("before").get("macs").num(),
            s.get("stages").items()[0].get("before").get("macs").num());
  EXPECT_EQ(s.get("after").get("macs").num(),
            s.get("stages").items()[1].get("after").get("macs").num());
  EXPECT_GT(s.get("macs_ratio").num(), 1.3);
  EXPECT_EQ(s.get("stages").items()[1].get("epochs").num(), 1);  // the shared key reached stage 2
  // The final model is the last stage's.
  EXPECT_TRUE(testing::same_weights(load_graph(r.dir.file("out/model.nnslim")),
                                    load_graph(r.dir.file("out/2-grda/model.nnslim"))));

  // --resume skips finished stages and rebuilds the same summary.
  ASSERT_EQ(
      r.compress(
          "# prune, then sparsify\nepochs = 1\n\n[[stage]]\nmethod = \"magnitude\"\n"
          "target-macs = 0.6\nfinetune-epochs = 1\n\n[[stage]]\nmethod = \"grda\"\nlr = 0.01\n",
          &out, "--resume"),
      0)
      << out;
  EXPECT_TRUE(contains(out, "already done")) << out;

  // A damaged finished stage is run again (from its checkpoints), not passed on.
  fs::resize_file(r.dir.file("out/2-grda/model.nnslim"), 100);
  ASSERT_EQ(
      r.compress(
          "epochs = 1\n[[stage]]\nmethod = \"magnitude\"\ntarget-macs = 0.6\nfinetune-epochs = 1\n"
          "[[stage]]\nmethod = \"grda\"\nlr = 0.01\n",
          &out, "--resume"),
      0)
      << out;
  EXPECT_TRUE(contains(out, "running the stage again")) << out;
  EXPECT_NO_THROW(load_graph(r.dir.file("out/model.nnslim")));
  // Another recipe in the same --out: refused.
  EXPECT_EQ(r.compress("epochs = 1\n[[stage]]\nmethod = \"magnitude\"\ntarget-macs = 0.5\n", &out,
                       "--resume"),
            2);
  EXPECT_TRUE(contains(out, "another recipe")) << out;
}

TEST(Recipe, CheckValidatesAndWritesNothing) {
  RecipeRun r;
  std::string out;
  ASSERT_EQ(r.compress("[[stage]]\nmethod = \"grda\"\nepochs = 1\n", &out, "--check"), 0) << out;
  EXPECT_FALSE(fs::exists(r.dir.file("out"))) << out;
}

// An option that does nothing in a stage is noted once, when the stage runs, not also while the
// recipe is validated.
TEST(Recipe, IneffectiveOptionsAreNotedOnce) {
  RecipeRun r;
  std::string out;
  ASSERT_EQ(r.compress("[[stage]]\nmethod = \"magnitude\"\nlr = 0.05\n", &out), 0) << out;
  const std::string note = "note: --lr has no effect: --epochs is 0";
  const size_t first = out.find(note);
  ASSERT_NE(first, std::string::npos) << out;
  EXPECT_EQ(out.find(note, first + 1), std::string::npos) << out;
}

TEST(Recipe, BadRecipesAreRejectedBeforeTrainingNamingTheLine) {
  RecipeRun r;
  std::string out;
  struct Case {
    const char* text;
    const char* where;
    const char* what;
  } cases[] = {
      {"[[stage]]\nmethod = \"magnitude\"\n\n[[stage]]\nmethod = \"trp\"\nbogus-key = 3\n",
       "r.toml:6", "bogus-key"},
      {"[[stage]]\nmethod = \"nosuch\"\n", "r.toml:2", "unknown method"},
      {"[[stage]]\nmethod = \"magnitude\"\nratio = \"abc\"\n", "r.toml:3", "ratio"},
      {"[[stage]]\nmethod = \"magnitude\"\nepochs = -1\n", "r.toml:3", "epochs"},
      // A bad value names its own line, also when the method's message says "target-macs must"
      // and where a shorter key ("lr") is part of the named one ("finetune-lr").
      {"[[stage]]\nmethod = \"magnitude\"\ntarget-macs = 1.5\n", "r.toml:3", "target-macs"},
      {"[[stage]]\nmethod = \"grda\"\nlr = 0.1\nfinetune-lr = -1\n", "r.toml:4", "finetune-lr"},
      {"[[stage]]\nratio = 0.5\n", "r.toml:1", "no 'method'"},
      {"[[stage]]\nmethod = \"grda\"\nc 0.1\n", "r.toml:3", "key = value"},
      {"[[stages]]\n", "r.toml:1", "unknown table"},
      {"epochs = 1\n", "r.toml", "no [[stage]]"},
      {"[[stage]]\nmethod = \"grda\"\nout = \"x\"\n", "r.toml:3", "command line"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(r.compress(c.text, &out), 2) << c.text << "\n" << out;
    EXPECT_TRUE(contains(out, c.where)) << c.text << "\n" << out;
    EXPECT_TRUE(contains(out, c.what)) << c.text << "\n" << out;
    EXPECT_FALSE(fs::exists(r.dir.file("out"))) << "nothing may run or be written: " << c.text;
  }
}

}  // namespace
}  // namespace nnslim
