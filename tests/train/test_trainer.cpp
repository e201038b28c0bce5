// The training loop: exact resume, method hooks that change nothing, NaN guard, schedules,
// convergence on a tiny learnable set, checkpoint files.
#include "nnslim/graph/serialize.h"
#include "nnslim/train/trainer.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace nnslim {
namespace {

using testing::small_options;

using testing::same_weights;

using testing::CrashAtEpoch;

// Overrides every hook without changing anything.
struct Noop : Method {
  std::string name() const override { return "noop"; }
  int calls = 0;
  void begin(Context&) override { ++calls; }
  void before_step(Context&) override { ++calls; }
  torch::Tensor penalty(Context&) override {
    ++calls;
    return {};
  }
  void after_backward(Context&) override { ++calls; }
  void after_step(Context&) override { ++calls; }
  void end_epoch(Context&) override { ++calls; }
};

TEST(Trainer, ResumeEqualsUninterruptedRun) {
  Graph full = testing::fixture_all_ops(1);  // has dropout: exercises the RNG reseeding
  auto d2 = testing::tiny_data({2, 8, 8}, 5);
  Trainer(full, small_options(3)).fit(d2.train, &d2.test);

  testing::TempDir dir;
  Graph interrupted = testing::fixture_all_ops(1);
  auto opt = small_options(3);
  opt.out_dir = dir.path;
  EXPECT_THROW(
      Trainer(interrupted, opt, {std::make_shared<CrashAtEpoch>(2)}).fit(d2.train, &d2.test),
      std::runtime_error);
  Checkpoint ck = load_checkpoint(checkpoint_path(dir.path));
  EXPECT_EQ(ck.epochs_done, 2);
  EXPECT_EQ(ck.metrics_lines.size(), 2u);
  Graph resumed = testing::fixture_all_ops(99);  // different init: everything must come from ck
  auto r = Trainer(resumed, opt).fit(d2.train, &d2.test, &ck);
  EXPECT_EQ(r.history.size(), 1u);
  EXPECT_TRUE(same_weights(full, resumed));
  // metrics.jsonl holds all three epochs.
  std::ifstream f(dir.file("metrics.jsonl"));
  int lines = 0;
  for (std::string l; std::getline(f, l);) ++lines;
  EXPECT_EQ(lines, 3);
}

// A checkpoint inside an epoch (here after every batch; by default every 10 minutes) resumes
// exactly: the same weights, dropout masks included, and the interrupted epoch's record (loss,
// accuracy, method logs) is the uninterrupted one's.
TEST(Trainer, ResumeInsideAnEpochEqualsUninterruptedRun) {
  auto d = testing::tiny_data({2, 8, 8}, 5);
  struct CountSteps : Method {  // a method log that accumulates within the epoch
    std::string name() const override { return "count"; }
    void after_step(Context& c) override {
      if (c.log) (*c.log)["steps_seen"] += 1;
    }
  };
  Graph full = testing::fixture_all_ops(1);  // has dropout
  auto whole =
      Trainer(full, small_options(2), {std::make_shared<CountSteps>()}).fit(d.train, nullptr);

  testing::TempDir dir;
  auto opt = small_options(2);
  opt.out_dir = dir.path;
  opt.checkpoint_seconds = 1e-9;
  Graph cut = testing::fixture_all_ops(1);
  EXPECT_THROW(
      Trainer(cut, opt, {std::make_shared<CountSteps>(), std::make_shared<CrashAtEpoch>(1, 4)})
          .fit(d.train, nullptr),
      std::runtime_error);
  Checkpoint ck = load_checkpoint(checkpoint_path(dir.path));
  EXPECT_EQ(ck.epochs_done, 1);
  EXPECT_EQ(ck.in_epoch.batches_done, 4);
  EXPECT_EQ(ck.in_epoch.batches_per_epoch, 6);  // 96 images, batch 16
  EXPECT_EQ(ck.in_epoch.seen, 64);
  EXPECT_EQ(resume_position(ck), "in epoch 2 after batch 4 of 6");
  EXPECT_EQ(ck.metrics_lines.size(), 1u);

  Graph resumed = testing::fixture_all_ops(99);
  auto rest = Trainer(resumed, opt, {std::make_shared<CountSteps>()}).fit(d.train, nullptr, &ck);
  EXPECT_TRUE(same_weights(full, resumed));
  ASSERT_EQ(rest.history.size(), 1u);
  EXPECT_EQ(rest.history[0].train_loss, whole.history[1].train_loss);
  EXPECT_EQ(rest.history[0].train_top1, whole.history[1].train_top1);
  EXPECT_EQ(rest.history[0].lr, whole.history[1].lr);
  EXPECT_EQ(rest.history[0].extra.at("steps_seen"), 6);
  auto end = load_checkpoint(checkpoint_path(dir.path));
  EXPECT_EQ(end.epochs_done, 2);
  EXPECT_EQ(end.in_epoch.batches_done, 0);

  // The position only means something with the same batches per epoch.
  auto other = opt;
  other.batch_size = 8;
  Graph g = testing::fixture_all_ops(99);
  try {
    Trainer(g, other).fit(d.train, nullptr, &ck);
    FAIL() << "resumed with another batch size";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("same data and --batch-size"), std::string::npos)
        << e.what();
  }
}

TEST(Trainer, MethodWithNoEffectEqualsPlainTraining) {
  auto d = testing::tiny_data();
  Graph a = testing::tiny_convnet(2), b = testing::tiny_convnet(2);
  Trainer(a, small_options(2)).fit(d.train, nullptr);
  auto noop = std::make_shared<Noop>();
  Trainer(b, small_options(2), {noop}).fit(d.train, nullptr);
  EXPECT_GT(noop->calls, 10);
  EXPECT_TRUE(same_weights(a, b));
}

TEST(Trainer, ConvergesOnTinyLearnableData) {
  auto d = testing::tiny_data({1, 8, 8}, 3, 192, 96);
  Graph g = testing::tiny_convnet(4);
  auto opt = small_options(6);
  opt.augment = false;
  auto r = Trainer(g, opt).fit(d.train, &d.test);
  EXPECT_GT(r.history.back().eval.top1, 90.0);
  EXPECT_LT(r.history.back().train_loss, r.history.front().train_loss);
}

// Without a terminal (a log file) a long epoch prints plain progress lines, never a '\r' redraw;
// the default interval (a minute) keeps short epochs to their summary line.
TEST(Trainer, LogFileGetsPlainProgressLinesOnLongEpochsOnly) {
  auto d = testing::tiny_data();
  auto run = [&](double log_seconds) {
    Graph g = testing::tiny_convnet(2);
    std::ostringstream log;
    auto opt = small_options(1);
    opt.progress = &log;
    opt.progress_log_seconds = log_seconds;
    Trainer(g, opt).fit(d.train, nullptr);
    return log.str();
  };
  auto count = [](const std::string& s, const std::string& what) {
    int n = 0;
    for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
  };
  std::string every_step = run(0), quiet = run(60);
  const int steps = 96 / 16;  // small_options: batch 16 over tiny_data's 96 images
  EXPECT_EQ(count(every_step, "ETA"), steps - 1) << every_step;  // the last is the summary
  EXPECT_EQ(count(every_step, "\r"), 0);
  EXPECT_EQ(count(quiet, "ETA"), 0) << quiet;
  EXPECT_EQ(count(quiet, "epoch   1/1"), 1) << quiet;
}

// Each epoch's summary line but the last tells how long the rest of the run will take.
TEST(Trainer, EpochLinesGiveTheRunsEta) {
  auto d = testing::tiny_data();
  Graph g = testing::tiny_convnet(2);
  std::ostringstream log;
  auto opt = small_options(3);
  opt.progress = &log;
  Trainer(g, opt).fit(d.train, nullptr);
  std::istringstream lines(log.str());
  std::vector<std::string> summary;
  for (std::string l; std::getline(lines, l);)
    if (l.rfind("epoch ", 0) == 0) summary.push_back(l);
  ASSERT_EQ(summary.size(), 3u) << log.str();
  EXPECT_NE(summary[0].find("run ETA 0:0"), std::string::npos) << summary[0];
  EXPECT_NE(summary[1].find("run ETA 0:0"), std::string::npos) << summary[1];
  EXPECT_EQ(summary[2].find("run ETA"), std::string::npos) << summary[2];
}

TEST(Trainer, NanLossStopsWithClearMessageAndKeepsCheckpoint) {
  auto d = testing::tiny_data();
  testing::TempDir dir;
  Graph g = testing::tiny_convnet(5);
  auto opt = small_options(3);
  opt.out_dir = dir.path;
  struct PoisonAtEpoch : Method {
    std::string name() const override { return "poison"; }
    void before_step(Context& c) override {
      if (c.epoch == 1) {
        torch::NoGradGuard ng;
        c.graph.find("fc")->params.at("weight").fill_(std::nan(""));
      }
    }
  };
  try {
    Trainer(g, opt, {std::make_shared<PoisonAtEpoch>()}).fit(d.train, &d.test);
    FAIL() << "expected DivergedError";
  } catch (const DivergedError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("loss is nan at epoch 2, batch 1"), std::string::npos) << m;
    EXPECT_NE(m.find("checkpoint (epoch 1)"), std::string::npos) << m;
  }
  auto ck = load_checkpoint(checkpoint_path(dir.path));
  EXPECT_EQ(ck.epochs_done, 1);
  EXPECT_FALSE(ck.graph.find("fc")->params.at("weight").isnan().any().item<bool>());
}

// A step that leaves NaN weights behind a finite loss (here: the last step of epoch 2) is caught
// before its epoch's checkpoint would overwrite the last good one, and before fit() returns.
TEST(Trainer, NanWeightsAfterTheLastStepAreCaughtBeforeTheCheckpoint) {
  auto d = testing::tiny_data();
  struct PoisonAfterLastStep : Method {
    std::string name() const override { return "poison"; }
    void after_step(Context& c) override {
      if (c.epoch == 1 && c.batch == c.steps_per_epoch - 1) {
        torch::NoGradGuard ng;
        c.graph.find("fc")->params.at("weight").fill_(std::nan(""));
      }
    }
  };
  for (bool with_dir : {true, false}) {
    testing::TempDir dir;
    Graph g = testing::tiny_convnet(5);
    auto opt = small_options(3);
    if (with_dir) opt.out_dir = dir.path;
    try {
      Trainer(g, opt, {std::make_shared<PoisonAfterLastStep>()}).fit(d.train, &d.test);
      FAIL() << "expected DivergedError";
    } catch (const DivergedError& e) {
      std::string m = e.what();
      EXPECT_NE(m.find("a weight became NaN or Inf at epoch 2, batch 6"), std::string::npos) << m;
      EXPECT_EQ(m.find("checkpoint (epoch 1)") != std::string::npos, with_dir) << m;
    }
    if (!with_dir) continue;
    auto ck = load_checkpoint(checkpoint_path(dir.path));
    EXPECT_EQ(ck.epochs_done, 1);
    EXPECT_FALSE(ck.graph.find("fc")->params.at("weight").isnan().any().item<bool>());
  }
}

TEST(Trainer, OptionsAreValidated) {
  Graph g = testing::tiny_convnet();
  auto o = small_options(1);
  o.batch_size = 0;
  EXPECT_THROW(Trainer(g, o), c10::Error);
  o = small_options(1);
  o.schedule.kind = "exponential";
  EXPECT_THROW(Trainer(g, o), c10::Error);
  o = small_options(1);
  o.momentum = 1.5;
  EXPECT_THROW(Trainer(g, o), c10::Error);
}

TEST(Trainer, WrongImageShapeIsAnError) {
  Graph g = testing::tiny_convnet();
  auto d = testing::tiny_data({1, 16, 16});
  EXPECT_THROW(Trainer(g, small_options(1)).fit(d.train, nullptr), c10::Error);
}

TEST(Schedule, Shapes) {
  LrSchedule s;
  s.base_lr = 0.1;
  s.kind = "cosine";
  EXPECT_DOUBLE_EQ(s.at(0, 0, 10), 0.1);
  EXPECT_NEAR(s.at(5, 0, 10), 0.05, 1e-12);
  EXPECT_NEAR(s.at(10, 0, 10), 0.0, 1e-12);
  s.kind = "multistep";
  s.milestones = {3, 6};
  EXPECT_DOUBLE_EQ(s.at(2, 0.9, 10), 0.1);
  EXPECT_NEAR(s.at(3, 0, 10), 0.01, 1e-12);
  EXPECT_NEAR(s.at(7, 0, 10), 0.001, 1e-12);
  s.kind = "step";
  s.step_size = 4;
  EXPECT_NEAR(s.at(8, 0.5, 10), 0.001, 1e-12);
  s.kind = "constant";
  s.warmup_epochs = 2;
  EXPECT_NEAR(s.at(0, 0.5, 10), 0.025, 1e-12);
  EXPECT_NEAR(s.at(3, 0, 10), 0.1, 1e-12);
  s.milestones = {5, 3};
  EXPECT_THROW(s.validate(), c10::Error);
}

TEST(Checkpoint, CorruptCheckpointIsAClearError) {
  testing::TempDir dir;
  Checkpoint ck;
  ck.graph = testing::tiny_convnet();
  ck.epochs_done = 4;
  ck.options["lr"] = "0.1";
  ck.in_epoch.batches_done = 7;
  ck.in_epoch.batches_per_epoch = 9;
  ck.in_epoch.loss_sum = 1.5;
  ck.in_epoch.correct = 3;
  ck.in_epoch.seen = 10;
  ck.in_epoch.extra["trp_seconds"] = 0.25;
  save_checkpoint(ck, dir.file("c"));
  auto back = load_checkpoint(dir.file("c"));
  EXPECT_EQ(back.epochs_done, 4);
  EXPECT_EQ(back.options, ck.options);
  EXPECT_EQ(back.in_epoch.batches_done, 7);
  EXPECT_EQ(back.in_epoch.loss_sum, 1.5);
  EXPECT_EQ(back.in_epoch.seen, 10);
  EXPECT_EQ(back.in_epoch.extra, ck.in_epoch.extra);
  {
    std::fstream f(dir.file("c"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x7f');
  }
  try {
    load_checkpoint(dir.file("c"));
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("checksum mismatch (corrupt nnslim checkpoint"),
              std::string::npos);
  }
  // A model file is not a checkpoint.
  save_graph(ck.graph, dir.file("m"));
  EXPECT_THROW(load_checkpoint(dir.file("m")), c10::Error);
}

}  // namespace
}  // namespace nnslim
