// Channel coupling and channel surgery: removing channels that output exact zeros leaves the
// network function unchanged, on every zoo family and on fixtures with Concat, Flatten->Linear
// and depthwise convs.
#include "nnslim/graph/builder.h"
#include "nnslim/graph/cost.h"
#include "nnslim/graph/execute.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/graph/surgery.h"
#include "nnslim/models/zoo.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace nnslim {
namespace {

int count_prunable(const Coupling& c) { return static_cast<int>(c.prunable().size()); }

// Zeroes a random ~half of every prunable group, records the output, then removes exactly those
// channels group by group and checks the output again.
void check_zero_channel_removal(Graph g, const std::string& label, uint64_t seed = 0) {
  g.to(torch::kDouble);
  // Non-trivial BN statistics, so that BN beta/mean really matter.
  {
    torch::manual_seed(seed);
    auto warm =
        torch::randn({8, g.input_shape[0], g.input_shape[1], g.input_shape[2]}, torch::kDouble);
    torch::NoGradGuard ng;
    for (int i = 0; i < 3; ++i) forward(g, warm, Mode::kTrain);
  }
  Coupling c = analyze_coupling(g);
  std::mt19937_64 rng(seed);
  std::map<int, std::vector<int64_t>> keep;
  for (int id : c.prunable()) {
    std::vector<int64_t> drop, kept;
    for (int64_t k = 0; k < c.groups[id].channels; ++k)
      ((rng() % 2 == 0 && k > 0) ? drop : kept).push_back(k);
    zero_channels(g, c, id, drop);
    keep[id] = kept;
  }
  torch::manual_seed(seed + 1);
  auto x = torch::randn({3, g.input_shape[0], g.input_shape[1], g.input_shape[2]}, torch::kDouble);
  auto y_masked = forward(g, x, Mode::kEval);
  auto before = count_cost(g);
  Graph p = g;
  for (const auto& [id, kept] : keep) {
    Coupling now = analyze_coupling(p);
    ASSERT_EQ(now.groups.size(), c.groups.size()) << label;
    ASSERT_EQ(now.groups[id].name, c.groups[id].name) << label;
    p = prune_channels(p, now, id, kept);
  }
  auto y_pruned = forward(p, x, Mode::kEval);
  EXPECT_LT(testing::max_abs_diff(y_masked, y_pruned), 1e-9) << label;
  auto after = count_cost(p);
  EXPECT_LT(after.macs, before.macs) << label;
  EXPECT_LT(after.params, before.params) << label;
  // The pruned graph saves and loads like any other.
  testing::TempDir dir;
  save_graph(p, dir.file("p.nnslim"));
  EXPECT_TRUE(forward(load_graph(dir.file("p.nnslim")), x, Mode::kEval).equal(y_pruned)) << label;
}

TEST(Coupling, ResNet20Groups) {
  Coupling c = analyze_coupling(build_model("resnet20", {1, 32, 32}, 10));
  // 9 block-internal groups + 3 residual stage groups; input and logits are fixed.
  EXPECT_EQ(count_prunable(c), 12);
  int stage_groups = 0;
  for (const auto& g : c.groups) {
    if (!g.prunable) continue;
    if (g.producers.size() > 1) {
      ++stage_groups;
      EXPECT_GE(g.producers.size(), 3u);  // conv(s) of the stem / shortcut + every block's conv2
    }
  }
  EXPECT_EQ(stage_groups, 3);
  for (const auto& g : c.groups)
    if (!g.prunable) {
      EXPECT_FALSE(g.why_not.empty());
    }
}

TEST(Coupling, DepthwiseTiesExpandAndDwChannels) {
  Graph g = build_model("mobilenetv2", {3, 32, 32}, 10);
  Coupling c = analyze_coupling(g);
  const Node* dw = g.find("features.2.dw");
  const Node* expand = g.find("features.2.expand");
  ASSERT_TRUE(dw && expand);
  EXPECT_EQ(c.layouts.at(dw->id)[0].group, c.layouts.at(expand->id)[0].group);
}

TEST(Coupling, ExcludedNodesAndOutputAreFixed) {
  Graph g = testing::tiny_convnet();
  Coupling all = analyze_coupling(g);
  Coupling some = analyze_coupling(g, {"conv1"});
  EXPECT_EQ(count_prunable(all), 2);
  EXPECT_EQ(count_prunable(some), 1);
  int fc_group = all.layouts.at(g.find("fc")->id)[0].group;
  EXPECT_FALSE(all.groups[fc_group].prunable);
  EXPECT_THROW(prune_channels(g, all, fc_group, {0}), c10::Error);
}

TEST(Surgery, ZeroChannelRemovalIsExact_Fixture) {
  check_zero_channel_removal(testing::fixture_all_ops(1), "fixture");
}
TEST(Surgery, ZeroChannelRemovalIsExact_ResNet20) {
  check_zero_channel_removal(build_model("resnet20", {1, 32, 32}, 10), "resnet20");
}
TEST(Surgery, ZeroChannelRemovalIsExact_Vgg16) {
  check_zero_channel_removal(build_model("vgg16", {1, 32, 32}, 10), "vgg16");
}
TEST(Surgery, ZeroChannelRemovalIsExact_MobileNetV2) {
  check_zero_channel_removal(build_model("mobilenetv2", {3, 32, 32}, 10), "mobilenetv2");
}
TEST(Surgery, ZeroChannelRemovalIsExact_LeNetFlattenLinear) {
  // Flatten of a 16x5x5 map: each conv2 channel owns 25 columns of fc1.
  check_zero_channel_removal(build_model("lenet5", {1, 32, 32}, 10), "lenet5");
}

TEST(Surgery, ZeroChannelRemovalIsExact_SqueezeExcitation) {
  // HardSwish, SiLU, SE gates (HardSigmoid, Sigmoid; Mul both ways round), ceil-mode pools.
  check_zero_channel_removal(testing::fixture_se_ops(1), "fixture_se_ops");
  check_zero_channel_removal(testing::fixture_se_ops(2), "fixture_se_ops", 5);
}

// A ResNeXt / RegNetY-style bottleneck: 1x1 -> grouped 3x3 (4 groups of 4) -> squeeze-excitation
// -> 1x1, a residual add, and a grouped conv that doubles its width (8 groups, 2 -> 4 channels).
Graph grouped_fixture() {
  GraphBuilder b({3, 12, 12});
  int x = b.relu(b.bn(b.conv(b.input(), 16, 3, 1, 1, "stem"), "stem_bn"), "stem_relu");
  int y = b.relu(b.bn(b.conv(x, 16, 1, 1, 0, "c1"), "bn1"), "r1");
  y = b.relu(b.bn(b.conv(y, 16, 3, 1, 1, "c2", false, 4), "bn2"), "r2");
  int se = b.relu(b.conv(b.global_avgpool(y, "se_pool"), 4, 1, 1, 0, "se_sq", true), "se_relu");
  y = b.mul(y, b.sigmoid(b.conv(se, 16, 1, 1, 0, "se_ex", true), "se_gate"), "se_mul");
  y = b.bn(b.conv(y, 16, 1, 1, 0, "c3"), "bn3");
  x = b.relu(b.add({x, y}, "add"), "add_relu");
  int z = b.relu(b.bn(b.conv(x, 16, 1, 1, 0, "d1"), "dbn1"), "dr1");
  z = b.relu(b.bn(b.conv(z, 32, 3, 2, 1, "d2", true, 8), "dbn2"), "dr2");
  z = b.flatten(b.global_avgpool(z, "gap"), "flat");
  return b.build(b.linear(z, 5, "fc"));
}

// Grouped convs prune by whole conv groups: the 1x1 before one and the grouped conv share units
// of Cin/G channels, and the surgery keeps the widths per group.
TEST(Coupling, GroupedConvsPruneByWholeGroups) {
  Graph g = grouped_fixture();
  Coupling c = analyze_coupling(g);
  const int unit = c.layouts.at(g.find("c2")->id)[0].group;
  EXPECT_EQ(unit, c.layouts.at(g.find("c1")->id)[0].group);
  EXPECT_EQ(unit, c.layouts.at(g.find("se_ex")->id)[0].group);  // the SE gate, in units too
  EXPECT_TRUE(c.groups[unit].prunable) << c.groups[unit].why_not;
  EXPECT_EQ(c.groups[unit].channels, 4);  // the conv's 4 groups
  const int doubling = c.layouts.at(g.find("d2")->id)[0].group;
  EXPECT_TRUE(c.groups[doubling].prunable) << c.groups[doubling].why_not;
  EXPECT_EQ(c.groups[doubling].channels, 8);
  Graph p = prune_groups(g, c, {{unit, {0, 2, 3}}, {doubling, {1, 2, 5}}});
  EXPECT_EQ(p.find("c2")->attrs.groups, 3);
  EXPECT_EQ(p.find("c2")->params.at("weight").sizes(), (std::vector<int64_t>{12, 4, 3, 3}));
  EXPECT_EQ(p.find("c1")->params.at("weight").size(0), 12);
  EXPECT_EQ(p.find("se_ex")->params.at("weight").size(0), 12);
  EXPECT_EQ(p.find("se_sq")->params.at("weight").size(1), 12);
  EXPECT_EQ(p.find("d2")->attrs.groups, 3);
  EXPECT_EQ(p.find("d2")->params.at("weight").sizes(), (std::vector<int64_t>{12, 2, 3, 3}));
  EXPECT_EQ(p.find("d1")->params.at("weight").size(0), 6);
}

TEST(Surgery, ZeroChannelRemovalIsExact_GroupedConvs) {
  check_zero_channel_removal(grouped_fixture(), "grouped");
  check_zero_channel_removal(grouped_fixture(), "grouped", 3);
}

TEST(Surgery, ZeroChannelRemovalIsExact_ShuffleAndConvNext) {
  // Through channel shuffles (the kept channels' permutation is rewritten) and channel slices
  // (their range is), and the 4C hidden width of a ConvNeXt block (GELU is elementwise).
  for (uint64_t seed : {1, 2, 3})
    check_zero_channel_removal(testing::fixture_channel_ops(seed), "fixture_channel_ops", seed);
}

TEST(Coupling, ChannelShuffleInterleavesAndLayerNormBlocks) {
  Graph g = testing::fixture_channel_ops();
  Coupling c = analyze_coupling(g);
  auto group = [&](const char* name) { return c.layouts.at(g.find(name)->id)[0].group; };
  // The shuffle interleaves the two branches channel by channel; the slice takes the first
  // half of that: channels 0-3 of each branch.
  const Layout& shuffled = c.layouts.at(g.find("s1.shuffle")->id);
  ASSERT_EQ(shuffled.size(), 16u);
  for (int64_t j = 0; j < 16; ++j) {
    EXPECT_EQ(shuffled[j].group, group(j % 2 ? "s1.b2.pw2" : "s1.b1.pw")) << j;
    EXPECT_EQ(shuffled[j].offset, j / 2) << j;
    EXPECT_EQ(shuffled[j].len, 1) << j;
  }
  const Layout& x1 = c.layouts.at(g.find("s2.x1")->id);
  ASSERT_EQ(x1.size(), 8u);
  EXPECT_EQ(x1[7].group, group("s1.b2.pw2"));
  EXPECT_EQ(x1[7].offset, 3);
  // LayerNorm normalises over the channels: the stream it reads cannot lose one.
  const auto& stream = c.groups[group("stem")];
  EXPECT_FALSE(stream.prunable);
  EXPECT_EQ(stream.why_not, "layernorm over channels ('cn.norm')");
  EXPECT_EQ(group("cn.pw2"), group("stem"));  // the residual Add
  for (const char* name :
       {"cn.pw1", "s1.b1.pw", "s1.b2.pw1", "s1.b2.pw2", "s2.b2.pw1", "s2.b2.pw2", "conv5"})
    EXPECT_TRUE(c.groups[group(name)].prunable) << name << ": " << c.groups[group(name)].why_not;
  EXPECT_EQ(count_prunable(c), 7);
}

// A slice passes only some channels of a group on: a depthwise conv after it holds those, and
// its filters of the others are rows of zeros -- zero detection and importance still work.
TEST(Coupling, ChannelRowsOfAPartlyHeldGroup) {
  Graph g = testing::fixture_channel_ops(5);
  Coupling c = analyze_coupling(g);
  const int b1 = c.layouts.at(g.find("s1.b1.pw")->id)[0].group;
  const auto& grp = c.groups[b1];
  const int dw = g.find("s3.dw")->id;
  auto it = std::find_if(grp.params.begin(), grp.params.end(),
                         [&](const ParamDim& pd) { return pd.node == dw && pd.param == "weight"; });
  ASSERT_NE(it, grp.params.end());
  auto rows = channel_rows(g, c, grp, *it);
  ASSERT_EQ(rows.sizes(), (std::vector<int64_t>{8, 9}));
  // s2.x1 held channels 0-3 of s1.b1.pw; 4-7 went into s2's branch.
  EXPECT_TRUE((rows.narrow(0, 4, 4) == 0).all().item<bool>());
  EXPECT_FALSE((rows.narrow(0, 0, 4) == 0).all().item<bool>());
  for (int id : c.prunable()) {
    std::vector<int64_t> odd;
    for (int64_t k = 1; k < c.groups[id].channels; k += 2) odd.push_back(k);
    zero_channels(g, c, id, odd);
    auto zero = zero_output_channels(g, c, c.groups[id]);
    for (int64_t k = 0; k < c.groups[id].channels; ++k)
      EXPECT_EQ(zero[k].item<bool>(), k % 2 == 1) << c.groups[id].name << " " << k;
  }
}

TEST(Surgery, PruningRewritesShufflesAndSlices) {
  Graph g = testing::fixture_channel_ops(4);
  Coupling c = analyze_coupling(g);
  auto group = [&](const char* name) { return c.layouts.at(g.find(name)->id)[0].group; };
  // Keep channels 1 and 3 of the second branch of block 1 (0-based): the shuffle keeps 8 + 2
  // channels, the slices of block 2 split them where the kept ones fall.
  std::vector<int64_t> kept{1, 3};
  std::vector<int64_t> drop;
  for (int64_t k = 0; k < 8; ++k)
    if (k != 1 && k != 3) drop.push_back(k);
  zero_channels(g, c, group("s1.b2.pw2"), drop);
  Graph p = prune_channels(g, c, group("s1.b2.pw2"), kept);
  // Shuffled order was b1[0], b2[0], b1[1], b2[1], ...: now b1[0], b1[1], b2[1], b1[2], b1[3],
  // b2[3], b1[4..7]; b1 is 0-7 and b2's kept channels 8, 9 of the concatenation.
  EXPECT_EQ(p.find("s1.shuffle")->attrs.perm, (std::vector<int64_t>{0, 1, 8, 2, 3, 9, 4, 5, 6, 7}));
  EXPECT_EQ(p.find("s2.x1")->attrs.start, 0);
  EXPECT_EQ(p.find("s2.x1")->attrs.end, 6);  // the first 8 positions held 6 kept channels
  EXPECT_EQ(p.find("s2.x2")->attrs.start, 6);
  EXPECT_EQ(p.find("s2.x2")->attrs.end, 10);
  auto x = torch::randn({2, 3, 16, 16});
  torch::NoGradGuard no_grad;
  EXPECT_LT(testing::max_abs_diff(forward(g, x, Mode::kEval), forward(p, x, Mode::kEval)), 1e-5);
  // s2.x2 holds channels 4-7 of both branches of block 1: cutting all of them is refused.
  try {
    prune_groups(g, c, {{group("s1.b1.pw"), {0, 1, 2, 3}}, {group("s1.b2.pw2"), {0, 1, 2, 3}}});
    FAIL() << "an empty slice was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace())
                  .find("pruning would leave the channel slice 's2.x2' empty"),
              std::string::npos)
        << e.what_without_backtrace();
  }
}

TEST(Coupling, MulTiesTheGateToTheChannelsItScales) {
  Graph g = testing::fixture_se_ops();
  Coupling c = analyze_coupling(g);
  auto group = [&](const char* name) { return c.layouts.at(g.find(name)->id)[0].group; };
  // The gate conv's outputs are the expand conv's channels (through the depthwise conv).
  EXPECT_EQ(group("b1.se.fc2"), group("b1.expand"));
  EXPECT_EQ(group("b1.dw"), group("b1.expand"));
  EXPECT_EQ(group("b2.se.fc2"), group("b2.expand"));
  // The squeeze convs are groups of their own; all of these are prunable.
  for (const char* name : {"b1.expand", "b1.se.fc1", "b2.expand", "b2.se.fc1", "stem", "fc1"})
    EXPECT_TRUE(c.groups[group(name)].prunable) << name << ": " << c.groups[group(name)].why_not;
  EXPECT_NE(group("b1.se.fc1"), group("b1.expand"));
  EXPECT_EQ(group("b1.project"), group("stem"));  // the residual Add
  EXPECT_EQ(count_prunable(c), 6);
}

TEST(Coupling, SigmoidOutputReadByAConvIsNotPrunable) {
  // A zeroed channel is 0.5 after a Sigmoid: cutting it would drop a real input of `c2`. Behind
  // a BatchNorm (which zeroes it again) the channel may go.
  GraphBuilder b({2, 6, 6});
  int x = b.sigmoid(b.conv(b.input(), 4, 3, 1, 1, "c1"), "sig");
  x = b.conv(x, 4, 3, 1, 1, "c2");
  x = b.conv(b.bn(b.hardsigmoid(x, "hsig"), "bn"), 3, 1, 1, 0, "c3");
  Graph g = b.build(b.linear(b.flatten(b.global_avgpool(x, "gap"), "f"), 2, "fc"));
  Coupling c = analyze_coupling(g);
  const auto& c1 = c.groups[c.layouts.at(g.find("c1")->id)[0].group];
  EXPECT_FALSE(c1.prunable);
  EXPECT_NE(c1.why_not.find("'c2'"), std::string::npos) << c1.why_not;
  EXPECT_TRUE(c.groups[c.layouts.at(g.find("c2")->id)[0].group].prunable);
  EXPECT_TRUE(c.groups[c.layouts.at(g.find("c3")->id)[0].group].prunable);
  check_zero_channel_removal(g, "sigmoid then bn");
}

TEST(Surgery, ConcatOffsetsAndFlattenColumns) {
  Graph g = testing::fixture_all_ops(2);
  Coupling c = analyze_coupling(g);
  const Node* cat = g.find("cat");
  const auto& l = c.layouts.at(cat->id);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].len, 4);
  EXPECT_EQ(l[1].len, 6);
  const Node* fc = g.find("fc");
  int64_t fc_in_before = fc->params.at("weight").size(1);
  int br_b = c.layouts.at(g.find("br_b")->id)[0].group;
  Graph p = prune_channels(g, c, br_b, {0, 2, 5});
  // 3 of 6 br_b channels gone: the depthwise conv shrinks 10 -> 7 (groups too) and fc loses
  // 3 channels x (2x2 spatial) columns.
  EXPECT_EQ(p.find("dw")->attrs.groups, 7);
  EXPECT_EQ(p.find("fc")->params.at("weight").size(1), fc_in_before - 3 * 4);
}

TEST(Surgery, KeepIndicesAreChecked) {
  Graph g = testing::tiny_convnet();
  Coupling c = analyze_coupling(g);
  int id = c.prunable()[0];
  EXPECT_THROW(prune_channels(g, c, id, {}), c10::Error);
  EXPECT_THROW(prune_channels(g, c, id, {2, 1}), c10::Error);
  EXPECT_THROW(prune_channels(g, c, id, {0, 99}), c10::Error);
}

TEST(Surgery, RoundChannels) {
  EXPECT_EQ(round_channels(13, 8, 64), 16);
  EXPECT_EQ(round_channels(60, 8, 64), 64);
  EXPECT_EQ(round_channels(63, 8, 60), 60);
  EXPECT_EQ(round_channels(0, 8, 64), 8);
  EXPECT_EQ(round_channels(5, 1, 64), 5);
}

}  // namespace
}  // namespace nnslim

namespace nnslim {
namespace {

TEST(Surgery, PruneGroupsAtOnceEqualsOneByOne) {
  Graph g = testing::fixture_all_ops(4);
  g.to(torch::kDouble);
  Coupling c = analyze_coupling(g);
  std::map<int, std::vector<int64_t>> keep;
  for (int id : c.prunable()) {
    std::vector<int64_t> k;
    for (int64_t i = 0; i < c.groups[id].channels; i += 2) k.push_back(i);
    keep[id] = k;
  }
  Graph at_once = prune_groups(g, c, keep);
  Graph one_by_one = g;
  for (const auto& [id, k] : keep)
    one_by_one = prune_channels(one_by_one, analyze_coupling(one_by_one), id, k);
  auto x = torch::randn({2, 2, 8, 8}, torch::kDouble);
  EXPECT_TRUE(forward(at_once, x, Mode::kEval).equal(forward(one_by_one, x, Mode::kEval)));
}

}  // namespace
}  // namespace nnslim
