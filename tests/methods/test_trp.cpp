// TRP (methods/trp.h, methods/lowrank.h): the invariants of METHODS.md §1.8, the off-switch,
// the TRP-step projection and nuclear sub-gradient, final rank selection with a MAC budget,
// state save/load, a short training run and the CLI.
#include "nnslim/core/json.h"
#include "nnslim/graph/cost.h"
#include "nnslim/graph/execute.h"
#include "nnslim/methods/lowrank.h"
#include "nnslim/methods/registry.h"
#include "nnslim/methods/trp.h"
#include "nnslim/models/zoo.h"
#include "nnslim/train/trainer.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <sstream>

namespace nnslim {
namespace {

constexpr Scheme kSchemes[] = {Scheme::kChannel, Scheme::kSpatial, Scheme::kDecouple,
                               Scheme::kChannelIn};

torch::Tensor vec(std::vector<double> v) { return torch::tensor(v, torch::kDouble); }

using testing::same_weights;
using testing::small_options;

std::shared_ptr<Method> make_trp(std::map<std::string, std::string> values) {
  return create_method("trp", values);
}

Trp& as_trp(const std::shared_ptr<Method>& m) { return dynamic_cast<Trp&>(*m); }

// A Context over `g` for calling hooks directly.
struct Harness {
  explicit Harness(Graph& g)
      : opt(g.parameters(), torch::optim::SGDOptions(0.1)), ctx{g, opt}, fin{g} {
    ctx.steps_per_epoch = 10;
    ctx.epochs = 1;
    fin.epochs = 1;
  }
  torch::optim::SGD opt;
  Context ctx;          // training hooks
  FinalizeContext fin;  // finalize()
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

// ---- low-rank algebra (§1.8.1-5) ----------------------------------------------------------------

TEST(LowRank, RankCriteria) {
  // §1.8.1: energies 9, 4, 1, 0.01 -> cumulative 0.642, 0.928 -> r = 2 at e = 0.9.
  EXPECT_EQ(energy_rank(vec({3, 2, 1, 0.1}), 0.9), 2);
  EXPECT_EQ(energy_rank(vec({3, 2, 1, 0.1}), 0.6), 1);
  EXPECT_EQ(energy_rank(vec({3, 2, 1, 0.1}), 1.0), 4);
  EXPECT_EQ(value_rank(vec({1, 0.5, 0.04, 0.01}), 0.05), 2);
  EXPECT_EQ(value_rank(vec({1, 0.5, 0.04, 0.01}), 2.0), 0);
  EXPECT_EQ(value_rank(vec({1, 0.5, 0.04, 0.01}), 0.0), 4);
  EXPECT_THROW(energy_rank(vec({1, 0.5}), 1.5), c10::Error);
  EXPECT_THROW(energy_rank(vec({1, 0.5}), 0.0), c10::Error);
}

TEST(LowRank, ProjectionRankEckartYoungAndIdempotence) {
  torch::manual_seed(0);
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    auto m = torch::randn({12, 20}, torch::dtype(dtype));
    auto s = singular_values(m);
    for (int64_t r : {1, 3, 7}) {
      auto p = project_rank(m, r);
      EXPECT_EQ(p.scalar_type(), dtype);
      auto sp = singular_values(p);
      // §1.8.2: rank(P) <= r.
      EXPECT_LE(sp[r].item<double>(), 1e-5 * sp[0].item<double>()) << r;
      // §1.8.3: ||M - M_r||_F^2 = sum_{i>r} s_i^2.
      double err = (m.to(torch::kDouble) - p.to(torch::kDouble)).square().sum().item<double>();
      double tail = s.slice(0, r).square().sum().item<double>();
      EXPECT_NEAR(err / tail, 1.0, dtype == torch::kDouble ? 1e-10 : 1e-5) << r;
      // Idempotent.
      EXPECT_LT(testing::max_abs_diff(project_rank(p, r), p),
                dtype == torch::kDouble ? 1e-12 : 1e-5);
    }
  }
}

TEST(LowRank, MatricizeRoundTripAndLayout) {
  torch::manual_seed(1);
  auto w = torch::randn({5, 3, 2, 4}, torch::kDouble);  // n, c, kh, kw
  for (Scheme s : kSchemes) {                           // §1.8.4
    auto m = matricize(w, s);
    EXPECT_TRUE(unmatricize(m, s, w.sizes()).equal(w)) << scheme_name(s);
    EXPECT_EQ(max_rank(w.sizes(), s), std::min(m.size(-2), m.size(-1)));
  }
  // ND: one matrix per filter, rows ci, columns (y, x).
  auto nd = matricize(w, Scheme::kDecouple);
  EXPECT_EQ(nd.sizes(), (std::vector<int64_t>{5, 3, 8}));
  EXPECT_EQ(nd[4][2][1 * 4 + 3].item<double>(), w[4][2][1][3].item<double>());
  auto nc = matricize(w, Scheme::kChannel);
  EXPECT_EQ(nc.sizes(), (std::vector<int64_t>{5, 24}));
  auto vh = matricize(w, Scheme::kSpatial);
  EXPECT_EQ(vh.sizes(), (std::vector<int64_t>{6, 20}));
  // VH: row (ci, y), column (o, x).
  for (int64_t o : {0, 4})
    for (int64_t ci : {0, 2})
      for (int64_t y : {0, 1})
        for (int64_t x : {0, 3})
          EXPECT_EQ(vh[ci * 2 + y][o * 4 + x].item<double>(), w[o][ci][y][x].item<double>());
  EXPECT_EQ(nc[3][1 * 8 + 1 * 4 + 2].item<double>(), w[3][1][1][2].item<double>());
}

TEST(LowRank, NuclearSubgradient) {
  torch::manual_seed(2);
  auto m = torch::randn({6, 9}, torch::kDouble);
  Svd svd = thin_svd(m);
  auto g = nuclear_subgradient(svd);
  // §1.8.5: <U V^T, M> = ||M||_* and ||U V^T||_2 = 1.
  EXPECT_NEAR((g * m).sum().item<double>(), svd.s.sum().item<double>(), 1e-10);
  EXPECT_NEAR(singular_values(g)[0].item<double>(), 1.0, 1e-10);
  EXPECT_NEAR(singular_values(g)[5].item<double>(), 1.0, 1e-10);  // full rank: all ones
  auto g2 = nuclear_subgradient(svd, 2);
  EXPECT_NEAR(singular_values(g2)[1].item<double>(), 1.0, 1e-10);
  EXPECT_LT(singular_values(g2)[2].item<double>(), 1e-10);
  EXPECT_LT(testing::max_abs_diff(low_rank(svd, 6), m), 1e-10);
}

// ---- the method ---------------------------------------------------------------------------------

TEST(Trp, OffEqualsPlainSgdBitForBit) {
  // §1.8.8: trp = false and lambda = 0 is plain SGD.
  auto d = testing::tiny_data({2, 8, 8}, 5);
  Graph a = testing::fixture_all_ops(6), b = testing::fixture_all_ops(6),
        c = testing::fixture_all_ops(6);
  Trainer(a, small_options(2)).fit(d.train, nullptr);
  Trainer(b, small_options(2), {make_trp({{"trp", "false"}, {"nuclear", "0"}, {"period", "1"}})})
      .fit(d.train, nullptr);
  EXPECT_TRUE(same_weights(a, b));
  // ... and switching it on does change the training.
  Trainer(c, small_options(2), {make_trp({{"period", "1"}})}).fit(d.train, nullptr);
  EXPECT_FALSE(same_weights(a, c));
}

TEST(Trp, DefaultLayerSelectionAndNames) {
  torch::manual_seed(0);
  Graph g = build_model("resnet20", {1, 16, 16}, 10);
  Harness h(g);
  auto m = make_trp({});
  m->begin(h.ctx);
  auto sel = as_trp(m).selected();
  // §1.3: all 3x3 convs but the first; no 1x1 shortcut convs.
  EXPECT_EQ(sel.size(), 18u);
  for (const auto& name : sel) {
    EXPECT_NE(name, "conv1");
    EXPECT_EQ(name.find("downsample"), std::string::npos) << name;
  }
  auto ex = make_trp({{"exclude", "layer1.0.conv1, layer3.2.conv2"}});
  ex->begin(h.ctx);
  EXPECT_EQ(as_trp(ex).selected().size(), 16u);
  auto only = make_trp({{"layers", "conv1,layer2.0.downsample.0"}});
  only->begin(h.ctx);
  EXPECT_EQ(as_trp(only).selected(), (std::vector<std::string>{"conv1", "layer2.0.downsample.0"}));
  EXPECT_NE(error_of([&] {
              make_trp({{"exclude", "nope"}})->begin(h.ctx);
            }).find("trp: exclude: the model has no node named 'nope'"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              make_trp({{"layers", "bn1"}})->begin(h.ctx);
            }).find("not an ungrouped conv"),
            std::string::npos);
}

TEST(Trp, OptionsAreValidatedWithTheirNames) {
  auto msg = [](std::map<std::string, std::string> v) { return error_of([&] { make_trp(v); }); };
  EXPECT_NE(msg({{"energy", "1.5"}}).find("trp: energy must be in (0, 1], got 1.5"),
            std::string::npos);
  EXPECT_NE(msg({{"period", "0"}}).find("trp: period must be >= 1"), std::string::npos);
  EXPECT_NE(msg({{"nuclear", "-1"}}).find("trp: nuclear must be >= 0"), std::string::npos);
  EXPECT_NE(msg({{"scheme", "tucker"}})
                .find("trp: scheme must be channel, spatial, decouple or channel-in"),
            std::string::npos);
  EXPECT_NE(msg({{"nuclear-mode", "sometimes"}}).find("nuclear-mode"), std::string::npos);
  EXPECT_NE(msg({{"rank-rule", "magic"}}).find("rank-rule"), std::string::npos);
  EXPECT_NE(msg({{"target-macs", "1.5"}}).find("trp: target-macs must be in (0, 1]"),
            std::string::npos);
  EXPECT_NE(msg({{"final-energy", "0"}}).find("final-energy"), std::string::npos);
  EXPECT_NE(msg({{"trp", "maybe"}}).find("trp"), std::string::npos);
  EXPECT_NE(msg({{"epochs", "3"}}).find("unknown option 'epochs'"), std::string::npos);
  EXPECT_EQ(msg({{"scheme", "spatial"}, {"target-macs", "0.5"}, {"exclude", "a,b"}}), "");
  // No option clashes with a generic compress/train flag.
  for (const auto& o : find_method("trp").options)
    for (const char* generic : {"epochs", "lr", "momentum", "weight-decay", "schedule", "seed",
                                "batch-size", "dataset", "model", "out", "device", "threads",
                                "finetune-epochs", "finetune-lr", "method", "force", "quiet"})
      EXPECT_NE(o.key, generic);
}

TEST(Trp, TrpStepProjectsSelectedWeightsOnly) {
  for (Scheme s : kSchemes)
    for (auto dtype : {torch::kDouble, torch::kFloat}) {
      Graph g = testing::fixture_all_ops(7);
      g.to(dtype);
      Graph orig = g.clone();
      Harness h(g);
      auto m = make_trp({{"scheme", scheme_name(s)}, {"period", "2"}, {"nuclear", "0"}});
      m->begin(h.ctx);
      h.ctx.batch = 1;  // not a TRP step
      m->before_step(h.ctx);
      EXPECT_TRUE(same_weights(g, orig));
      h.ctx.batch = 2;
      m->before_step(h.ctx);
      for (const auto& name : {"res.conv1", "res.conv2", "br_b"}) {
        const auto& w0 = orig.find(name)->params.at("weight");
        const auto& w = g.find(name)->params.at("weight");
        // The energy rank of every matrix (every filter's for decouple), then its projection.
        Svd svd0 = thin_svd(matricize(w0.to(torch::kDouble), s));
        auto ranks = energy_ranks(svd0.s, 0.9);
        auto expect = unmatricize(low_rank(svd0, ranks), s, w0.sizes());
        EXPECT_LT(testing::max_abs_diff(w, expect), dtype == torch::kDouble ? 1e-12 : 1e-5)
            << name << " " << scheme_name(s);
        auto sv = singular_values(matricize(w, s));
        if (sv.dim() == 1) sv = sv.unsqueeze(0);
        ASSERT_EQ(static_cast<int64_t>(ranks.size()), sv.size(0));
        for (int64_t b = 0; b < sv.size(0); ++b) {
          if (ranks[b] >= sv.size(1)) continue;  // kept at full rank
          EXPECT_LE(sv[b][ranks[b]].item<double>(),
                    (dtype == torch::kDouble ? 1e-10 : 1e-5) * sv[b][0].item<double>())
              << name << " " << scheme_name(s);
        }
        EXPECT_LT(*std::min_element(ranks.begin(), ranks.end()), sv.size(1)) << name;
        EXPECT_TRUE(w.requires_grad());
      }
      for (const auto& name : {"stem", "br_a", "dw", "fc"})
        EXPECT_TRUE(g.find(name)->params.at("weight").equal(orig.find(name)->params.at("weight")))
            << name;
    }
}

TEST(Trp, NuclearSubgradientIsAddedToGradients) {
  const double lambda = 0.01;
  for (const char* mode : {"trp_steps_truncated", "every_step_full"}) {
    Graph g = testing::fixture_all_ops(8);
    g.to(torch::kDouble);
    Harness h(g);
    auto m = make_trp({{"trp", "false"},
                       {"nuclear", "0.01"},
                       {"nuclear-mode", mode},
                       {"period", "3"},
                       {"scheme", "spatial"}});
    m->begin(h.ctx);
    for (int64_t batch : {0, 1}) {
      h.ctx.batch = batch;
      Graph before = g.clone();
      m->before_step(h.ctx);
      EXPECT_TRUE(same_weights(g, before));  // trp = false: no substitution
      for (auto& p : g.parameters()) p.mutable_grad() = torch::zeros_like(p);
      m->after_backward(h.ctx);
      const bool full = std::string(mode) == "every_step_full";
      for (const auto& name : {"res.conv1", "br_b"}) {
        const auto& w = g.find(name)->params.at("weight");
        Svd svd = thin_svd(matricize(w, Scheme::kSpatial));
        torch::Tensor expect;
        if (full)
          expect = lambda * unmatricize(nuclear_subgradient(svd), Scheme::kSpatial, w.sizes());
        else if (batch == 0)
          expect = lambda * unmatricize(nuclear_subgradient(svd, energy_rank(svd.s, 0.9)),
                                        Scheme::kSpatial, w.sizes());
        else
          expect = torch::zeros_like(w);  // not a TRP step
        EXPECT_LT(testing::max_abs_diff(w.grad(), expect), 1e-12)
            << mode << " " << name << " " << batch;
      }
      EXPECT_EQ(g.find("stem")->params.at("weight").grad().abs().max().item<double>(), 0.0);
    }
  }
}

TEST(Trp, FinalizeOnLowRankWeightsKeepsTheOutput) {
  for (Scheme s : kSchemes) {
    Graph g = testing::fixture_all_ops(9);
    g.to(torch::kDouble);
    {
      torch::NoGradGuard ng;
      for (const auto& name : {"res.conv1", "res.conv2", "br_b"}) {
        auto& w = g.find(name)->params.at("weight");
        w.copy_(project_conv_weight(w, s, 2));
      }
    }
    auto x = torch::randn({3, 2, 8, 8}, torch::kDouble);
    auto ref = forward(g, x, Mode::kEval);
    const int64_t macs = count_cost(g).macs;
    Harness h(g);
    auto m = make_trp({{"scheme", scheme_name(s)}, {"rank-rule", "value"}, {"tau", "1e-6"}});
    m->begin(h.ctx);
    m->finalize(h.fin);
    validate(g);
    for (const auto& l : as_trp(m).layers()) {
      EXPECT_EQ(l.rank, 2) << l.name;
      EXPECT_TRUE(l.factorized) << l.name;
      EXPECT_LT(l.macs_after, l.macs_before);
      EXPECT_TRUE(g.find(l.name + ".0") && g.find(l.name + ".1"));
    }
    EXPECT_LT(testing::max_abs_diff(forward(g, x, Mode::kEval), ref), 1e-9);
    EXPECT_LT(count_cost(g).macs, macs);
    Json j = Json::object();
    m->describe(j);
    EXPECT_EQ(j.get("factorized_layers").integer(), 3);
    EXPECT_EQ(j.get("output_macs").integer(), count_cost(g).macs);
    EXPECT_EQ(j.get("layers").size(), 3u);
    EXPECT_GT(j.get("conv_macs_ratio").num(), 1.0);
  }
  // tau = 0 keeps every rank full: no layer would save MACs, so nothing changes.
  Graph g = testing::fixture_all_ops(9);
  const size_t count = g.nodes.size();
  Harness h(g);
  auto m = make_trp({{"tau", "0"}});
  m->begin(h.ctx);
  m->finalize(h.fin);
  EXPECT_EQ(g.nodes.size(), count);
  for (const auto& l : as_trp(m).layers()) EXPECT_FALSE(l.factorized) << l.name;
}

// METHODS §1.4: the code's final rank rule is the energy criterion (e = 0.85) for decouple (ND)
// and the value threshold (0.05) for the others; "auto", the default, follows it.
TEST(Trp, DefaultRankRuleIsEnergyForDecoupleAndValueOtherwise) {
  auto ranks = [](Scheme s, const std::string& rule) {
    Graph g = testing::fixture_all_ops(9);
    g.to(torch::kDouble);
    Harness h(g);
    std::map<std::string, std::string> o{{"scheme", scheme_name(s)}};
    if (!rule.empty()) o["rank-rule"] = rule;
    auto m = make_trp(o);
    m->begin(h.ctx);
    m->finalize(h.fin);
    std::vector<int64_t> r;
    for (const auto& l : as_trp(m).layers()) r.push_back(l.rank);
    return r;
  };
  EXPECT_EQ(ranks(Scheme::kDecouple, ""), ranks(Scheme::kDecouple, "energy"));
  EXPECT_NE(ranks(Scheme::kDecouple, ""), ranks(Scheme::kDecouple, "value"));
  EXPECT_EQ(ranks(Scheme::kChannel, ""), ranks(Scheme::kChannel, "value"));
  TrpOptions o;
  EXPECT_EQ(o.resolved_rank_rule(), RankRule::kValue);
  o.scheme = Scheme::kDecouple;
  EXPECT_EQ(o.resolved_rank_rule(), RankRule::kEnergy);
}

TEST(Trp, TargetMacsIsMetByBisection) {
  for (Scheme s : kSchemes)
    for (const char* rule : {"value", "energy"}) {
      torch::manual_seed(10);
      Graph g = build_model("resnet20", {1, 16, 16}, 10);
      const double before = static_cast<double>(count_cost(g).macs);
      Harness h(g);
      auto m = make_trp({{"scheme", scheme_name(s)}, {"rank-rule", rule}, {"target-macs", "0.5"}});
      m->begin(h.ctx);
      m->finalize(h.fin);
      validate(g);
      double after = static_cast<double>(count_cost(g).macs);
      EXPECT_LE(after, 0.5 * before) << scheme_name(s) << " " << rule;
      // The least aggressive threshold that fits: close to the budget, not far below it.
      EXPECT_GE(after, 0.46 * before) << scheme_name(s) << " " << rule;
    }
  // rank-multiple rounds ranks up.
  torch::manual_seed(10);
  Graph g = build_model("resnet20", {1, 16, 16}, 10);
  const double before = static_cast<double>(count_cost(g).macs);
  Harness h(g);
  auto m = make_trp({{"target-macs", "0.6"}, {"rank-multiple", "4"}});
  m->begin(h.ctx);
  m->finalize(h.fin);
  for (const auto& l : as_trp(m).layers())
    if (l.factorized) {
      EXPECT_EQ(l.rank % 4, 0) << l.name;
    }
  EXPECT_LE(static_cast<double>(count_cost(g).macs), 0.6 * before);
  // An impossible budget fails before any training.
  Graph g2 = build_model("resnet20", {1, 16, 16}, 10);
  Harness h2(g2);
  EXPECT_NE(error_of([&] {
              make_trp({{"target-macs", "0.01"}})->begin(h2.ctx);
            }).find("trp: target-macs 0.01 cannot be met"),
            std::string::npos);
}

// A run killed after an epoch or inside one (a TRP step every 2 batches, the nuclear norm on)
// and resumed from its checkpoint ends with the weights of an uninterrupted run.
TEST(Trp, ResumeEqualsUninterruptedRun) {
  auto r = testing::crash_and_resume(
      [] {
        return std::vector<std::shared_ptr<Method>>{make_trp({{"period", "2"}})};
      },
      small_options(3));
  EXPECT_TRUE(r.resumed_equals_full);
  EXPECT_TRUE(r.resumed_inside_epoch_equals_full);
}

TEST(Trp, StateSurvivesSaveAndLoad) {
  Graph g = testing::fixture_all_ops(11);
  Harness h(g);
  auto a = make_trp({{"period", "1"}});
  a->begin(h.ctx);
  a->before_step(h.ctx);
  Writer w;
  a->save(w);
  Graph g2 = testing::fixture_all_ops(12);  // a later run, different weights
  Harness h2(g2);
  auto b = make_trp({{"period", "1"}});
  b->begin(h2.ctx);
  Reader r(w.bytes(), "trp state");
  b->load(r);
  EXPECT_TRUE(r.done());
  Graph ga = g.clone(), gb = g.clone();
  Harness ha(ga), hb(gb);
  a->finalize(ha.fin);
  b->finalize(hb.fin);
  Json ja = Json::object(), jb = Json::object();
  a->describe(ja);
  b->describe(jb);
  EXPECT_EQ(ja.get("input_macs").integer(), jb.get("input_macs").integer());
  EXPECT_EQ(ja.get("trp_steps").integer(), 1);
  EXPECT_EQ(jb.get("trp_steps").integer(), 1);
  ASSERT_EQ(as_trp(a).layers().size(), as_trp(b).layers().size());
  for (size_t i = 0; i < as_trp(a).layers().size(); ++i) {
    EXPECT_GT(as_trp(a).layers()[i].train_rank, 0);
    EXPECT_EQ(as_trp(a).layers()[i].train_rank, as_trp(b).layers()[i].train_rank);
  }
}

TEST(Trp, TrainsThenFactorisesWithSmallAccuracyLoss) {
  auto d = testing::tiny_data({2, 8, 8}, 5, 240, 120);
  Graph g = testing::fixture_all_ops(13);
  auto o = small_options(6);
  o.augment = false;
  auto m = make_trp(
      {{"period", "1"}, {"nuclear", "1e-3"}, {"rank-rule", "energy"}, {"final-energy", "0.9"}});
  auto r = Trainer(g, o, {m}).fit(d.train, &d.test);
  const double trained = r.history.back().eval.top1;
  EXPECT_GT(trained, 80.0);
  EXPECT_GT(r.history.back().extra.count("trp_seconds"), 0u);
  const int64_t macs = count_cost(g).macs;
  Harness h(g);
  m->finalize(h.fin);
  EXPECT_LT(count_cost(g).macs, macs);
  EXPECT_GE(evaluate(g, d.test).top1, trained - 5.0);
}

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(Trp, CliCompressOnSyntheticData) {
  testing::TempDir dir;
  std::string out;
  ASSERT_EQ(testing::run_cli("train --model lenet5 --dataset synthetic --epochs 0 --quiet --out " +
                                 dir.file("in"),
                             &out),
            0)
      << out;
  ASSERT_EQ(testing::run_cli("compress --method trp --model " + dir.file("in/model.nnslim") +
                                 " --dataset synthetic --limit-train 256 --limit-test 128 "
                                 "--epochs 1 --batch-size 32 --lr 0.02 --period 2 "
                                 "--scheme spatial --target-macs 0.7 --no-latency --quiet --out " +
                                 dir.file("out"),
                             &out),
            0)
      << out;
  Json s = Json::parse(slurp(dir.file("out/summary.json")));
  EXPECT_EQ(s.get("method").str(), "trp");
  EXPECT_EQ(s.get("options").get("scheme").str(), "spatial");
  const auto before = s.get("before").get("macs").integer(),
             after = s.get("after").get("macs").integer();
  EXPECT_LT(after, before);
  EXPECT_LE(static_cast<double>(after), 0.7 * static_cast<double>(before));
  const Json& md = s.get("method_details");
  EXPECT_EQ(md.get("scheme").str(), "spatial");
  ASSERT_EQ(md.get("layers").size(), 1u);  // lenet5: conv2 (conv1 is the first conv)
  const Json& l = md.get("layers").items()[0];
  EXPECT_EQ(l.get("name").str(), "conv2");
  EXPECT_TRUE(l.get("factorized").boolean());
  EXPECT_GE(l.get("rank").integer(), 1);
  EXPECT_TRUE(std::filesystem::exists(dir.file("out/model.nnslim")));
  // The compressed model loads and evaluates.
  ASSERT_EQ(testing::run_cli("eval " + dir.file("out/model.nnslim") + " --json", &out), 0) << out;
  // Method options are validated as usage errors.
  EXPECT_EQ(testing::run_cli("compress --method trp --model " + dir.file("in/model.nnslim") +
                                 " --energy 1.5 --out " + dir.file("bad"),
                             &out),
            2);
  EXPECT_NE(out.find("trp: energy must be in (0, 1], got 1.5"), std::string::npos) << out;
}

}  // namespace
}  // namespace nnslim
