// The compression run as a library object (train/compress_run.h) and the option table it and
// the CLI share (train/settings.h): a library user gets the files and the summary the CLI gets.
#include "nnslim/core/error.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/models/zoo.h"
#include "nnslim/train/compress_run.h"
#include "nnslim/train/recipe.h"
#include "nnslim/train/run_dir.h"
#include "nnslim/train/settings.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace nnslim {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// A lenet5 for the synthetic dataset, saved as DIR/in.nnslim, and a magnitude job on it.
CompressJob small_job(const testing::TempDir& dir) {
  CompressJob job;
  job.settings.data.dataset = "synthetic";
  job.settings.data.limit_train = 64;
  job.settings.data.limit_test = 32;
  job.settings.train.epochs = 0;
  job.settings.finetune_epochs = 1;
  job.settings.measure_latency = false;
  job.settings.train.device = "cpu";
  auto data = load_data(job.settings.data);
  torch::manual_seed(0);
  save_graph(build_model("lenet5", data.train.image_shape(), data.train.classes),
             dir.file("in.nnslim"));
  job.method = "magnitude";
  job.method_options = {{"target-macs", "0.5"}};
  job.input_model = dir.file("in.nnslim");
  job.out_dir = dir.file("out");
  job.given = {"dataset"};
  return job;
}

TEST(CompressRun, WritesTheRunAndReturnsItsSummary) {
  testing::TempDir dir;
  CompressRunOutcome r = CompressRun(small_job(dir)).run();
  EXPECT_FALSE(r.already_finished);
  for (const char* f :
       {"out/model.nnslim", "out/summary.json", "out/metrics.jsonl", "out/run.json"})
    EXPECT_TRUE(fs::exists(dir.file(f))) << f;
  // The summary the caller gets is the one on disk, and the model it gets is the saved one.
  EXPECT_EQ(r.summary.dump(2) + "\n", slurp(dir.file("out/summary.json")));
  EXPECT_TRUE(testing::same_weights(r.model, load_graph(dir.file("out/model.nnslim"))));
  EXPECT_EQ(r.summary.get("method").str(), "magnitude");
  EXPECT_EQ(r.summary.get("options").get("target-macs").str(), "0.5");
  EXPECT_LT(r.result.after.macs, r.result.before.macs);
  // metrics.jsonl holds the fine-tuning epoch, tagged with its phase.
  Json line = Json::parse(slurp(dir.file("out/metrics.jsonl"))
                              .substr(0, slurp(dir.file("out/metrics.jsonl")).find('\n')));
  EXPECT_EQ(line.get("phase").str(), "finetune");
}

// A model that no dataset fits -- as an imported one: 3x48x40 input, 7 classes -- runs on
// --dataset synthetic, which then follows the model's input shape and class count.
TEST(CompressRun, SyntheticDataFollowsTheModel) {
  testing::TempDir dir;
  torch::manual_seed(0);
  save_graph(build_model("resnet20", {3, 48, 40}, 7), dir.file("in.nnslim"));
  CompressJob job;
  job.method = "magnitude";
  job.method_options = {{"target-macs", "0.5"}};
  job.input_model = dir.file("in.nnslim");
  job.out_dir = dir.file("out");
  job.settings.train.epochs = 0;
  job.settings.measure_latency = false;
  job.settings.train.device = "cpu";
  // The default dataset does not fit: the error says what to do.
  try {
    CompressRun(job).run();
    ADD_FAILURE() << "a 3x48x40 model ran on fashion-mnist";
  } catch (const RequestError& e) {
    EXPECT_NE(std::string(e.what()).find("--dataset synthetic"), std::string::npos) << e.what();
  }
  job.settings.data.dataset = "synthetic";
  job.given = {"dataset"};
  CompressRunOutcome r = CompressRun(job).run();
  EXPECT_EQ(r.model.input_shape, (std::vector<int64_t>{3, 48, 40}));
  const double fraction = double(r.result.after.macs) / double(r.result.before.macs);
  EXPECT_LE(fraction, 0.5 + 0.01);
  EXPECT_GE(fraction, 0.5 - 0.05);
  // The synthetic data had the model's shape and classes (it was evaluated on them).
  DataSelection d;
  d.dataset = "synthetic";
  follow_model(d, r.model);
  EXPECT_EQ(d.synthetic_shape, (std::vector<int64_t>{3, 48, 40}));
  EXPECT_EQ(d.synthetic_classes, 7);
  auto data = load_data(d);
  EXPECT_EQ(data.train.image_shape(), (std::vector<int64_t>{3, 48, 40}));
  EXPECT_EQ(data.train.classes, 7);
  EXPECT_EQ(data.train.size(), 1024);  // 5,760 pixels an image: within the 64 MiB budget
}

// Large images: fewer synthetic images (64 MiB of training pixels at most), never fewer than 64.
TEST(CompressRun, SyntheticDataForLargeImagesStaysSmall) {
  auto s = synthetic_for({3, 224, 224}, 1000);
  EXPECT_EQ(s.train.size(), (int64_t(64) << 20) / (3 * 224 * 224));
  EXPECT_EQ(s.test.size(), s.train.size() / 4);
  EXPECT_EQ(s.train.classes, 1000);
  EXPECT_EQ(synthetic_for({3, 2048, 2048}, 10).train.size(), 64);
}

TEST(CompressRun, ResumeKeepsAFinishedRunAndRefusesAnotherOne) {
  testing::TempDir dir;
  CompressJob job = small_job(dir);
  CompressRun(job).run();
  const std::string model = slurp(dir.file("out/model.nnslim"));
  job.resume = true;
  CompressRunOutcome again = CompressRun(job).run();
  EXPECT_TRUE(again.already_finished);
  EXPECT_EQ(slurp(dir.file("out/model.nnslim")), model);
  job.settings.finetune_epochs = 2;  // another run in the same directory
  try {
    CompressRun(job).run();
    ADD_FAILURE() << "a resume with other options was accepted";
  } catch (const RequestError& e) {
    EXPECT_NE(std::string(e.what()).find("--finetune-epochs 1, now 2"), std::string::npos)
        << e.what();
  }
}

TEST(CompressRun, BadRequestsFailBeforeAnythingIsWritten) {
  testing::TempDir dir;
  CompressJob job = small_job(dir);
  job.method_options["target-macs"] = "1.5";
  EXPECT_THROW(CompressRun{job}, RequestError);
  job = small_job(dir);
  job.settings.finetune_lr = -1;
  EXPECT_THROW(CompressRun{job}, RequestError);
  job = small_job(dir);
  job.method = "nosuch";
  EXPECT_THROW(CompressRun{job}, RequestError);
  job = small_job(dir);
  job.input_model = dir.path;  // a directory
  EXPECT_THROW(CompressRun(job).run(), RequestError);
  EXPECT_FALSE(fs::exists(dir.file("out")));
}

// Every option reads back what it was given, and set() refuses text of the wrong kind naming
// the option.
TEST(RunSettings, EveryOptionRoundTripsThroughItsText) {
  for (const auto& o : run_options()) {
    RunSettings s;
    const std::string value =
        o.is_flag()               ? "true"
        : o.key == "milestones"   ? "3,7"
        : o.key == "dist-backend" ? "gloo"
        : o.key == "normalize"    ? "dataset"
        : o.key == "dataset" || o.key == "schedule" || o.key == "device" || o.key == "data-dir"
            ? "step"
            : "3";
    o.set(s, value);
    EXPECT_EQ(o.get(s), value) << o.key;
    if (!o.is_flag() && o.key != "dataset" && o.key != "schedule" && o.key != "device" &&
        o.key != "data-dir") {
      try {
        o.set(s, "abc");
        ADD_FAILURE() << o.key << " took 'abc'";
      } catch (const RequestError& e) {
        EXPECT_NE(std::string(e.what()).find("--" + o.key), std::string::npos) << e.what();
      }
    }
  }
  RunSettings s;
  find_run_option("no-augment")->set(s, "true");
  EXPECT_FALSE(s.train.augment);  // the --no-X flags switch their setting off
  find_run_option("lr")->set(s, "0.1");
  EXPECT_EQ(find_run_option("lr")->get(s), "0.1");  // not 0.10000000000000001
}

// run.json's settings are the options that shape the result; runtime ones may change.
TEST(RunSettings, ResultSettingsLeaveOutTheRuntime) {
  Json j = result_settings(RunSettings{});
  for (const char* k :
       {"epochs", "lr", "dataset", "finetune-epochs", "recalibrate-bn", "val-split"})
    EXPECT_TRUE(j.has(k)) << k;
  for (const char* k :
       {"threads", "device", "data-dir", "quiet", "checkpoint-minutes", "no-latency"})
    EXPECT_FALSE(j.has(k)) << k;
}

// A recipe's keys go to the run's settings or to the stage's method, by the table.
TEST(Recipe, StageKeysGoToTheSettingsOrTheMethod) {
  testing::TempDir dir;
  std::ofstream(dir.file("r.toml")) << "epochs = 2\n[[stage]]\nmethod = \"magnitude\"\n"
                                       "target-macs = 0.6\nfinetune-lr = 0.05\n";
  Recipe recipe = parse_recipe(dir.file("r.toml"));
  CompressRun run = stage_run(recipe, 0, small_job(dir));
  EXPECT_EQ(run.job().settings.train.epochs, 2);
  EXPECT_EQ(run.job().settings.finetune_lr, 0.05);
  EXPECT_EQ(run.job().method_options.at("target-macs"), "0.6");
  EXPECT_TRUE(run.job().given.count("epochs"));
  EXPECT_FALSE(run.job().method_options.count("epochs"));
}

}  // namespace
}  // namespace nnslim
