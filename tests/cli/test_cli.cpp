// Smoke tests of the nnslim command line on synthetic data.
#include "nnslim/core/json.h"
#include "nnslim/graph/builder.h"
#include "nnslim/graph/serialize.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace nnslim {
namespace {

using testing::run_cli;

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool contains(const std::string& s, const std::string& sub) {
  return s.find(sub) != std::string::npos;
}

TEST(Cli, HelpForEveryVerb) {
  std::string out;
  EXPECT_EQ(run_cli("--help", &out), 0);
  for (const char* verb : {"train", "eval", "info", "bench"}) {
    EXPECT_EQ(run_cli(std::string(verb) + " --help", &out), 0) << verb;
    EXPECT_TRUE(contains(out, "usage: nnslim " + std::string(verb))) << out;
  }
  EXPECT_EQ(run_cli("", &out), 2);
  EXPECT_EQ(run_cli("frobnicate", &out), 2);
  EXPECT_TRUE(contains(out, "unknown verb 'frobnicate'"));
}

TEST(Cli, VersionAndHelpVerb) {
  std::string out;
  EXPECT_EQ(run_cli("--version", &out), 0);
  EXPECT_TRUE(contains(out, "nnslim ") && contains(out, "LibTorch")) << out;
  EXPECT_EQ(run_cli("help compress", &out), 0);
  EXPECT_TRUE(contains(out, "usage: nnslim compress")) << out;
}

// Mistakes that need the model to be found: exit 2, named, before any training, nothing written.
TEST(Cli, MistakesAreUsageErrorsFoundBeforeAnyWork) {
  testing::TempDir dir;
  std::string out;
  const std::string data =
      " --dataset synthetic --limit-train 64 --limit-test 32 --no-latency --quiet";
  ASSERT_EQ(run_cli("train --model lenet5 --epochs 1" + data + " --out " + dir.file("m"), &out), 0)
      << out;
  const std::string in = dir.file("m/model.nnslim");
  // An --exclude name the model lacks fails before the training, and leaves no --out behind.
  EXPECT_EQ(run_cli("compress --method magnitude --epochs 1 --exclude bogus --model " + in + data +
                        " --out " + dir.file("c"),
                    &out),
            2);
  EXPECT_TRUE(contains(out, "unknown node 'bogus'")) << out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("c")));
  // AdaPruner needs BatchNorm: lenet5 has none, said before the sparsity training.
  EXPECT_EQ(run_cli("compress --method adapruner --epochs 1 --model " + in + data + " --out " +
                        dir.file("c"),
                    &out),
            2);
  EXPECT_TRUE(contains(out, "no prunable block with BatchNorm")) << out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("c")));
  // --check validates the output directory and the model too, and says ok.
  EXPECT_EQ(run_cli("compress --method magnitude --check --model " + in + " --out " + dir.file("m"),
                    &out),
            2);
  EXPECT_TRUE(contains(out, "not empty")) << out;
  EXPECT_EQ(run_cli("compress --method magnitude --check --model " + in +
                        " --dataset imagenet --out " + dir.file("c"),
                    &out),
            2);
  EXPECT_TRUE(contains(out, "unknown dataset 'imagenet'")) << out;
  EXPECT_EQ(run_cli("compress --method magnitude --check --model " + in + " --out " + dir.file("c"),
                    &out),
            0);
  EXPECT_TRUE(contains(out, "ok: would compress")) << out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("c")));
  // The wrong kind of file: a run directory, a checkpoint, an empty file.
  EXPECT_EQ(run_cli("eval " + dir.file("m"), &out), 2);
  EXPECT_TRUE(contains(out, "did you mean " + in)) << out;
  EXPECT_EQ(run_cli("info " + dir.file("m/checkpoint.nnslim-ckpt"), &out), 2);
  EXPECT_TRUE(contains(out, "training checkpoint")) << out;
  std::ofstream(dir.file("empty.nnslim")).close();
  EXPECT_EQ(run_cli("info " + dir.file("empty.nnslim"), &out), 1);
  EXPECT_TRUE(contains(out, "empty file")) << out;
}

// --resume of a finished compression: the same command has nothing to do and keeps the model;
// a command that would finish it differently is refused, naming the option.
TEST(Cli, ResumingAFinishedCompressionKeepsIt) {
  testing::TempDir dir;
  std::string out;
  const std::string data =
      " --dataset synthetic --limit-train 64 --limit-test 32 --no-latency --quiet";
  ASSERT_EQ(run_cli("train --model lenet5 --epochs 0" + data + " --out " + dir.file("m"), &out), 0)
      << out;
  const std::string cmd = "compress --method magnitude --target-macs 0.5 --model " +
                          dir.file("m/model.nnslim") + data + " --out " + dir.file("c");
  ASSERT_EQ(run_cli(cmd + " --finetune-epochs 1", &out), 0) << out;
  const std::string model = slurp(dir.file("c/model.nnslim")),
                    summary = slurp(dir.file("c/summary.json"));
  EXPECT_EQ(run_cli(cmd + " --resume", &out), 2);  // --finetune-epochs left out
  EXPECT_TRUE(contains(out, "--finetune-epochs 1, now 0")) << out;
  EXPECT_EQ(run_cli(cmd + " --finetune-epochs 1 --resume --threads 1", &out), 0) << out;
  EXPECT_TRUE(contains(out, "already finished")) << out;
  EXPECT_EQ(slurp(dir.file("c/model.nnslim")), model);
  EXPECT_EQ(slurp(dir.file("c/summary.json")), summary);
  // --resume where no run was: a new run, and a note that says so.
  EXPECT_EQ(run_cli("compress --method magnitude --model " + dir.file("m/model.nnslim") + data +
                        " --out " + dir.file("d") + " --resume",
                    &out),
            0)
      << out;
  EXPECT_TRUE(contains(out, "holds no earlier run; starting a new one")) << out;
}

TEST(Cli, TrainEvalInfoBenchOnSyntheticData) {
  testing::TempDir dir;
  std::string run = dir.file("run"), out;
  ASSERT_EQ(run_cli("train --model lenet5 --dataset synthetic --epochs 2 --batch-size 64 --lr 0.05 "
                    "--quiet --out " +
                        run,
                    &out),
            0)
      << out;
  for (const char* f : {"model.nnslim", "summary.json", "metrics.jsonl", "checkpoint.nnslim-ckpt"})
    EXPECT_TRUE(std::filesystem::exists(run + "/" + f)) << f;
  Json s = Json::parse(slurp(run + "/summary.json"));
  for (const char* k : {"model", "dataset", "input_shape", "classes", "params", "macs", "top1",
                        "top5", "epochs", "wall_seconds", "train_images_per_second"})
    EXPECT_TRUE(s.has(k)) << k;
  EXPECT_EQ(s.get("model").str(), "lenet5");
  EXPECT_EQ(s.get("epochs").integer(), 2);
  EXPECT_GT(s.get("top1").num(), 30.0);  // 10 classes: chance is 10%

  ASSERT_EQ(run_cli("eval " + run + "/model.nnslim --json", &out), 0) << out;
  Json e = Json::parse(out);
  EXPECT_DOUBLE_EQ(e.get("top1").num(), s.get("top1").num());  // dataset taken from the model

  ASSERT_EQ(run_cli("info " + run + "/model.nnslim --json", &out), 0) << out;
  Json i = Json::parse(out);
  EXPECT_EQ(i.get("params").integer(), s.get("params").integer());
  EXPECT_EQ(i.get("macs").integer(), s.get("macs").integer());
  // The channel groups: lenet5's hidden widths prune, its output layer's do not (and say why).
  const Json& groups = i.get("channel_groups");
  EXPECT_GT(groups.get("prunable").integer(), 0);
  EXPECT_GT(groups.get("total").integer(), groups.get("prunable").integer());
  bool output_named = false;
  for (const auto& k : groups.get("kept_whole").items())
    output_named |= k.get("why").str().find("output") != std::string::npos;
  EXPECT_TRUE(output_named) << groups.dump();
  ASSERT_EQ(run_cli("info " + run + "/model.nnslim", &out), 0) << out;
  EXPECT_TRUE(contains(out, "prunable (")) << out;
  EXPECT_TRUE(contains(out, "kept whole:")) << out;
  // The file given as --model (as compress takes it) is the same model.
  ASSERT_EQ(run_cli("info --model " + run + "/model.nnslim --json", &out), 0) << out;
  EXPECT_EQ(Json::parse(out).get("macs").integer(), s.get("macs").integer());

  ASSERT_EQ(
      run_cli("bench " + run + "/model.nnslim --batch-size 4 --runs 3 --seconds 0 --json", &out), 0)
      << out;
  EXPECT_GT(Json::parse(out).get("images_per_second").num(), 0);
}

TEST(Cli, ResumeContinuesARun) {
  testing::TempDir dir;
  std::string run = dir.file("run"), out;
  ASSERT_EQ(
      run_cli("train --model lenet5 --dataset synthetic --epochs 1 --quiet --out " + run, &out), 0)
      << out;
  ASSERT_EQ(run_cli("train --resume " + run + " --epochs 2 --quiet", &out), 0) << out;
  std::istringstream m(slurp(run + "/metrics.jsonl"));
  int lines = 0;
  for (std::string l; std::getline(m, l);) ++lines;
  EXPECT_EQ(lines, 2);
  EXPECT_EQ(Json::parse(slurp(run + "/summary.json")).get("epochs").integer(), 2);
}

TEST(Cli, TrainInitStartsFromASavedModel) {
  testing::TempDir dir;
  std::string a = dir.file("a"), b = dir.file("b"), c = dir.file("c"), out;
  ASSERT_EQ(
      run_cli("train --model lenet5 --dataset synthetic --epochs 1 --quiet --no-latency --out " + a,
              &out),
      0)
      << out;
  // 0 epochs from --init: the saved model itself (the dataset comes from its metadata).
  ASSERT_EQ(
      run_cli("train --init " + a + "/model.nnslim --epochs 0 --quiet --no-latency --out " + b,
              &out),
      0)
      << out;
  EXPECT_TRUE(
      testing::same_weights(load_graph(a + "/model.nnslim"), load_graph(b + "/model.nnslim")));
  Json s = Json::parse(slurp(b + "/summary.json"));
  EXPECT_EQ(s.get("model").str(), "lenet5");
  EXPECT_EQ(s.get("dataset").str(), "synthetic");
  EXPECT_DOUBLE_EQ(s.get("top1").num(), Json::parse(slurp(a + "/summary.json")).get("top1").num());
  // One more epoch moves the weights.
  ASSERT_EQ(run_cli("train --init " + a +
                        "/model.nnslim --epochs 1 --lr 0.01 --quiet --no-latency --out " + c,
                    &out),
            0)
      << out;
  EXPECT_FALSE(
      testing::same_weights(load_graph(a + "/model.nnslim"), load_graph(c + "/model.nnslim")));
  // --reinit: the same architecture with fresh weights, the same ones for the same --seed.
  for (const char* name : {"r1", "r2"})
    ASSERT_EQ(run_cli("train --init " + a +
                          "/model.nnslim --reinit --seed 3 --epochs 0 --quiet --no-latency --out " +
                          dir.file(name),
                      &out),
              0)
        << out;
  Graph trained = load_graph(a + "/model.nnslim"),
        fresh = load_graph(dir.file("r1") + "/model.nnslim");
  EXPECT_FALSE(testing::same_weights(trained, fresh));
  EXPECT_TRUE(testing::same_weights(fresh, load_graph(dir.file("r2") + "/model.nnslim")));
  ASSERT_EQ(trained.parameters().size(), fresh.parameters().size());
  for (size_t i = 0; i < fresh.parameters().size(); ++i)
    EXPECT_EQ(trained.parameters()[i].sizes(), fresh.parameters()[i].sizes());
  EXPECT_EQ(run_cli("train --model lenet5 --reinit --out " + dir.file("x"), &out), 2);
  EXPECT_TRUE(contains(out, "--reinit draws fresh weights for the model given with --init FILE"))
      << out;
  // Contradictions and a model that cannot take the data are usage errors naming the problem.
  EXPECT_EQ(
      run_cli("train --init " + a + "/model.nnslim --model resnet20 --out " + dir.file("x"), &out),
      2);
  EXPECT_TRUE(contains(out, "--init FILE replaces --model NAME")) << out;
  GraphBuilder g({3, 8, 8});
  save_graph(g.build(g.linear(g.flatten(g.input(), "f"), 10, "fc")), dir.file("rgb.nnslim"));
  EXPECT_EQ(run_cli("eval " + dir.file("rgb.nnslim") + " --dataset fashion-mnist", &out), 2);
  EXPECT_TRUE(contains(out, "takes 3x8x8 inputs but dataset 'fashion-mnist' has 1x32x32 images"))
      << out;
  EXPECT_TRUE(contains(out, "or --dataset synthetic")) << out;  // what to do without data
  // Generated data follows the model (its input shape and classes), so any model runs on it.
  EXPECT_EQ(run_cli("eval " + dir.file("rgb.nnslim") + " --dataset synthetic", &out), 0) << out;
  EXPECT_EQ(run_cli("train --init " + dir.file("rgb.nnslim") + " --dataset fashion-mnist --out " +
                        dir.file("y"),
                    &out),
            2);
  EXPECT_TRUE(contains(out, "takes 3x8x8 inputs")) << out;
  EXPECT_EQ(run_cli("compress --method magnitude --ratio 0.5 --model " + dir.file("rgb.nnslim") +
                        " --dataset fashion-mnist --out " + dir.file("z"),
                    &out),
            2);
  EXPECT_TRUE(contains(out, "takes 3x8x8 inputs")) << out;
  // A refused input leaves no empty output directory behind.
  EXPECT_FALSE(std::filesystem::exists(dir.file("y")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("z")));
}

TEST(Cli, EpochsZeroWritesTheInitialisedModel) {
  testing::TempDir dir;
  std::string out;
  ASSERT_EQ(run_cli("train --model resnet20 --dataset synthetic --epochs 0 --quiet --out " +
                        dir.file("r"),
                    &out),
            0)
      << out;
  EXPECT_TRUE(std::filesystem::exists(dir.file("r/model.nnslim")));
}

TEST(Cli, UsageErrorsExitTwoAndNameTheFlag) {
  testing::TempDir dir;
  std::string out;
  EXPECT_EQ(run_cli("train --modle lenet5 --out " + dir.file("x"), &out), 2);
  EXPECT_TRUE(contains(out, "unknown option --modle")) << out;
  // A forgotten value does not swallow the next option.
  EXPECT_EQ(run_cli("train --model lenet5 --epochs --lr 0.1 --out " + dir.file("x"), &out), 2);
  EXPECT_TRUE(contains(out, "--epochs needs a value (got the option --lr)")) << out;
  // Unknown names of models and datasets are usage errors naming the flag.
  EXPECT_EQ(run_cli("train --model lenet --dataset synthetic --out " + dir.file("x"), &out), 2);
  EXPECT_TRUE(contains(out, "--model: unknown model 'lenet'")) << out;
  EXPECT_EQ(run_cli("train --model lenet5 --dataset fashion_mnist --out " + dir.file("x"), &out),
            2);
  EXPECT_TRUE(contains(out, "--dataset: unknown dataset 'fashion_mnist'")) << out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("x")));
  EXPECT_EQ(run_cli("train --epochs many --out " + dir.file("x"), &out), 2);
  EXPECT_TRUE(contains(out, "--epochs expects an integer, got 'many'")) << out;
  EXPECT_EQ(run_cli("train --dataset synthetic --lr -1 --out " + dir.file("x"), &out), 2);
  EXPECT_TRUE(contains(out, "lr must be > 0")) << out;
  EXPECT_EQ(
      run_cli("train --dataset synthetic --checkpoint-minutes -5 --out " + dir.file("x"), &out), 2);
  EXPECT_TRUE(contains(out, "--checkpoint-minutes must be >= 0")) << out;
  EXPECT_EQ(run_cli("train --dataset synthetic", &out), 2);
  EXPECT_TRUE(contains(out, "--out DIR is required")) << out;
  EXPECT_EQ(run_cli("info --model resnet20 --input 32x32", &out), 2);
  EXPECT_TRUE(contains(out, "--input expects CxHxW")) << out;
  // An existing non-empty --out is refused unless --force.
  std::filesystem::create_directories(dir.file("full"));
  std::ofstream(dir.file("full/keep.txt")) << "user data";
  EXPECT_EQ(run_cli("train --model lenet5 --dataset synthetic --epochs 0 --quiet --out " +
                        dir.file("full"),
                    &out),
            2);
  EXPECT_TRUE(contains(out, "--force")) << out;
  EXPECT_EQ(slurp(dir.file("full/keep.txt")), "user data");
}

// Outputs never replace an input or a model; a resumed run must be the run that was started.
TEST(Cli, OutputsNeverReplaceInputsAndResumeMustMatchTheRun) {
  testing::TempDir dir;
  std::string out, in = dir.file("in/model.nnslim");
  const std::string data =
      " --dataset synthetic --limit-train 64 --limit-test 32 --no-latency --quiet";
  ASSERT_EQ(run_cli("train --model lenet5 --epochs 1" + data + " --out " + dir.file("in"), &out), 0)
      << out;
  const std::string before = slurp(in);
  // compress into the input's own directory (--force or --resume): refused, the model kept.
  for (const char* how : {" --force", " --resume"}) {
    EXPECT_EQ(
        run_cli("compress --method grda --model " + in + data + " --out " + dir.file("in") + how,
                &out),
        2);
    EXPECT_TRUE(contains(out, "choose another --out")) << out;
  }
  EXPECT_EQ(slurp(in), before);
  // export / report onto a model file: refused.
  EXPECT_EQ(run_cli("export " + in + " --onnx " + in, &out), 2);
  EXPECT_EQ(run_cli("report " + dir.file("in") + " --out " + in, &out), 2);
  EXPECT_TRUE(contains(out, "refusing to overwrite")) << out;
  EXPECT_EQ(slurp(in), before);
  // Another existing file is replaced only when it is the verb's own kind, or with --force.
  std::ofstream(dir.file("notes.txt")) << "the user's notes\n";
  EXPECT_EQ(run_cli("export " + in + " --onnx " + dir.file("notes.txt"), &out), 2);
  EXPECT_TRUE(contains(out, "is not an ONNX model")) << out;
  EXPECT_EQ(run_cli("report " + dir.file("in") + " --out " + dir.file("notes.txt"), &out), 2);
  EXPECT_TRUE(contains(out, "is not an HTML page")) << out;
  EXPECT_EQ(slurp(dir.file("notes.txt")), "the user's notes\n");
  for (int i = 0; i < 2; ++i) {  // running a verb again replaces its own output
    EXPECT_EQ(run_cli("export --model " + in + " --onnx " + dir.file("m.onnx"), &out), 0) << out;
    EXPECT_EQ(run_cli("report " + dir.file("in") + " --out " + dir.file("r.html"), &out), 0) << out;
  }
  EXPECT_EQ(run_cli("export " + in + " --onnx " + dir.file("notes.txt") + " --force", &out), 0)
      << out;
  EXPECT_NE(slurp(dir.file("notes.txt")), "the user's notes\n");
  // A compression resumed with another method, other options or another input: refused.
  ASSERT_EQ(run_cli("compress --method grda --c 0.05 --epochs 1 --model " + in + data + " --out " +
                        dir.file("c"),
                    &out),
            0)
      << out;
  EXPECT_EQ(run_cli("compress --method hspg --epochs 1 --model " + in + data + " --out " +
                        dir.file("c") + " --resume",
                    &out),
            2);
  EXPECT_TRUE(contains(out, "another method")) << out;
  EXPECT_EQ(run_cli("compress --method grda --c 0.07 --epochs 1 --model " + in + data + " --out " +
                        dir.file("c") + " --resume",
                    &out),
            2);
  EXPECT_TRUE(contains(out, "other method options")) << out;
  EXPECT_EQ(run_cli("compress --method grda --c 0.05 --epochs 1 --model " +
                        dir.file("c/model.nnslim") + data + " --out " + dir.file("c") + " --resume",
                    &out),
            2);
  EXPECT_EQ(run_cli("compress --method grda --c 0.05 --epochs 1 --model " + in + data + " --out " +
                        dir.file("c") + " --resume",
                    &out),
            0)
      << out;  // the same command resumes
  // train --resume: the checkpoint's model, and no fewer epochs than it has done.
  EXPECT_EQ(run_cli("train --resume " + dir.file("in") + " --model resnet20", &out), 2);
  EXPECT_TRUE(contains(out, "drop --model")) << out;
  ASSERT_EQ(run_cli("train --resume " + dir.file("in") + " --epochs 2 --quiet", &out), 0) << out;
  EXPECT_EQ(run_cli("train --resume " + dir.file("in") + " --epochs 1 --quiet", &out), 2);
  EXPECT_TRUE(contains(out, "already trained 2 epochs")) << out;
  const std::string trained = slurp(in);
  EXPECT_EQ(run_cli("train --resume " + dir.file("in") + " --lr 0.5", &out), 0);  // finished
  EXPECT_TRUE(contains(out, "already trained all its 2 epochs; nothing to do")) << out;
  EXPECT_EQ(slurp(in), trained);
  EXPECT_EQ(
      run_cli("train --model lenet5 --epochs 0 --threads 100000" + data + " --out " + dir.file("t"),
              &out),
      2);
  EXPECT_TRUE(contains(out, "--threads 100000")) << out;
}

// Options that cannot change the run are noted (stderr), and the run goes on.
TEST(Cli, IneffectiveOptionsAreNoted) {
  testing::TempDir dir;
  std::string out;
  const std::string data =
      " --dataset synthetic --limit-train 64 --limit-test 32 --no-latency --quiet";
  ASSERT_EQ(run_cli("train --model lenet5 --epochs 1 --gamma 0.5 --milestones 1" + data +
                        " --out " + dir.file("m"),
                    &out),
            0)
      << out;
  EXPECT_TRUE(contains(out, "note: --gamma has no effect with --schedule cosine")) << out;
  EXPECT_TRUE(contains(out, "note: --milestones has no effect with --schedule cosine")) << out;
  ASSERT_EQ(
      run_cli("train --model lenet5 --epochs 1 --schedule multistep --gamma 0.5 --milestones 1" +
                  data + " --out " + dir.file("n"),
              &out),
      0)
      << out;
  EXPECT_FALSE(contains(out, "note:")) << out;
  const std::string in = " --model " + dir.file("m/model.nnslim");
  EXPECT_EQ(run_cli("compress --method magnitude --lr 0.5 --finetune-lr 0.1 --check" + in +
                        " --out " + dir.file("c"),
                    &out),
            0)
      << out;
  EXPECT_TRUE(contains(out, "note: --lr has no effect: --epochs is 0")) << out;
  EXPECT_TRUE(contains(out, "note: --finetune-lr has no effect without --finetune-epochs")) << out;
  EXPECT_EQ(run_cli("compress --method magnitude --epochs 1 --lr 0.5 --finetune-epochs 1 "
                    "--finetune-lr 0.1 --check" +
                        in + " --out " + dir.file("c"),
                    &out),
            0)
      << out;
  EXPECT_FALSE(contains(out, "note:")) << out;
  // eval takes the model as MODEL or --model FILE, not both.
  EXPECT_EQ(run_cli("eval --model " + dir.file("m/model.nnslim") + " --limit-test 32", &out), 0)
      << out;
  EXPECT_TRUE(contains(out, "top-1")) << out;
  EXPECT_EQ(run_cli("eval " + dir.file("m/model.nnslim") + " --model " + dir.file("n/model.nnslim"),
                    &out),
            2);
  EXPECT_TRUE(contains(out, "two models given")) << out;
  EXPECT_EQ(run_cli("eval " + dir.file("m/model.nnslim") + " --val-split 10", &out),
            2);  // no training split
  EXPECT_TRUE(contains(out, "unknown option --val-split")) << out;
}

// A model whose normalisation metadata is broken (std 0) is an error, not NaN results.
TEST(Cli, BrokenNormalisationIsAnErrorNotNan) {
  testing::TempDir dir;
  std::string out;
  ASSERT_EQ(
      run_cli("train --model lenet5 --dataset synthetic --epochs 0 --quiet --no-latency --out " +
                  dir.file("m"),
              &out),
      0)
      << out;
  Graph g = load_graph(dir.file("m/model.nnslim"));
  g.meta["std"] = "0";
  save_graph(g, dir.file("zero_std.nnslim"));
  EXPECT_EQ(run_cli("eval " + dir.file("zero_std.nnslim") + " --dataset synthetic", &out), 1);
  EXPECT_TRUE(contains(out, "'std' must be > 0")) << out;
  g.meta["std"] = "abc";
  save_graph(g, dir.file("text_std.nnslim"));
  EXPECT_EQ(run_cli("eval " + dir.file("text_std.nnslim") + " --dataset synthetic", &out), 1);
  EXPECT_TRUE(contains(out, "not a list of numbers")) << out;
}

TEST(Cli, BadFilesExitOneWithAnError) {
  testing::TempDir dir;
  std::string out;
  std::ofstream(dir.file("bad.nnslim")) << "garbage";
  EXPECT_EQ(run_cli("info " + dir.file("bad.nnslim"), &out), 1);
  EXPECT_TRUE(contains(out, "error: ")) << out;
  EXPECT_TRUE(contains(out, "bad.nnslim")) << out;
  EXPECT_EQ(run_cli("eval " + dir.file("missing.nnslim"), &out), 1);
  EXPECT_TRUE(contains(out, "cannot open")) << out;
  EXPECT_EQ(run_cli("train --model lenet5 --dataset fashion-mnist --data-dir " +
                        dir.file("nowhere") + " --out " + dir.file("o"),
                    &out),
            1);
  EXPECT_TRUE(contains(out, "nowhere")) << out;
}

}  // namespace
}  // namespace nnslim

namespace nnslim {
namespace {

TEST(Cli, UnifyWritesTheCompactFileThatEvalReads) {
  testing::TempDir dir;
  std::string out;
  ASSERT_EQ(testing::run_cli("train --model lenet5 --dataset synthetic --epochs 0 --quiet --out " +
                                 dir.file("in"),
                             &out),
            0)
      << out;
  ASSERT_EQ(
      testing::run_cli("compress --method unify --model " + dir.file("in/model.nnslim") +
                           " --epochs 1 --limit-train 128 --limit-test 64 --no-latency --quiet"
                           " --out " +
                           dir.file("u"),
                       &out),
      0)
      << out;
  ASSERT_TRUE(std::filesystem::exists(dir.file("u/model.unified.nnslim")));
  EXPECT_LT(std::filesystem::file_size(dir.file("u/model.unified.nnslim")),
            std::filesystem::file_size(dir.file("u/model.nnslim")));
  std::string a, b;
  ASSERT_EQ(testing::run_cli("eval " + dir.file("u/model.nnslim") + " --limit-test 64 --json", &a),
            0)
      << a;
  ASSERT_EQ(testing::run_cli(
                "eval " + dir.file("u/model.unified.nnslim") + " --limit-test 64 --json", &b),
            0)
      << b;
  EXPECT_DOUBLE_EQ(Json::parse(a).get("top1").num(), Json::parse(b).get("top1").num());
  EXPECT_DOUBLE_EQ(Json::parse(a).get("loss").num(), Json::parse(b).get("loss").num());
}

}  // namespace
}  // namespace nnslim
