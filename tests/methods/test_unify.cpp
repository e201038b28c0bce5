// Micro-structured unification (METHODS.md §4): partition, the projection and its §4.7
// invariants, ADMM bookkeeping, masked retraining, the compact format and file, the sign-sum
// kernel, the MAC counter, the p = u = 0 off-switch through the pipeline, and the CLI.
#include "nnslim/core/json.h"
#include "nnslim/graph/archive.h"
#include "nnslim/graph/builder.h"
#include "nnslim/graph/cost.h"
#include "nnslim/graph/execute.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/methods/registry.h"
#include "nnslim/methods/unify.h"
#include "nnslim/models/zoo.h"
#include "nnslim/train/checkpoint.h"
#include "nnslim/train/compress.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace nnslim {
namespace {

// Sum over valid entries of each block: [blocks].
torch::Tensor block_sum(const BlockPartition& p, const torch::Tensor& w) {
  return p.to_blocks(w).masked_fill(~p.valid(), 0).sum(1);
}

// For each block: all valid entries have the same |w|.
torch::Tensor equal_magnitudes(const BlockPartition& p, const torch::Tensor& w) {
  auto a = p.to_blocks(w).abs();
  auto inf = std::numeric_limits<double>::infinity();
  return a.masked_fill(~p.valid(), -inf).amax(1) == a.masked_fill(~p.valid(), inf).amin(1);
}

using testing::same_weights;

using testing::small_options;

struct Shape4 {
  std::vector<int64_t> shape;
  BlockShape block;
};
const std::vector<Shape4> kShapes = {
    {{8, 12, 3, 3}, {1, 4, 0}},  // default conv blocks
    {{6, 10, 3, 3}, {1, 4, 0}},  // edge blocks of 2 input channels
    {{8, 12, 3, 3}, {4, 4, 1}},  // GEMM tiles
    {{6, 10, 3, 3}, {4, 4, 1}},  // edge tiles in both directions
    {{8, 12, 3, 3}, {1, 1, 0}},  // kernel-level
    {{10, 20}, {1, 8, 1}},       // linear
};

TEST(UnifyPartition, BlocksRoundTripWithEdgeBlocks) {
  BlockPartition p({6, 10, 3, 3}, {4, 4, 0});
  EXPECT_EQ(p.block(), (BlockShape{4, 4, 9}));
  EXPECT_EQ(p.blocks(), 2 * 3);
  EXPECT_EQ(p.block_size(), 4 * 4 * 9);
  auto w = torch::randn({6, 10, 3, 3}, torch::kDouble);
  auto b = p.to_blocks(w);
  EXPECT_TRUE(p.from_blocks(b).equal(w));
  EXPECT_EQ(p.sizes().sum().item<int64_t>(), w.numel());
  EXPECT_EQ(p.sizes()[5].item<int64_t>(), 2 * 2 * 9);  // last row block x last column block
  EXPECT_EQ(p.block_rows()[0].item<int64_t>(), 4);
  EXPECT_EQ(p.block_rows()[5].item<int64_t>(), 2);
  // Entries of block 1 are (o in 0..3, i in 4..7, all k), row-major.
  EXPECT_EQ(b[1][0].item<double>(), w[0][4][0][0].item<double>());
  EXPECT_EQ(b[1][9].item<double>(), w[0][5][0][0].item<double>());
  // Block dims larger than the tensor are clamped; linear weights have K = 1.
  EXPECT_EQ(BlockPartition({3, 5}, {1, 8, 1}).block(), (BlockShape{1, 5, 1}));
  EXPECT_EQ(parse_block_shape("1x4xK", "b"), (BlockShape{1, 4, 0}));
  EXPECT_EQ(parse_block_shape("4x4x1", "b"), (BlockShape{4, 4, 1}));
  EXPECT_EQ(parse_block_shape("1x1xK", "b").str(), "1x1xK");
  for (const char* bad : {"1x4", "0x4xK", "1x4xK2", "axbxc", "1x4xKx", ""})
    EXPECT_THROW(parse_block_shape(bad, "unify: --block"), c10::Error) << bad;
}

// §4.7 item 1: counts, equal magnitudes, signs kept, free blocks unchanged; and the sequential
// selection of §4.4 (pruned = smallest E_p; unified = smallest E_u among the rest).
TEST(UnifyProjection, CountsMagnitudesSignsAndFreeBlocks) {
  torch::manual_seed(1);
  for (const auto& c : kShapes) {
    for (auto [p, u] : {std::pair{0.5, 0.25}, std::pair{0.3, 0.4}, std::pair{0.0, 1.0}}) {
      SCOPED_TRACE(c.block.str() + " p=" + std::to_string(p) + " u=" + std::to_string(u));
      auto x = torch::randn(c.shape, torch::kDouble);
      BlockPartition part(c.shape, c.block);
      auto r = project_blocks(x, part, p, u);
      const int64_t B = part.blocks();
      auto st = r.state;
      auto pr = st == uint8_t(BlockState::kPruned), un = st == uint8_t(BlockState::kUnified),
           fr = st == uint8_t(BlockState::kFree);
      EXPECT_EQ(pr.sum().item<int64_t>(), blocks_for_fraction(p, B));
      EXPECT_EQ(un.sum().item<int64_t>(), blocks_for_fraction(u, B));
      auto xb = part.to_blocks(x), wb = part.to_blocks(r.weight);
      auto zero_blocks = (wb == 0).all(1);
      EXPECT_EQ(zero_blocks.sum().item<int64_t>(), blocks_for_fraction(p, B));
      EXPECT_TRUE(zero_blocks.equal(pr));
      auto eq = equal_magnitudes(part, r.weight);
      EXPECT_TRUE(eq.masked_select(un).all().item<bool>());
      // Signs of unified blocks are the signs before projection (sign(0) = +1).
      auto vu = part.valid().index({un});
      EXPECT_TRUE(torch::equal((xb.index({un}) < 0).masked_select(vu),
                               (wb.index({un}) < 0).masked_select(vu)));
      // Free blocks unchanged, bit for bit.
      EXPECT_TRUE(xb.index({fr}).equal(wb.index({fr})));
      // Magnitudes: a* = mean |x| of the block.
      auto mean = block_sum(part, x.abs()) / part.sizes().to(torch::kDouble);
      EXPECT_TRUE(torch::allclose(r.magnitude.masked_select(un), mean.masked_select(un)));
      // Selection order.
      auto e_p = block_sum(part, x * x);
      auto e_u = part.to_blocks(x)
                     .abs()
                     .sub(mean.unsqueeze(1))
                     .square()
                     .masked_fill(~part.valid(), 0)
                     .sum(1);
      if (pr.any().item<bool>() && (~pr).any().item<bool>()) {
        EXPECT_LE(e_p.masked_select(pr).max().item<double>(),
                  e_p.masked_select(~pr).min().item<double>());
      }
      if (un.any().item<bool>() && fr.any().item<bool>()) {
        EXPECT_LE(e_u.masked_select(un).max().item<double>(),
                  e_u.masked_select(fr).min().item<double>());
      }
    }
  }
  EXPECT_THROW(project_blocks(torch::randn({4, 4}), BlockPartition({4, 4}, {1, 4, 1}), 0.8, 0.3),
               c10::Error);
  EXPECT_EQ(blocks_for_fraction(0.29, 100), 29);  // 0.29 * 100 = 28.999...
}

// §4.7 item 2: a* = mean|x| is optimal; E_u <= E_p.
TEST(UnifyProjection, MeanMagnitudeIsOptimal) {
  torch::manual_seed(2);
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t n = 2 + trial;
    auto x = torch::randn({1, n}, torch::kDouble);
    BlockPartition part({1, n}, {1, n, 1});  // one block
    auto r = project_blocks(x, part, 0.0, 1.0);
    double a = r.magnitude[0].item<double>();
    EXPECT_NEAR(a, x.abs().mean().item<double>(), 1e-12);
    auto s = torch::where(x < 0, -torch::ones_like(x), torch::ones_like(x));
    EXPECT_TRUE(r.weight.equal(a * s));
    auto cost = [&](double v) { return (v * s - x).square().sum().item<double>(); };
    double e_u = cost(a), e_p = x.square().sum().item<double>();
    EXPECT_NEAR(e_u, e_p - n * a * a, 1e-9);
    EXPECT_LE(e_u, e_p);
    for (double d : {1e-3, 1e-2, 0.1}) {
      EXPECT_GT(cost(a + d), e_u);
      EXPECT_GT(cost(a - d), e_u);
    }
  }
}

// §4.7 item 3: Pi_S(Pi_S(X)) = Pi_S(X), bit for bit, float and double, with zero blocks (ties).
TEST(UnifyProjection, Idempotent) {
  torch::manual_seed(3);
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    for (const auto& c : kShapes) {
      for (auto [p, u] : {std::pair{0.5, 0.25}, std::pair{0.1, 0.7}, std::pair{0.0, 0.0}}) {
        auto x = torch::randn(c.shape, dtype);
        BlockPartition part(c.shape, c.block);
        if (part.blocks() > 3) {  // a few all-zero blocks make ties between the lists
          auto b = part.to_blocks(x);
          b[0].zero_();
          b[2].zero_();
          x = part.from_blocks(b);
        }
        auto once = project_blocks(x, part, p, u);
        auto twice = project_blocks(once.weight, part, p, u);
        EXPECT_TRUE(twice.weight.equal(once.weight)) << c.block.str() << " p=" << p << " u=" << u;
        if (p == 0 && u == 0) {
          EXPECT_TRUE(once.weight.equal(x));
        }
      }
    }
  }
}

// A graph whose middle linear layer "fc1" is constrained (fc2 is the excluded classifier).
Graph toy_linear_graph() {
  torch::manual_seed(4);
  GraphBuilder b({16, 1, 1});
  int x = b.flatten(b.input(), "flatten");
  x = b.linear(x, 8, "fc1", false);
  Graph g = b.build(b.linear(x, 3, "fc2"), {{"classes", "3"}});
  g.to(torch::kDouble);
  return g;
}

// §4.7 item 4: U_new - U_old = W - Z each round; on a convex least-squares toy the primal
// residual goes to ~0 as rho grows. Also: after_backward adds exactly rho (W - Z + U).
TEST(UnifyAdmm, BookkeepingAndResidualOnConvexToy) {
  Graph g = toy_linear_graph();
  auto& w = g.find("fc1")->params.at("weight");  // [8, 16]: 2 blocks of 1x8 per row, 16 blocks
  torch::manual_seed(5);
  auto X = torch::randn({64, 16}, torch::kDouble), T = torch::randn({8, 16}, torch::kDouble);
  auto Y = X.matmul(T.t());
  UnifyOptions o;
  o.prune = 0.25;
  o.unify = 0.5;
  o.rho = 0.05;
  o.rho_growth = 1.5;
  o.rho_max = 20;
  Unify m(o);
  torch::optim::SGD opt({w}, torch::optim::SGDOptions(0.02));
  Context ctx{g, opt};
  m.begin(ctx);
  ASSERT_EQ(m.selected(), std::vector<std::string>{"fc1"});
  {
    // The W-step gradient.
    w.mutable_grad() = torch::zeros_like(w);
    {
      torch::NoGradGuard ng;
      w.add_(torch::randn_like(w) * 0.1);
    }
    m.after_backward(ctx);
    auto expect = m.rho() * (w.detach() - m.z("fc1") + m.u("fc1"));
    EXPECT_LT(testing::max_abs_diff(w.grad(), expect), 1e-15);
  }
  std::vector<double> residuals;
  for (int round = 0; round < 40; ++round) {
    for (int step = 0; step < 40; ++step) {
      opt.zero_grad();
      auto loss = 0.5 * (X.matmul(w.t()) - Y).square().sum() / X.size(0);
      loss.backward();
      m.after_backward(ctx);
      opt.step();
    }
    auto u_old = m.u("fc1").clone();
    m.admm_round(ctx);
    auto diff = m.u("fc1") - u_old;
    EXPECT_LT(testing::max_abs_diff(diff, w.detach() - m.z("fc1")), 1e-12) << "round " << round;
    residuals.push_back(m.residuals()[0]);
  }
  EXPECT_EQ(m.rounds(), 40);
  EXPECT_DOUBLE_EQ(m.rho(), 20.0);
  EXPECT_GT(residuals.front(), 1e-2);
  EXPECT_LT(residuals.back(), 1e-3) << "first " << residuals.front();
  // Z is in S: the hard projection of Z is Z.
  BlockPartition part({8, 16}, o.linear_block);
  EXPECT_TRUE(project_blocks(m.z("fc1"), part, o.prune, o.unify).weight.equal(m.z("fc1")));
  // ADMM state survives save/load (checkpoints).
  Writer wr;
  m.save(wr);
  Unify m2(o);
  m2.begin(ctx);
  Reader rd(wr.bytes(), "test");
  m2.load(rd);
  EXPECT_TRUE(m2.z("fc1").equal(m.z("fc1")));
  EXPECT_TRUE(m2.u("fc1").equal(m.u("fc1")));
  EXPECT_EQ(m2.rho(), m.rho());
  EXPECT_EQ(m2.rounds(), m.rounds());
  // State saved for one constraint is refused for another (a resume with another --prune).
  auto other = o;
  other.prune = 0.125;
  Unify m3(other);
  m3.begin(ctx);
  Reader rd3(wr.bytes(), "test");
  try {
    m3.load(rd3);
    ADD_FAILURE() << "a checkpoint for another constraint was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--prune"), std::string::npos) << e.what();
  }
}

// Checks after every optimizer step that the frozen entries hold exactly (runs after the
// retraining hooks in the trainer's method list).
struct StructureChecker : Method {
  explicit StructureChecker(const std::vector<UnifyFrozenLayer>* f) : frozen(f) {}
  const std::vector<UnifyFrozenLayer>* frozen;
  int steps = 0, violations = 0;
  std::string name() const override { return "checker"; }
  void after_step(Context& ctx) override {
    ++steps;
    for (const auto& f : *frozen) {
      auto w = ctx.graph.find(f.name)->params.at("weight").detach();
      if (!w.masked_select(f.fixed).equal(f.values.masked_select(f.fixed))) ++violations;
    }
  }
};

// §4.7 item 5: masked retraining keeps pruned blocks at 0 and unified blocks unified, exactly,
// after every step (momentum and weight decay on), while free weights train.
TEST(UnifyRetrain, StructurePreservedAfterEveryStep) {
  auto d = testing::tiny_data({2, 8, 8}, 5);
  Graph g = testing::fixture_all_ops(6);
  UnifyOptions o;
  Unify m(o);
  FinalizeContext ctx{g};
  m.finalize(ctx);
  // Every conv but the stem, i.e. res.conv1/2, br_a (1x1), br_b, dw (depthwise).
  EXPECT_EQ(m.selected().size(), 5u);
  ASSERT_EQ(m.frozen().size(), 5u);
  Graph before = g.clone();
  auto retrain = m.finetune_method();
  ASSERT_TRUE(retrain);
  auto checker = std::make_shared<StructureChecker>(&m.frozen());
  auto opt = small_options(2);
  opt.weight_decay = 5e-3;
  Trainer(g, opt, {retrain, checker}).fit(d.train, nullptr);
  EXPECT_GT(checker->steps, 5);
  EXPECT_EQ(checker->violations, 0);
  for (const auto& f : m.frozen()) {
    auto w0 = before.find(f.name)->params.at("weight"), w1 = g.find(f.name)->params.at("weight");
    EXPECT_FALSE(w0.masked_select(~f.fixed).equal(w1.masked_select(~f.fixed))) << f.name;
    EXPECT_GT(f.fixed.sum().item<int64_t>(), 0) << f.name;
  }
  // The structure is visible in the weights: the compact classification finds at least the
  // frozen pruned/unified blocks.
  for (const auto& [name, block] : unified_layer_blocks(g)) {
    auto L = unified_from_weight(g.find(name)->params.at("weight"), block);
    auto part = L.partition();
    EXPECT_GE(L.count(BlockState::kPruned), blocks_for_fraction(o.prune, part.blocks())) << name;
  }
}

// Masks restored from a checkpoint must have their weight's shape: a [1] mask would broadcast
// and overwrite the whole weight (issue 31). The error names the layer.
TEST(UnifyRetrain, RestoredMasksAreShapeChecked) {
  auto d = testing::tiny_data({2, 8, 8}, 5);
  Graph g = testing::fixture_all_ops(6);
  Unify m{UnifyOptions{}};
  FinalizeContext fctx{g};
  m.finalize(fctx);
  testing::TempDir dir;
  auto opt = small_options(1);
  opt.out_dir = dir.path;
  Trainer(g, opt, {m.finetune_method()}).fit(d.train, nullptr);
  Checkpoint ck = load_checkpoint(checkpoint_path(dir.path));
  ASSERT_TRUE(ck.method_states.count("unify-retrain"));
  Writer w;
  w.u64(1);
  w.str(m.frozen()[0].name);
  w.tensor(torch::ones({1}, torch::kUInt8));
  w.tensor(torch::zeros({1}));
  ck.method_states["unify-retrain"] = w.bytes();
  Graph again = ck.graph.clone();
  opt.epochs = 2;
  try {
    Trainer(again, opt, {m.finetune_method()}).fit(d.train, nullptr, &ck);
    ADD_FAILURE() << "mis-shaped masks were accepted";
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("unify: checkpoint masks of layer '" + m.frozen()[0].name +
                       "' have shapes [1] / [1], the weight is"),
              std::string::npos)
        << msg;
  }
}

// §4.7 item 6: the sign-sum kernel equals the dense conv with the same weights; its multiply
// count equals the §4.6 formula.
TEST(UnifyKernel, MatchesDenseConvAndCountsMacs) {
  torch::manual_seed(7);
  struct Case {
    std::vector<int64_t> shape;
    BlockShape block;
    int64_t stride, pad, dil, groups;
    bool bias;
  };
  const std::vector<Case> cases = {
      {{16, 16, 3, 3}, {1, 4, 0}, 1, 1, 1, 1, false},
      {{12, 10, 3, 3}, {1, 4, 0}, 2, 1, 1, 1, true},
      {{16, 16, 3, 3}, {4, 4, 1}, 1, 1, 1, 1, false},
      {{10, 6, 3, 3}, {4, 4, 1}, 1, 2, 2, 1, true},
      {{16, 16, 3, 3}, {1, 1, 0}, 1, 0, 1, 1, false},
      {{8, 4, 3, 3}, {1, 4, 0}, 1, 1, 1, 2, true},   // groups
      {{8, 8, 1, 1}, {1, 4, 0}, 1, 0, 1, 1, false},  // pointwise
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.block.str() + " groups=" + std::to_string(c.groups));
    auto w = torch::randn(c.shape) * 0.2;
    BlockPartition part(c.shape, c.block);
    auto proj = project_blocks(w, part, 0.5, 0.25);
    Attrs a;
    a.kernel = {c.shape[2], c.shape[3]};
    a.stride = {c.stride, c.stride};
    a.padding = {c.pad, c.pad};
    a.dilation = {c.dil, c.dil};
    a.groups = c.groups;
    auto x = torch::randn({2, c.shape[1] * c.groups, 11, 9});
    auto bias = c.bias ? torch::randn({c.shape[0]}) : torch::Tensor();
    auto dense = torch::conv2d(x, proj.weight, bias, a.stride, a.padding, a.dilation, a.groups);
    auto L = unified_from_weight(proj.weight, c.block);
    UnifiedConv2d k(L, a);
    auto y = k.forward(x, bias);
    ASSERT_EQ(y.sizes(), dense.sizes());
    EXPECT_LT(testing::max_abs_diff(y, dense), 1e-5);
    // Multiplies: free weights + one per unified block and output row (§4.6).
    auto cost = unify_layer_cost(part, proj.state, 1);
    EXPECT_EQ(k.multiplies_per_position(), cost.macs);
    EXPECT_EQ(cost.macs, cost.free_weights + cost.unified_rows);
    // Hand formula from the counts of the projection.
    const int64_t B = part.blocks(), np = blocks_for_fraction(0.5, B),
                  nu = blocks_for_fraction(0.25, B);
    if (c.shape[0] % c.block.out == 0 && c.shape[1] % c.block.in == 0) {
      const int64_t S = part.block_size(), rows = part.block().out;
      EXPECT_EQ(cost.macs, (B - np - nu) * S + nu * rows);
    }
  }
  // Double precision is exact to rounding of the sum order.
  auto w = torch::randn({8, 8, 3, 3}, torch::kDouble);
  BlockPartition part({8, 8, 3, 3}, {1, 4, 0});
  auto pw = project_blocks(w, part, 0.25, 0.5).weight;
  Attrs a;
  a.kernel = {3, 3};
  a.padding = {1, 1};
  auto x = torch::randn({1, 8, 6, 6}, torch::kDouble);
  EXPECT_LT(testing::max_abs_diff(unified_conv2d(x, unified_from_weight(pw, {1, 4, 0}), a),
                                  torch::conv2d(x, pw, {}, 1, 1)),
            1e-12);
}

// The MAC counter of finalize() matches the formula on a real layer: resnet20 layer1.0.conv1
// is 16x16x3x3 on 32x32 outputs, 64 blocks of 1x4x9.
TEST(UnifyKernel, FinalizeReportsMacsAndStorage) {
  Graph g = build_model("resnet20", {1, 32, 32}, 10);
  Unify m(UnifyOptions{});
  FinalizeContext ctx{g};
  m.finalize(ctx);
  Json j;
  m.describe(j);
  const Json* layer = nullptr;
  for (const auto& l : j.get("layers").items())
    if (l.get("name").str() == "layer1.0.conv1") layer = &l;
  ASSERT_TRUE(layer);
  EXPECT_EQ(layer->get("blocks").integer(), 64);
  EXPECT_EQ(layer->get("pruned_blocks").integer(), 32);
  EXPECT_EQ(layer->get("unified_blocks").integer(), 16);
  EXPECT_EQ(layer->get("free_weights").integer(), 16 * 36);
  EXPECT_EQ(layer->get("macs_dense").integer(), 16 * 16 * 9 * 32 * 32);
  EXPECT_EQ(layer->get("macs").integer(), (16 * 36 + 16) * 32 * 32);
  EXPECT_DOUBLE_EQ(layer->get("storage_ratio").num(), 2304.0 / (16 * 36 + 16));
  EXPECT_DOUBLE_EQ(layer->get("storage_ratio_bits").num(),
                   2304.0 / (16 * 36 + 16 + (16 * 36 + 2 * 64) / 32.0));
  // Whole network: first conv and fc dense.
  EXPECT_GT(j.get("compute_ratio").num(), 2.5);
  EXPECT_LT(j.get("compute_ratio").num(), 4.0);
  EXPECT_GT(j.get("storage_ratio").num(), 2.5);
  EXPECT_EQ(j.get("layers").size(), 20u);  // 21 convs (incl. 2 downsample) - first
  EXPECT_LT(j.get("file_bytes_unified").num(), j.get("file_bytes_standard").num());
  EXPECT_EQ(unified_layer_blocks(g).size(), 20u);
  EXPECT_EQ(unified_layer_blocks(g).at("layer3.2.conv2"), (BlockShape{1, 4, 9}));
}

TEST(UnifyFormat, EncodeDecodeIsBitExact) {
  torch::manual_seed(8);
  for (const auto& c : kShapes) {
    for (auto dtype : {torch::kFloat, torch::kDouble}) {
      auto x = torch::randn(c.shape, dtype);
      BlockPartition part(c.shape, c.block);
      auto w = project_blocks(x, part, 0.4, 0.4).weight;
      // A unified block of zeros with negative zeros, and a -0.0 in a free block.
      auto b = part.to_blocks(w);
      auto un = (project_blocks(x, part, 0.4, 0.4).state == uint8_t(BlockState::kUnified));
      int64_t ub = un.nonzero()[0][0].item<int64_t>();
      b[ub].fill_(-0.0);
      w = part.from_blocks(b);
      w.view({-1})[w.numel() - 1] = -0.0;
      auto L = unified_from_weight(w, c.block);
      std::string bytes = encode_unified(L);
      auto L2 = decode_unified(bytes, "test");
      auto w2 = unified_to_weight(L2);
      EXPECT_TRUE(w2.equal(w));
      EXPECT_TRUE(torch::signbit(w2).equal(torch::signbit(w))) << c.block.str();
      // Size: header + 2 bits/block + magnitudes + sign bits + free values.
      const int64_t es = torch::elementSize(dtype);
      const int64_t header = 4 + 2 + 8 * int64_t(c.shape.size()) + 3 * 8 + 4 * 8;
      EXPECT_EQ(int64_t(bytes.size()), header + (part.blocks() + 3) / 4 +
                                           L.magnitudes.numel() * es + (L.signs.numel() + 7) / 8 +
                                           L.free_values.numel() * es);
      // Corruption is detected.
      EXPECT_THROW(decode_unified(bytes.substr(0, bytes.size() - 1), "t"), c10::Error);
      std::string bad = bytes;
      bad[header] = static_cast<char>(0xff);  // block states 3
      EXPECT_THROW(decode_unified(bad, "t"), c10::Error);
      EXPECT_THROW(decode_unified("XXXX" + bytes.substr(4), "t"), c10::Error);
    }
  }
}

// Sizes in a unified layer's header are checked before the partition allocates (issue 31): a
// ~100-byte layer cannot make the reader build a per-entry partition of 2^32 entries.
TEST(UnifyFormat, HeaderSizesAreCheckedBeforeAllocating) {
  auto header = [](const std::vector<int64_t>& shape, const std::vector<int64_t>& block,
                   uint64_t blocks) {
    std::string s("UNF1", 4);
    put_le<uint8_t>(s, static_cast<uint8_t>(torch::kFloat));
    put_le<uint8_t>(s, static_cast<uint8_t>(shape.size()));
    for (auto d : shape) put_le<int64_t>(s, d);
    for (auto d : block) put_le<int64_t>(s, d);
    put_le<uint64_t>(s, blocks);
    for (int i = 0; i < 3; ++i) put_le<uint64_t>(s, 0);
    return s;
  };
  auto error_of = [](const std::string& bytes, const std::vector<int64_t>* expected = nullptr) {
    try {
      decode_unified(bytes, "u.nnslim", expected);
    } catch (const c10::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const int64_t big = int64_t(1) << 30;
  // One block of 2^32 entries, all pruned: 1 mask byte (the old reader allocated 4 GiB first).
  std::string one_block = header({big, 4}, {big, 4, 1}, 1) + std::string(1, '\0');
  std::string msg = error_of(one_block);
  EXPECT_NE(msg.find("u.nnslim: unified layer has 2^32 or more entries"), std::string::npos) << msg;
  // Fewer entries but a mask far longer than the data.
  msg = error_of(header({1 << 20, 1 << 10}, {1, 1, 1}, uint64_t(1) << 30));
  EXPECT_NE(msg.find("do not match its 0 bytes of data"), std::string::npos) << msg;
  // A shape other than the weight's is refused before anything else.
  const std::vector<int64_t> expected = {4, 4};
  msg = error_of(header({1 << 20, 1 << 10}, {1, 1, 1}, uint64_t(1) << 30), &expected);
  EXPECT_NE(
      msg.find("u.nnslim: unified layer of shape [1048576, 1024] for a weight of shape [4, 4]"),
      std::string::npos)
      << msg;
  // Zero and negative dimensions are named.
  msg = error_of(header({4, 0}, {1, 1, 1}, 0));
  EXPECT_NE(msg.find("unified layer dimension 1 is 0"), std::string::npos) << msg;
}

// Save/load round trip of the compact file; it is smaller than the ordinary file.
TEST(UnifyFormat, SaveLoadRoundTripAndFileShrinks) {
  testing::TempDir dir;
  torch::manual_seed(9);
  Graph g = build_model("resnet20", {1, 32, 32}, 10);
  save_graph(g, dir.file("dense.nnslim"));
  Unify m(UnifyOptions{});
  FinalizeContext ctx{g};
  m.finalize(ctx);
  save_graph(g, dir.file("after.nnslim"));
  save_unified(g, dir.file("unified.nnslim"));
  Graph back = load_unified(dir.file("unified.nnslim"));
  EXPECT_TRUE(same_weights(g, back));
  EXPECT_EQ(back.meta, g.meta);
  auto x = torch::randn({2, 1, 32, 32});
  EXPECT_TRUE(forward(g, x, Mode::kEval).equal(forward(back, x, Mode::kEval)));
  auto size = [&](const char* f) { return int64_t(std::filesystem::file_size(dir.file(f))); };
  EXPECT_EQ(size("unified.nnslim"), unified_file_bytes(g));
  EXPECT_LT(size("unified.nnslim"), size("after.nnslim"));
  EXPECT_LT(size("after.nnslim"), size("dense.nnslim"));
  RecordProperty("dense_bytes", std::to_string(size("dense.nnslim")));
  RecordProperty("after_bytes", std::to_string(size("after.nnslim")));
  RecordProperty("unified_bytes", std::to_string(size("unified.nnslim")));
  // The ordinary loader refuses the compact file (its placeholders are not weights).
  EXPECT_THROW(load_graph(dir.file("unified.nnslim")), c10::Error);
  EXPECT_THROW(load_unified(dir.file("after.nnslim")), c10::Error);
}

// §4.7 item 7: p = u = 0 => training with the method and fine-tuning with its retraining hooks
// equal plain training and plain fine-tuning, bit for bit, through the whole pipeline.
TEST(UnifyPipeline, ZeroRatiosEqualPlainTrainingBitForBit) {
  auto d = testing::tiny_data();
  struct Plain : Method {
    std::string name() const override { return "plain"; }
  };
  CompressOptions co;
  co.train = small_options(2);
  co.finetune_epochs = 1;
  co.measure_latency = false;
  Graph a = testing::tiny_convnet(2), b = testing::tiny_convnet(2);
  compress(a, std::make_shared<Plain>(), d.train, d.test, co);
  UnifyOptions o;
  o.prune = 0;
  o.unify = 0;
  o.rho = 0.1;  // S is the whole space: no penalty whatever rho
  auto m = std::make_shared<Unify>(o);
  compress(b, m, d.train, d.test, co);
  EXPECT_EQ(m->selected(), std::vector<std::string>{"conv2"});
  EXPECT_EQ(m->rounds(), 2);
  EXPECT_TRUE(same_weights(a, b));
  // ... whereas p, u > 0 changes the result and leaves the structure in place.
  Graph c = testing::tiny_convnet(2);
  auto m2 = std::make_shared<Unify>(UnifyOptions{});
  auto r = compress(c, m2, d.train, d.test, co);
  EXPECT_FALSE(same_weights(a, c));
  EXPECT_GT(r.method.get("storage_ratio").num(), 1.0);
  auto w = c.find("conv2")->params.at("weight");
  const auto& f = m2->frozen().at(0);
  EXPECT_TRUE(w.masked_select(f.fixed).equal(f.values.masked_select(f.fixed)));
}

// A run killed after an epoch or inside one (an ADMM round every 2 batches: Z, U and rho move
// within epochs) and resumed from its checkpoint ends with the weights of an uninterrupted run.
TEST(UnifyPipeline, ResumeEqualsUninterruptedRun) {
  UnifyOptions o;
  o.round_batches = 2;
  auto r = testing::crash_and_resume(
      [o] { return std::vector<std::shared_ptr<Method>>{std::make_shared<Unify>(o)}; },
      small_options(3));
  EXPECT_TRUE(r.resumed_equals_full);
  EXPECT_TRUE(r.resumed_inside_epoch_equals_full);
}

// rho = 0 switches the penalty off: the W-step is plain SGD for any p, u, while the ADMM rounds
// still run (they never touch W).
TEST(UnifyPipeline, ZeroRhoTrainsLikePlainSgd) {
  auto d = testing::tiny_data();
  Graph a = testing::tiny_convnet(2), b = testing::tiny_convnet(2);
  Trainer(a, small_options(2)).fit(d.train, nullptr);
  UnifyOptions o;
  o.rho = 0;
  o.rho_max = 0;
  o.round_batches = 2;
  auto m = std::make_shared<Unify>(o);
  Trainer(b, small_options(2), {m}).fit(d.train, nullptr);
  EXPECT_GT(m->rounds(), 4);
  EXPECT_TRUE(same_weights(a, b));
}

TEST(UnifyOptions, AreValidatedWithTheOptionName) {
  auto expect_error = [](std::map<std::string, std::string> v, const std::string& text) {
    try {
      create_method("unify", v);
      ADD_FAILURE() << "expected an error containing: " << text;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  expect_error({{"prune", "0.9"}, {"unify", "0.3"}}, "unify: prune + unify must be <= 1, got 1.2");
  expect_error({{"block", "1x4"}}, "unify: --block expects OxIxK");
  expect_error({{"rho-growth", "0.5"}}, "unify: rho-growth must be >= 1");
  expect_error({{"prune", "-0.1"}}, "unify: prune must be in [0, 1]");
  expect_error({{"linear-block", "1x8x2"}}, "unify: linear-block must be OxIx1");
  expect_error({{"rho", "abc"}}, "expects a number");
  auto m = create_method("unify", {{"block", "4x4x1"}, {"exclude", "nope"}});
  Graph g = testing::tiny_convnet();
  torch::optim::SGD dummy(g.parameters(), torch::optim::SGDOptions(0.1));
  Context ctx{g, dummy};
  EXPECT_THROW(m->begin(ctx), c10::Error);
  // Generic flags are never redefined.
  for (const auto& o : find_method("unify").options)
    for (const char* generic :
         {"epochs", "lr", "momentum", "weight-decay", "schedule", "seed", "batch-size", "dataset",
          "model", "out", "device", "threads", "finetune-epochs", "finetune-lr", "limit-train",
          "limit-test", "no-latency", "quiet", "force"})
      EXPECT_NE(o.key, generic);
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(UnifyCli, CompressSmoke) {
  testing::TempDir dir;
  std::string out;
  ASSERT_EQ(
      testing::run_cli(
          "train --model resnet20 --dataset synthetic --epochs 0 --quiet --out " + dir.file("in"),
          &out),
      0)
      << out;
  ASSERT_EQ(
      testing::run_cli("compress --method unify --model " + dir.file("in/model.nnslim") +
                           " --prune 0.5 --unify 0.25 --block 1x4xK --epochs 1 --finetune-epochs 1"
                           " --limit-train 256 --limit-test 64 --no-latency --quiet --out " +
                           dir.file("out"),
                       &out),
      0)
      << out;
  Json s = Json::parse(read_text(dir.file("out/summary.json")));
  EXPECT_EQ(s.get("method").str(), "unify");
  const Json& md = s.get("method_details");
  EXPECT_GT(md.get("storage_ratio").num(), 2.0);
  EXPECT_GT(md.get("compute_ratio").num(), 2.0);
  EXPECT_LT(md.get("file_bytes_unified").num(), s.get("after").get("file_bytes").num());
  EXPECT_EQ(md.get("admm").get("rounds").integer(), 1);
  EXPECT_EQ(md.get("layers_total").get("layers").integer(), 20);  // 21 convs - the first
  std::string metrics = read_text(dir.file("out/metrics.jsonl"));
  EXPECT_NE(metrics.find("unify_residual"), std::string::npos) << metrics;
  // The written model is an ordinary model file with the structure in its weights.
  Graph g = load_graph(dir.file("out/model.nnslim"));
  EXPECT_EQ(unified_layer_blocks(g).size(), 20u);
  EXPECT_EQ(unified_file_bytes(g), int64_t(md.get("file_bytes_unified").num()));
  // Option errors are usage errors naming the option.
  EXPECT_EQ(testing::run_cli("compress --method unify --model " + dir.file("in/model.nnslim") +
                                 " --prune 0.9 --unify 0.3 --out " + dir.file("x"),
                             &out),
            2);
  EXPECT_NE(out.find("unify: prune + unify must be <= 1, got 1.2"), std::string::npos) << out;
}

}  // namespace
}  // namespace nnslim
