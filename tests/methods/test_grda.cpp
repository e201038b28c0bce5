// gRDA / directional pruning: the invariants of METHODS.md §5.5, exact resume, the "grda" lr
// schedule, the compress pipeline and the CLI.
#include "nnslim/graph/cost.h"
#include "nnslim/graph/execute.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/methods/grda.h"
#include "nnslim/methods/registry.h"
#include "nnslim/train/checkpoint.h"
#include "nnslim/train/compress.h"
#include "nnslim/train/trainer.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

namespace nnslim {
namespace {

using testing::small_options;

using testing::same_weights;

std::shared_ptr<Grda> grda(double c, double mu) {
  GrdaOptions o;
  o.c = c;
  o.mu = mu;
  return std::make_shared<Grda>(o);
}

// A double-precision leaf parameter.
torch::Tensor param(std::vector<int64_t> shape, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn(shape, torch::kDouble).requires_grad_(true);
}

void set_grad(torch::Tensor& p, const torch::Tensor& g) { p.mutable_grad() = g.clone(); }

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Invariant 1, through the Trainer: gRDA with c = 0 is plain SGD (no momentum, no weight decay)
// bit for bit, from the same init and the same batches, with a per-step (cosine) schedule.
TEST(Grda, ZeroCEqualsPlainSgdThroughTheTrainer) {
  auto d = testing::tiny_data();
  Graph sgd = testing::tiny_convnet(2), g = testing::tiny_convnet(2);
  auto o = small_options(3);
  o.momentum = 0;
  o.weight_decay = 0;
  Trainer(sgd, o).fit(d.train, nullptr);
  auto m = small_options(3);  // gRDA ignores momentum 0.9 / weight decay 5e-4 of the defaults
  Trainer(g, m, {grda(0.0, 0.51)}).fit(d.train, nullptr);
  EXPECT_TRUE(same_weights(sgd, g));
  EXPECT_FALSE(same_weights(sgd, testing::tiny_convnet(2)));  // training did move the weights
}

// Invariant 1 on the optimizer alone, in double, against torch::optim::SGD.
TEST(Grda, ZeroCEqualsSgdStepByStep) {
  auto a = param({5, 7}, 1), b = a.detach().clone().requires_grad_(true);
  torch::optim::SGD sgd({a}, torch::optim::SGDOptions(0.1));
  optim::GrdaOptimizer opt({b}, optim::GrdaOptimizerOptions(0.1).c(0).mu(0.6));
  for (int k = 0; k < 20; ++k) {
    auto g = torch::randn({5, 7}, torch::kDouble);
    set_grad(a, g);
    set_grad(b, g);
    double lr = 0.1 / (1 + k);
    sgd.param_groups()[0].options().set_lr(lr);
    opt.param_groups()[0].options().set_lr(lr);
    sgd.step();
    opt.step();
    ASSERT_TRUE(a.equal(b)) << "step " << k;
  }
}

// Invariant 2: constant lr -> G = c * lr^(mu+1/2) * n^mu; the METHODS.md example.
TEST(Grda, ThresholdClosedFormForConstantLr) {
  const double c = 0.005, lr = 0.1, mu = 0.55;
  const int64_t n = 5005;
  auto p = param({3}, 2);
  optim::GrdaOptimizer opt({p}, optim::GrdaOptimizerOptions(lr).c(c).mu(mu));
  auto zero = torch::zeros({3}, torch::kDouble);
  for (int64_t k = 0; k < n; ++k) {
    set_grad(p, zero);
    opt.step();
  }
  const auto* s = opt.state_of(p);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->step(), n);
  double expect = c * std::pow(lr, mu + 0.5) * std::pow(double(n), mu);
  EXPECT_NEAR(s->threshold(), expect, 1e-6 * expect);
  EXPECT_NEAR(s->threshold(), 0.0483, 5e-4);  // METHODS.md §5.5 example
  EXPECT_DOUBLE_EQ(opt.max_threshold(), s->threshold());
}

// Invariant 3: a piecewise lr sums the increments at the rate of each step.
TEST(Grda, ThresholdForPiecewiseLrSumsCurrentRates) {
  const double c = 0.01, mu = 0.7;
  auto p = param({4}, 3);
  optim::GrdaOptimizer opt({p}, optim::GrdaOptimizerOptions(0.1).c(c).mu(mu));
  double expect = 0;
  const int n = 60;
  for (int k = 1; k <= n; ++k) {
    double lr = k <= 20 ? 0.1 : k <= 40 ? 0.03 : 0.001;
    opt.param_groups()[0].options().set_lr(lr);
    set_grad(p, torch::randn({4}, torch::kDouble));
    opt.step();
    expect += c * std::pow(lr, mu + 0.5) * (std::pow(k, mu) - std::pow(k - 1, mu));
  }
  double G = opt.state_of(p)->threshold();
  EXPECT_NEAR(G, expect, 1e-12 * expect);
  double last_rate_only = c * std::pow(0.001, mu + 0.5) * std::pow(n, mu);
  EXPECT_GT(G, 10 * last_rate_only);  // not c * lr_now^(mu+1/2) * n^mu
}

// Invariant 4: |acc| <= G -> exactly (+)0; otherwise |w| = |acc| - G with the sign of acc.
TEST(Grda, WeightsAreTheSoftThresholdedAccumulator) {
  auto p = param({40, 30}, 4);
  optim::GrdaOptimizer opt({p}, optim::GrdaOptimizerOptions(0.05).c(2.0).mu(0.6));
  for (int k = 0; k < 5; ++k) {
    set_grad(p, torch::randn({40, 30}, torch::kDouble));
    opt.step();
  }
  const auto* s = opt.state_of(p);
  auto acc = s->accumulator(), w = p.detach();
  const double G = s->threshold();
  auto pruned = acc.abs() <= G;
  int64_t zeros = pruned.sum().item<int64_t>();
  EXPECT_GT(zeros, 0);
  EXPECT_LT(zeros, w.numel());
  EXPECT_TRUE(w.masked_select(pruned).eq(0).all().item<bool>());
  EXPECT_FALSE(w.masked_select(pruned).signbit().any().item<bool>());  // +0.0, not -0.0
  auto kept = pruned.logical_not();
  EXPECT_TRUE(w.abs().masked_select(kept).equal((acc.abs() - G).masked_select(kept)));
  EXPECT_TRUE(w.sign().masked_select(kept).equal(acc.sign().masked_select(kept)));
}

// Invariant 5: the accumulator starts at w0: after one step it is w0 - lr * grad f(w0).
TEST(Grda, AccumulatorAfterFirstStepIsW0MinusLrGrad) {
  auto p = param({6, 4}, 5);
  auto w0 = p.detach().clone();
  auto x = torch::randn({4, 3}, torch::kDouble);
  auto loss = torch::mm(p, x).pow(2).sum();
  loss.backward();
  auto grad = p.grad().clone();
  const double lr = 0.02;
  optim::GrdaOptimizer opt({p}, optim::GrdaOptimizerOptions(lr).c(0.5).mu(0.55));
  opt.step();
  auto acc = opt.state_of(p)->accumulator();
  EXPECT_TRUE(acc.equal(w0.clone().add_(grad, -lr)));  // the very op SGD applies to w
  EXPECT_TRUE(acc.allclose(w0 - lr * grad, 1e-15, 1e-15));
  EXPECT_FALSE(acc.allclose(-lr * grad));
  EXPECT_GT(opt.state_of(p)->threshold(), 0);
}

// Invariant 6: a parameter without a gradient keeps its weights, counter and threshold.
TEST(Grda, ParameterWithoutGradientDoesNotAdvance) {
  auto a = param({8}, 6), b = param({8}, 7), never = param({8}, 8);
  optim::GrdaOptimizer opt({a, b, never}, optim::GrdaOptimizerOptions(0.1).c(0.1).mu(0.6));
  set_grad(a, torch::ones({8}, torch::kDouble));
  set_grad(b, torch::ones({8}, torch::kDouble));
  opt.step();
  auto b_after_1 = b.detach().clone();
  double Gb = opt.state_of(b)->threshold();
  b.mutable_grad() = torch::Tensor();  // no gradient in the next two steps
  for (int k = 0; k < 2; ++k) {
    set_grad(a, torch::ones({8}, torch::kDouble));
    opt.step();
  }
  EXPECT_EQ(opt.state_of(a)->step(), 3);
  EXPECT_EQ(opt.state_of(b)->step(), 1);
  EXPECT_EQ(opt.state_of(b)->threshold(), Gb);
  EXPECT_TRUE(b.detach().equal(b_after_1));
  EXPECT_EQ(opt.state_of(never), nullptr);
  // When b gets a gradient again its own counter continues at 2, not at a's 4.
  set_grad(b, torch::ones({8}, torch::kDouble));
  opt.step();
  EXPECT_EQ(opt.state_of(b)->step(), 2);
  double expect = Gb + 0.1 * std::pow(0.1, 1.1) * (std::pow(2.0, 0.6) - 1.0);
  EXPECT_NEAR(opt.state_of(b)->threshold(), expect, 1e-15);
}

// Invariant 7: larger c or mu -> (weakly) higher sparsity on a fixed toy problem.
TEST(Grda, LargerCOrMuGivesHigherSparsity) {
  auto d = testing::tiny_data();
  auto sparsity = [&](double c, double mu) {
    Graph g = testing::tiny_convnet(9);
    auto o = small_options(4);
    o.augment = false;
    o.schedule.kind = "constant";
    Trainer(g, o, {grda(c, mu)}).fit(d.train, nullptr);
    return sparsity_report(g).sparsity();
  };
  const double mid = sparsity(0.2, 0.6);
  std::vector<double> by_c = {sparsity(0.0, 0.6), mid, sparsity(0.5, 0.6)};
  std::vector<double> by_mu = {sparsity(0.2, 0.51), mid, sparsity(0.2, 1.0)};
  EXPECT_EQ(by_c.front(), 0.0);
  for (size_t i = 1; i < by_c.size(); ++i) EXPECT_GE(by_c[i], by_c[i - 1]) << "c #" << i;
  for (size_t i = 1; i < by_mu.size(); ++i) EXPECT_GE(by_mu[i], by_mu[i - 1]) << "mu #" << i;
  EXPECT_GT(by_c.back(), 0.3);
  EXPECT_GT(by_mu.back(), by_mu.front());
}

// The optimizer state survives a save/load round trip onto other tensors (same order).
TEST(Grda, OptimizerStateRoundTrip) {
  auto a = param({3, 3}, 10), b = param({5}, 11);
  optim::GrdaOptimizer opt({a, b}, optim::GrdaOptimizerOptions(0.1).c(0.3).mu(0.55));
  for (int k = 0; k < 3; ++k) {
    set_grad(a, torch::randn({3, 3}, torch::kDouble));
    if (k != 1)
      set_grad(b, torch::randn({5}, torch::kDouble));
    else
      b.mutable_grad() = torch::Tensor();
    opt.step();
  }
  torch::serialize::OutputArchive out;
  opt.save(out);
  std::ostringstream os;
  out.save_to(os);
  auto a2 = a.detach().clone().requires_grad_(true), b2 = b.detach().clone().requires_grad_(true);
  optim::GrdaOptimizer back({a2, b2}, optim::GrdaOptimizerOptions(0.5));
  torch::serialize::InputArchive in;
  std::istringstream is(os.str());
  in.load_from(is);
  back.load(in);
  for (auto [p, q] : {std::make_pair(a, a2), std::make_pair(b, b2)}) {
    ASSERT_NE(back.state_of(q), nullptr);
    EXPECT_EQ(back.state_of(q)->step(), opt.state_of(p)->step());
    EXPECT_EQ(back.state_of(q)->threshold(), opt.state_of(p)->threshold());
    EXPECT_TRUE(back.state_of(q)->accumulator().equal(opt.state_of(p)->accumulator()));
  }
  // LibTorch's load() restores per-parameter state only; the options (c, mu) come from the
  // constructor -- the Method rebuilds them from its own options on resume.
}

// A run interrupted after epoch 2 and resumed from its checkpoint ends with the same weights as
// an uninterrupted one: the accumulators, counters and thresholds are in the checkpoint. The test
// can tell: without the optimizer state (accumulator restarted at the checkpoint's weights,
// counter at 0) the result differs.
TEST(Grda, ResumeEqualsUninterruptedRun) {
  auto opt = small_options(3);
  opt.schedule.kind = "grda";
  auto r = testing::crash_and_resume(
      [] { return std::vector<std::shared_ptr<Method>>{grda(0.1, 0.6)}; }, opt);
  EXPECT_GT(sparsity_report(r.full).zeros, 0);
  EXPECT_TRUE(r.resumed_equals_full);
  EXPECT_TRUE(r.resumed_inside_epoch_equals_full);
  EXPECT_FALSE(r.without_optimizer_state_equals_full);
}

// A restored accumulator of another shape than its weight is refused naming the parameter; it
// used to broadcast in add_ and resize the weight in sub_out (issue 31).
TEST(Grda, RestoredAccumulatorIsShapeChecked) {
  auto d = testing::tiny_data();
  Graph g = testing::tiny_convnet(2);
  testing::TempDir dir;
  auto o = small_options(1);
  o.out_dir = dir.path;
  Trainer(g, o, {grda(0.1, 0.6)}).fit(d.train, nullptr);
  Checkpoint ck = load_checkpoint(checkpoint_path(dir.path));
  // The same number of tensors, each [2, ...its shape]: broadcastable into, not equal to, it.
  std::vector<torch::Tensor> fakes;
  for (const auto& p : ck.graph.parameters()) {
    auto shape = p.sizes().vec();
    shape.insert(shape.begin(), 2);
    fakes.push_back(torch::zeros(shape).requires_grad_(true));
  }
  optim::GrdaOptimizer fake(fakes, optim::GrdaOptimizerOptions(0.1));
  for (auto& f : fakes) f.mutable_grad() = torch::ones_like(f);
  fake.step();
  torch::serialize::OutputArchive out;
  fake.save(out);
  std::ostringstream os;
  out.save_to(os);
  ck.optimizer_state = os.str();
  Graph again = ck.graph.clone();
  o.epochs = 2;
  try {
    Trainer(again, o, {grda(0.1, 0.6)}).fit(d.train, nullptr, &ck);
    ADD_FAILURE() << "a mis-shaped accumulator was accepted";
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("optimizer state for parameter '" + ck.graph.named_parameters()[0].first +
                       "' has a gRDA accumulator of shape [2, "),
              std::string::npos)
        << msg;
  }
}

TEST(Grda, OptionsAreValidated) {
  auto msg = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const c10::Error& e) {
      return std::string(e.what_without_backtrace());
    }
    return std::string();
  };
  EXPECT_NE(msg([] {
              create_method("grda", {{"mu", "-1"}});
            }).find("grda: mu must be > 0, got -1"),
            std::string::npos);
  EXPECT_NE(msg([] {
              create_method("grda", {{"c", "-0.1"}});
            }).find("grda: c must be >= 0"),
            std::string::npos);
  EXPECT_NE(msg([] {
              create_method("grda", {{"mu", "abc"}});
            }).find("'mu' expects a number"),
            std::string::npos);
  EXPECT_NE(msg([] {
              create_method("grda", {{"momentum", "0.9"}});
            }).find("unknown option"),
            std::string::npos);
  auto p = param({2}, 0);
  EXPECT_THROW(optim::GrdaOptimizer({p}, optim::GrdaOptimizerOptions(0.1).mu(0)), c10::Error);
  auto m = create_method("grda", {{"c", "0.001"}, {"mu", "0.6"}});
  EXPECT_EQ(m->name(), "grda");
  EXPECT_EQ(std::dynamic_pointer_cast<Grda>(m)->options().mu, 0.6);
  // The Trainer's per-step set_lr reaches the options (OptimizerOptions::set_lr is overridden).
  optim::GrdaOptimizer opt({p}, optim::GrdaOptimizerOptions(0.1));
  opt.param_groups()[0].options().set_lr(0.25);
  EXPECT_EQ(opt.param_groups()[0].options().get_lr(), 0.25);
}

// §5.3: constant for 50% of the epochs, linear decay to 1% of base by 90%, then constant.
TEST(Schedule, GrdaShape) {
  LrSchedule s;
  s.kind = "grda";
  s.base_lr = 0.1;
  EXPECT_NO_THROW(s.validate());
  EXPECT_DOUBLE_EQ(s.at(0, 0, 10), 0.1);
  EXPECT_DOUBLE_EQ(s.at(4, 0.99, 10), 0.1);
  EXPECT_DOUBLE_EQ(s.at(5, 0, 10), 0.1);
  EXPECT_NEAR(s.at(7, 0, 10), 0.1 * (1 - 0.99 * 0.5), 1e-12);
  EXPECT_NEAR(s.at(8, 0.5, 10), 0.1 * (1 - 0.99 * 0.875), 1e-12);
  EXPECT_NEAR(s.at(9, 0, 10), 0.001, 1e-12);
  EXPECT_NEAR(s.at(9, 0.9, 10), 0.001, 1e-12);
  // Monotone non-increasing over a whole run, continuous at 50% and 90%.
  double prev = 1;
  for (int e = 0; e < 20; ++e)
    for (double f : {0.0, 0.25, 0.5, 0.75}) {
      double lr = s.at(e, f, 20);
      EXPECT_LE(lr, prev + 1e-15);
      prev = lr;
    }
  EXPECT_NEAR(s.at(17, 0.999999, 20), s.at(18, 0, 20), 1e-6);
  auto kinds = schedule_kinds();
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "grda"), kinds.end());
}

// The pipeline: train -> finalize (sparsity report) -> fine-tune keeps every zero.
TEST(Grda, CompressPipelineKeepsZerosWhileFinetuning) {
  auto d = testing::tiny_data();
  Graph g = testing::tiny_convnet(3);
  auto m = grda(0.3, 0.7);
  CompressOptions co;
  co.train = small_options(3);
  co.finetune_epochs = 2;
  co.finetune_lr = 0.05;
  co.measure_latency = false;
  auto r = compress(g, m, d.train, d.test, co);
  EXPECT_LT(r.after_surgery.nonzero_params, r.before.nonzero_params);
  EXPECT_LE(r.after.nonzero_params, r.after_surgery.nonzero_params);
  ASSERT_TRUE(r.method.has("sparsity"));
  double s = r.method.get("sparsity").num();
  EXPECT_NEAR(s, 1.0 - double(r.after.nonzero_params) / r.after.params, 1e-12);
  EXPECT_GT(s, 0.1);
  EXPECT_EQ(r.method.get("layers").size(), 5u);  // conv1 bn1 conv2 bn2 fc
  EXPECT_EQ(r.method.get("c").num(), 0.3);
}

// --remove-channels: channels gRDA zeroed completely (filter, bias, BN gamma and beta) are
// removed by the structured surgery and the network computes the same function.
TEST(Grda, RemoveChannelsIsExact) {
  for (bool remove : {false, true}) {
    Graph g = testing::tiny_convnet(6);
    forward(g, torch::randn({8, 1, 8, 8}), Mode::kTrain);  // non-trivial BN running stats
    {
      torch::NoGradGuard ng;
      g.find("conv1")->params.at("weight")[1].zero_();
      for (const char* k : {"weight", "bias"}) g.find("bn1")->params.at(k)[1].zero_();
      g.find("conv2")->params.at("weight")[4].zero_();
      g.find("conv2")->params.at("bias")[4].zero_();
      for (const char* k : {"weight", "bias"}) g.find("bn2")->params.at(k)[4].zero_();
      g.find("conv2")->params.at("weight")[2].zero_();  // bias and BN of 2 stay: kept
    }
    auto x = torch::randn({4, 1, 8, 8});
    auto before = forward(g, x, Mode::kEval);
    GrdaOptions o;
    o.remove_channels = remove;
    Grda m(o);
    FinalizeContext ctx{g};
    m.finalize(ctx);
    Json j = Json::object();
    m.describe(j);
    EXPECT_EQ(j.get("channels_removed").integer(), remove ? 2 : 0);
    EXPECT_EQ(g.find("conv1")->params.at("weight").size(0), remove ? 3 : 4);
    EXPECT_EQ(g.find("conv2")->params.at("weight").size(0), remove ? 5 : 6);
    EXPECT_EQ(g.find("fc")->params.at("weight").size(1), remove ? 5 : 6);
    EXPECT_LT(testing::max_abs_diff(forward(g, x, Mode::kEval), before), 1e-5);
  }
}

// The CLI on the synthetic dataset, from an untrained initialisation (train --epochs 0).
TEST(Grda, CliCompressSmoke) {
  testing::TempDir dir;
  std::string out;
  ASSERT_EQ(testing::run_cli("train --model lenet5 --dataset synthetic --epochs 0 --quiet --out " +
                                 dir.file("init"),
                             &out),
            0)
      << out;
  ASSERT_EQ(testing::run_cli("compress --method grda --model " + dir.file("init/model.nnslim") +
                                 " --dataset synthetic --epochs 2 --lr 0.05 --schedule grda"
                                 " --c 0.05 --mu 0.6 --no-latency --quiet --out " +
                                 dir.file("run"),
                             &out),
            0)
      << out;
  Json s = Json::parse(slurp(dir.file("run/summary.json")));
  EXPECT_EQ(s.get("method").str(), "grda");
  EXPECT_EQ(s.get("options").get("mu").str(), "0.6");
  EXPECT_LT(s.get("after").get("nonzero_params").integer(),
            s.get("before").get("nonzero_params").integer());
  EXPECT_LT(s.get("after").get("file_bytes").integer(),
            s.get("before").get("file_bytes").integer());
  const Json& det = s.get("method_details");
  EXPECT_GT(det.get("sparsity").num(), 0.0);
  EXPECT_GT(det.get("layers").size(), 0u);
  // Per-epoch sparsity is in the metrics.
  EXPECT_NE(slurp(dir.file("run/metrics.jsonl")).find("\"sparsity\""), std::string::npos);
  // nnslim info shows per-layer sparsity.
  ASSERT_EQ(testing::run_cli("info " + dir.file("run/model.nnslim") + " --json", &out), 0) << out;
  Json info = Json::parse(out);
  EXPECT_EQ(info.get("nonzero_params").integer(), s.get("after").get("nonzero_params").integer());
  bool any_sparse = false;
  for (const auto& l : info.get("layers").items()) any_sparse |= l.get("sparsity").num() > 0;
  EXPECT_TRUE(any_sparse);
  ASSERT_EQ(testing::run_cli("info " + dir.file("run/model.nnslim"), &out), 0) << out;
  EXPECT_NE(out.find("sparsity"), std::string::npos) << out;
}

}  // namespace
}  // namespace nnslim
