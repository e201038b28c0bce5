// An interrupted compression run (`nnslim compress --resume`) continues from its checkpoints,
// method state included, and ends with the weights of an uninterrupted run.
#include "nnslim/methods/registry.h"
#include "nnslim/train/compress.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

namespace nnslim {
namespace {

// Forwards every hook to a real method and throws at the start of epoch `crash_epoch`, after the
// checkpoints of the earlier epochs were written: a power cut in the middle of a phase.
struct Crashing : Method {
  Crashing(std::shared_ptr<Method> m, int64_t epoch, bool in_finetune)
      : inner(std::move(m)), crash_epoch(epoch), finetune(in_finetune) {}
  std::shared_ptr<Method> inner;
  int64_t crash_epoch;
  bool finetune;

  struct FinetuneCrash : Method {
    std::shared_ptr<Method> inner;
    int64_t crash_epoch;
    std::string name() const override { return inner ? inner->name() : "crash"; }
    void before_step(Context& c) override {
      if (c.epoch == crash_epoch) throw std::runtime_error("simulated crash in fine-tuning");
      if (inner) inner->before_step(c);
    }
    void after_backward(Context& c) override {
      if (inner) inner->after_backward(c);
    }
    void after_step(Context& c) override {
      if (inner) inner->after_step(c);
    }
    void save(Writer& w) const override {
      if (inner) inner->save(w);
    }
    void load(Reader& r) override {
      if (inner) inner->load(r);
    }
  };

  std::string name() const override { return inner->name(); }
  std::unique_ptr<torch::optim::Optimizer> make_optimizer(Graph& g,
                                                          const OptimizerSettings& o) override {
    return inner->make_optimizer(g, o);
  }
  void begin(Context& c) override { inner->begin(c); }
  void before_step(Context& c) override {
    if (!finetune && c.epoch == crash_epoch) throw std::runtime_error("simulated crash");
    inner->before_step(c);
  }
  torch::Tensor penalty(Context& c) override { return inner->penalty(c); }
  void after_backward(Context& c) override { inner->after_backward(c); }
  void after_step(Context& c) override { inner->after_step(c); }
  void end_epoch(Context& c) override { inner->end_epoch(c); }
  void finalize(FinalizeContext& c) override { inner->finalize(c); }
  std::shared_ptr<Method> finetune_method() override {
    if (!finetune) return inner->finetune_method();
    auto f = std::make_shared<FinetuneCrash>();
    f->inner = inner->finetune_method();
    f->crash_epoch = crash_epoch;
    return f;
  }
  void describe(Json& out) const override { inner->describe(out); }
  void save(Writer& w) const override { inner->save(w); }
  void load(Reader& r) override { inner->load(r); }
};

void check_resume(const std::string& method, const std::map<std::string, std::string>& values,
                  bool crash_in_finetune) {
  auto data = testing::tiny_data({2, 8, 8}, 5);
  Graph base = testing::fixture_all_ops(2);
  auto options = [&](const std::string& dir) {
    CompressOptions o;
    o.train = testing::small_options(3);
    o.train.out_dir = dir;
    o.finetune_epochs = 3;
    o.measure_latency = false;
    return o;
  };
  testing::TempDir a, b;
  Graph full = base.clone();
  compress(full, create_method(method, values), data.train, data.test, options(a.path));

  Graph interrupted = base.clone();
  auto crashing = std::make_shared<Crashing>(create_method(method, values), 2, crash_in_finetune);
  EXPECT_THROW(compress(interrupted, crashing, data.train, data.test, options(b.path)),
               std::runtime_error);

  Graph resumed = base.clone();
  auto o = options(b.path);
  o.resume = true;
  compress(resumed, create_method(method, values), data.train, data.test, o);
  EXPECT_TRUE(testing::same_weights(full, resumed))
      << method << (crash_in_finetune ? " (fine-tune)" : "");
  EXPECT_FALSE(testing::same_weights(full, interrupted));  // the crash really cut the run short
}

TEST(CompressResume, HspgInterruptedInTrainingPhase) {
  check_resume("hspg", {{"lambda", "0.01"}}, false);
}
TEST(CompressResume, GrdaInterruptedInTrainingPhase) {
  check_resume("grda", {{"c", "0.05"}}, false);
}
TEST(CompressResume, MagnitudeInterruptedInFinetuning) {
  check_resume("magnitude", {{"ratio", "0.5"}}, true);
}
// Unify: ADMM state (Z, U, rho) in training, rounds every 4 batches across epoch ends (6 batches
// per epoch here); the frozen structure in masked retraining.
const std::map<std::string, std::string> kUnify = {
    {"prune", "0.5"}, {"unify", "0.25"}, {"rho", "0.05"}, {"round-batches", "4"}};
TEST(CompressResume, UnifyInterruptedInTrainingPhase) { check_resume("unify", kUnify, false); }
TEST(CompressResume, UnifyInterruptedInFinetuning) { check_resume("unify", kUnify, true); }

}  // namespace
}  // namespace nnslim
