// Importance criteria, pruning plans and MAC budgets, and the magnitude method end to end.
#include "nnslim/core/json.h"
#include "nnslim/graph/cost.h"
#include "nnslim/graph/surgery.h"
#include "nnslim/methods/magnitude.h"
#include "nnslim/models/zoo.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

namespace nnslim {
namespace {

int first_group_with_bn(const Coupling& c) {
  for (int id : c.prunable())
    if (!c.groups[id].norms.empty() && c.groups[id].producers.size() == 1) return id;
  return -1;
}

TEST(Importance, ZeroedChannelsScoreLowest) {
  Graph g = build_model("resnet20", {1, 32, 32}, 10);
  Coupling c = analyze_coupling(g);
  int id = first_group_with_bn(c);
  ASSERT_GE(id, 0);
  zero_channels(g, c, id, {3, 7});
  for (Criterion k : {Criterion::kL1, Criterion::kL2, Criterion::kBn}) {
    auto s = channel_importance(g, c, k).at(id);
    auto order = std::get<1>(s.sort());
    std::set<int64_t> lowest{order[0].item<int64_t>(), order[1].item<int64_t>()};
    EXPECT_EQ(lowest, (std::set<int64_t>{3, 7})) << criterion_name(k);
  }
  auto data = testing::tiny_data({1, 32, 32}, 10, 64, 16);
  ImportanceData d;
  d.train = &data.train;
  d.batches = 2;
  d.batch_size = 16;
  auto t = channel_importance(g, c, Criterion::kTaylor, d).at(id);
  EXPECT_EQ(t[3].item<double>(), 0.0);
  EXPECT_GT(t.sum().item<double>(), 0.0);
}

TEST(Importance, FpgmRanksTheMedianFilterLowest) {
  Graph g = testing::tiny_convnet(1);
  Coupling c = analyze_coupling(g);
  int id = c.layouts.at(g.find("conv1")->id)[0].group;
  {
    torch::NoGradGuard ng;
    auto& w = g.find("conv1")->params.at("weight");  // 4 filters
    w.zero_();
    auto flat = w.view({4, -1});
    flat[0][0] = 1.0;  // e1
    flat[1][1] = 1.0;  // e2
    flat[2][0] = 0.1;  // 0.1 (e1 + e2): the filter closest to all others
    flat[2][1] = 0.1;
    flat[3][0] = -1.0;  // -e1
  }
  auto s = channel_importance(g, c, Criterion::kFpgm).at(id);
  EXPECT_EQ(s.argmin().item<int64_t>(), 2);
  auto r1 = channel_importance(g, c, Criterion::kRandom, {nullptr, 8, 64, 5}).at(id);
  auto r2 = channel_importance(g, c, Criterion::kRandom, {nullptr, 8, 64, 5}).at(id);
  EXPECT_TRUE(r1.equal(r2));
  EXPECT_THROW(criterion_from_name("l3"), c10::Error);
}

// A channel's filters in several coupled layers (mobilenetv2: the expand conv and its depthwise
// conv) add their per-layer scores (METHODS §3.3 "coupled layers use the summed score"); l2 of the
// concatenated filters would differ.
TEST(Importance, CoupledLayersAddTheirScores) {
  Graph g = build_model("mobilenetv2", {1, 32, 32}, 10);
  Coupling c = analyze_coupling(g);
  auto l2 = channel_importance(g, c, Criterion::kL2);
  int checked = 0;
  for (int id : c.prunable()) {
    const auto& grp = c.groups[id];
    auto summed = torch::zeros({grp.channels}, torch::kDouble);
    std::vector<torch::Tensor> rows;
    for (const auto& pd : grp.params) {
      const Node& n = g.node(pd.node);
      if (!pd.out_side || pd.buffer || pd.param != "weight" || n.op != Op::kConv2d) continue;
      rows.push_back(channel_rows(g, c, grp, pd).to(torch::kDouble));
      summed += rows.back().pow(2).sum(1).sqrt();
    }
    if (rows.size() < 2) continue;
    ++checked;
    EXPECT_TRUE(torch::allclose(l2.at(id), summed)) << grp.name;
    EXPECT_FALSE(torch::allclose(l2.at(id), torch::cat(rows, 1).pow(2).sum(1).sqrt())) << grp.name;
  }
  EXPECT_GT(checked, 0);
}

// Top-n selection breaks ties by the lower index (§3.5 invariant 4), and returns indices sorted.
TEST(PruningPlan, TopChannelsBreaksTiesByLowerIndex) {
  auto s = torch::tensor({0.5, 0.9, 0.5, 0.5, 0.1, 0.9}, torch::kDouble);
  EXPECT_EQ(top_channels(s, 2), (std::vector<int64_t>{1, 5}));
  EXPECT_EQ(top_channels(s, 3), (std::vector<int64_t>{0, 1, 5}));
  EXPECT_EQ(top_channels(s, 4), (std::vector<int64_t>{0, 1, 2, 5}));
  EXPECT_EQ(top_channels(torch::zeros({4}, torch::kDouble), 2), (std::vector<int64_t>{0, 1}));
}

TEST(PruningPlan, AnalyticMacsMatchSurgery) {
  std::mt19937_64 rng(3);
  for (const char* name : {"resnet20", "mobilenetv2", "lenet5"}) {
    Graph g = build_model(name, {1, 32, 32}, 10);
    Coupling c = analyze_coupling(g);
    KeepPlan plan;
    for (int id : c.prunable()) {
      std::vector<int64_t> k;
      for (int64_t i = 0; i < c.groups[id].channels; ++i)
        if (i == 0 || rng() % 3) k.push_back(i);
      plan[id] = k;
    }
    EXPECT_EQ(macs_after(g, c, plan), count_cost(prune_groups(g, c, plan)).macs) << name;
  }
  Graph f = testing::fixture_all_ops();
  Coupling c = analyze_coupling(f);
  KeepPlan plan;
  for (int id : c.prunable()) plan[id] = {0};
  EXPECT_EQ(macs_after(f, c, plan), count_cost(prune_groups(f, c, plan)).macs);
}

TEST(PruningPlan, TargetMacsLandsAtOrJustBelowTheBudget) {
  for (const char* name : {"resnet56", "vgg16"}) {
    for (bool global : {false, true}) {
      Graph g = build_model(name, {1, 32, 32}, 10);
      Coupling c = analyze_coupling(g);
      auto scores = channel_importance(g, c, Criterion::kL1);
      PlanOptions o;
      o.global = global;
      int64_t base = count_cost(g).macs;
      KeepPlan p = plan_for_macs(g, c, scores, 0.5, o);
      double frac = double(count_cost(prune_groups(g, c, p)).macs) / base;
      EXPECT_LE(frac, 0.5) << name << " global=" << global;
      EXPECT_GE(frac, 0.49) << name << " global=" << global;
    }
  }
}

TEST(PruningPlan, RoundingAndLimits) {
  Graph g = build_model("resnet20", {1, 32, 32}, 10);
  Coupling c = analyze_coupling(g);
  auto scores = channel_importance(g, c, Criterion::kL2);
  PlanOptions o;
  o.round_to = 8;
  KeepPlan p = plan_by_ratio(c, scores, 0.6, o);
  for (const auto& [id, k] : p) EXPECT_EQ(k.size() % 8, 0u) << c.groups[id].name;
  o.round_to = 1;
  o.max_ratio = 0.5;
  p = plan_by_ratio(c, scores, 0.8, o);
  for (const auto& [id, k] : p) EXPECT_GE(k.size() * 2, size_t(c.groups[id].channels));
  EXPECT_THROW(plan_for_macs(g, c, scores, 0.05, o), c10::Error);  // unreachable budget
  EXPECT_TRUE(plan_by_ratio(c, scores, 0.0, o).empty());
}

TEST(Magnitude, CompressCliMeetsTheBudget) {
  testing::TempDir dir;
  std::string out;
  ASSERT_EQ(
      testing::run_cli(
          "train --model resnet20 --dataset synthetic --epochs 0 --quiet --out " + dir.file("in"),
          &out),
      0)
      << out;
  ASSERT_EQ(
      testing::run_cli("compress --method magnitude --model " + dir.file("in/model.nnslim") +
                           " --target-macs 0.5 --criterion l1 --finetune-epochs 1 --limit-train 256"
                           " --limit-test 64 --no-latency --quiet --out " +
                           dir.file("out"),
                       &out),
      0)
      << out;
  std::ifstream f(dir.file("out/summary.json"));
  std::stringstream ss;
  ss << f.rdbuf();
  Json s = Json::parse(ss.str());
  double before = s.get("before").get("macs").num(), after = s.get("after").get("macs").num();
  EXPECT_LE(after / before, 0.5);
  EXPECT_GE(after / before, 0.49);
  EXPECT_EQ(s.get("method").str(), "magnitude");
  EXPECT_EQ(s.get("options").get("criterion").str(), "l1");
  for (const char* k : {"params", "macs", "top1", "latency_ms"})
    EXPECT_TRUE(s.get("after").has(k)) << k;
  EXPECT_TRUE(s.get("after").get("latency_ms").is_null());  // --no-latency: not measured, not 0
  // The compressed model is a normal model file.
  ASSERT_EQ(testing::run_cli("eval " + dir.file("out/model.nnslim") + " --limit-test 32", &out), 0)
      << out;
  // Option errors are usage errors naming the option.
  EXPECT_EQ(testing::run_cli("compress --method magnitude --model " + dir.file("in/model.nnslim") +
                                 " --criterion l3 --out " + dir.file("x"),
                             &out),
            2);
  EXPECT_NE(out.find("unknown importance criterion 'l3'"), std::string::npos) << out;
  EXPECT_EQ(testing::run_cli("compress --method magic --model m --out " + dir.file("y"), &out), 2);
  EXPECT_NE(out.find("unknown method 'magic'"), std::string::npos) << out;
}

}  // namespace
}  // namespace nnslim
