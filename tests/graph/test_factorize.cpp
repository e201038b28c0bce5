// Conv factorisation surgery (graph/factorize.h, METHODS.md §1.2, §1.6, invariants §1.8.6-7):
// exactness at full rank, equality with the rank-r reconstruction when truncated, rewiring,
// save/load, and MAC counts against the closed-form formulas.
#include "nnslim/graph/cost.h"
#include "nnslim/graph/execute.h"
#include "nnslim/graph/factorize.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/methods/lowrank.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

namespace nnslim {
namespace {

constexpr Scheme kSchemes[] = {Scheme::kChannel, Scheme::kSpatial, Scheme::kDecouple,
                               Scheme::kChannelIn};

struct ConvCase {
  const char* what;
  int64_t c, n, kh, kw, sh, sw, ph, pw, dil;
  int64_t h, w;  // input size
  bool bias;
};

const ConvCase kCases[] = {
    {"3x3 pad 1", 5, 7, 3, 3, 1, 1, 1, 1, 1, 9, 10, true},
    {"3x3 stride 2", 6, 4, 3, 3, 2, 2, 1, 1, 1, 11, 9, false},
    {"3x5 stride (2,1) padding (0,2)", 4, 6, 3, 5, 2, 1, 0, 2, 1, 10, 12, true},
    {"5x3 stride (1,3) padding (2,0)", 3, 5, 5, 3, 1, 3, 2, 0, 1, 9, 13, true},
    {"3x3 dilation 2", 4, 4, 3, 3, 1, 1, 2, 2, 2, 9, 9, false},
    {"5x5 pad 0", 6, 16, 5, 5, 1, 1, 0, 0, 1, 12, 12, true},
};

// input -> conv -> relu -> (conv is also read by) add(conv, relu) : the conv has two readers.
Graph one_conv(const ConvCase& k, torch::Dtype dtype, uint64_t seed = 0) {
  torch::manual_seed(seed);
  GraphBuilder b({k.c, k.h, k.w});
  int x;
  if (k.dil != 1)
    x = b.conv(b.input(), k.n, k.kh, k.sh, k.ph, "conv", k.bias, 1, k.dil);
  else
    x = b.conv2(b.input(), k.n, {k.kh, k.kw}, {k.sh, k.sw}, {k.ph, k.pw}, "conv", k.bias);
  int y = b.relu(x, "relu");
  Graph g = b.build(b.add({x, y}, "add"), {{"classes", "1"}});
  if (k.bias) {
    torch::NoGradGuard ng;
    g.find("conv")->params.at("bias").uniform_(-0.5, 0.5);
  }
  g.to(dtype);
  return g;
}

// The conv alone as the graph output.
Graph conv_only(const ConvCase& k, uint64_t seed = 0) {
  torch::manual_seed(seed);
  GraphBuilder b({k.c, k.h, k.w});
  int x = b.conv2(b.input(), k.n, {k.kh, k.kw}, {k.sh, k.sw}, {k.ph, k.pw}, "conv", k.bias);
  return b.build(x, {{"classes", "1"}});
}

TEST(Factorize, FullRankEqualsOriginalConvBothSchemes) {
  for (const auto& k : kCases)
    for (Scheme s : kSchemes)
      for (auto dtype : {torch::kFloat, torch::kDouble}) {
        Graph g = one_conv(k, dtype, 1);
        auto x = torch::randn({3, k.c, k.h, k.w}, torch::dtype(dtype));
        auto ref = forward(g, x, Mode::kEval);
        const int64_t R = max_rank(g.find("conv")->params.at("weight").sizes(), s);
        factorize_conv(g, g.find("conv")->id, s, R);
        auto out = forward(g, x, Mode::kEval);
        double tol = dtype == torch::kFloat ? 1e-4 : 1e-10;
        EXPECT_LT(testing::max_abs_diff(out, ref), tol)
            << k.what << " " << scheme_name(s) << " " << c10::toString(dtype);
      }
}

TEST(Factorize, TruncatedEqualsConvWithRankRReconstruction) {
  for (const auto& k : kCases)
    for (Scheme s : kSchemes) {
      Graph g = one_conv(k, torch::kDouble, 2);
      Node* conv = g.find("conv");
      const int64_t r = 2;
      // Reference: the same graph with the conv weight replaced by its rank-r reconstruction.
      Graph ref = g.clone();
      {
        torch::NoGradGuard ng;
        auto& w = ref.find("conv")->params.at("weight");
        w.copy_(project_conv_weight(w, s, r));
      }
      factorize_conv(g, conv->id, s, r);
      auto x = torch::randn({2, k.c, k.h, k.w}, torch::kDouble);
      EXPECT_LT(testing::max_abs_diff(forward(g, x, Mode::kEval), forward(ref, x, Mode::kEval)),
                1e-10)
          << k.what << " " << scheme_name(s);
      // The composed factors have rank <= r in the scheme's matricisation.
      auto a = g.find("conv.0")->params.at("weight"), b = g.find("conv.1")->params.at("weight");
      EXPECT_EQ(a.size(0), s == Scheme::kDecouple ? k.n * r : r);
      EXPECT_EQ(b.size(1), r);
    }
}

TEST(Factorize, NodesAreInsertedInPlaceAndReadersRewired) {
  Graph g = testing::fixture_all_ops(3);
  auto x = torch::randn({2, 2, 8, 8});
  auto ref = forward(g, x, Mode::kEval);
  const int old_next = g.next_id;
  const int id = g.find("res.conv1")->id;
  const size_t pos = g.index_of(id);
  const size_t count = g.nodes.size();
  const int bn = g.find("res.bn1")->id;
  auto r = factorize_conv(g, id, Scheme::kChannel, 8);  // full rank: 8 = min(8, 72)
  EXPECT_GE(r.first, old_next);
  EXPECT_GE(r.second, old_next);
  EXPECT_EQ(g.nodes.size(), count + 1);
  EXPECT_EQ(g.nodes[pos].id, r.first);
  EXPECT_EQ(g.nodes[pos].name, "res.conv1.0");
  EXPECT_EQ(g.nodes[pos + 1].id, r.second);
  EXPECT_EQ(g.nodes[pos + 1].name, "res.conv1.1");
  EXPECT_EQ(g.node(bn).inputs, std::vector<int>{r.second});
  EXPECT_EQ(g.node(r.second).inputs, std::vector<int>{r.first});
  EXPECT_EQ(g.find("res.conv1"), nullptr);
  EXPECT_THROW(g.node(id), c10::Error);  // the old id is gone
  // The conv feeding avgpool/concat (with bias), spatial scheme, full rank 18 = min(8*3, 6*3).
  factorize_conv(g, g.find("br_b")->id, Scheme::kSpatial, 18);
  EXPECT_TRUE(g.find("br_b.1")->params.count("bias"));
  EXPECT_FALSE(g.find("br_b.0")->params.count("bias"));
  EXPECT_TRUE(g.find("br_b.1")->params.at("weight").requires_grad());
  validate(g);
  EXPECT_LT(testing::max_abs_diff(forward(g, x, Mode::kEval), ref), 1e-4);
  // Trainable: gradients reach the factors.
  forward(g, x, Mode::kTrain).sum().backward();
  EXPECT_TRUE(g.find("res.conv1.0")->params.at("weight").grad().defined());
}

TEST(Factorize, OutputNodeAndMultipleReaders) {
  ConvCase k{"", 3, 4, 3, 3, 1, 1, 1, 1, 1, 6, 6, true};
  Graph g = conv_only(k);
  auto x = torch::randn({1, 3, 6, 6});
  auto ref = forward(g, x, Mode::kEval);
  auto r = factorize_conv(g, g.find("conv")->id, Scheme::kChannel, 4);
  EXPECT_EQ(g.output, r.second);
  EXPECT_LT(testing::max_abs_diff(forward(g, x, Mode::kEval), ref), 1e-4);

  Graph h = one_conv(k, torch::kFloat);  // conv read by relu and add
  ref = forward(h, x, Mode::kEval);
  r = factorize_conv(h, h.find("conv")->id, Scheme::kSpatial, 9);
  EXPECT_EQ(h.find("relu")->inputs, std::vector<int>{r.second});
  EXPECT_EQ(h.find("add")->inputs[0], r.second);
  EXPECT_LT(testing::max_abs_diff(forward(h, x, Mode::kEval), ref), 1e-4);
}

TEST(Factorize, SurvivesSaveAndLoad) {
  testing::TempDir dir;
  Graph g = testing::fixture_all_ops(4);
  factorize_conv(g, g.find("res.conv2")->id, Scheme::kChannel, 3);
  factorize_conv(g, g.find("br_b")->id, Scheme::kSpatial, 2);
  save_graph(g, dir.file("f.nnslim"));
  Graph l = load_graph(dir.file("f.nnslim"));
  ASSERT_EQ(l.nodes.size(), g.nodes.size());
  auto x = torch::randn({2, 2, 8, 8});
  EXPECT_EQ(testing::max_abs_diff(forward(l, x, Mode::kEval), forward(g, x, Mode::kEval)), 0.0);
  EXPECT_EQ(count_cost(l).macs, count_cost(g).macs);
  EXPECT_EQ(count_cost(l).params, count_cost(g).params);
  EXPECT_EQ(l.find("br_b.0")->attrs.kernel, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(l.find("br_b.1")->attrs.padding, (std::vector<int64_t>{0, 1}));
}

TEST(Factorize, CostMatchesClosedFormulas) {
  // METHODS.md §1.6, stride 1 with "same" padding: per output pixel NC r*c*k^2 + n*r,
  // VH c*r*kh + n*r*kw.
  const int64_t c = 6, n = 8, k = 3, H = 10, W = 12;
  ConvCase cc{"", c, n, k, k, 1, 1, 1, 1, 1, H, W, false};
  for (int64_t r : {1, 2, 5}) {
    Graph g = conv_only(cc);
    const Node conv = *g.find("conv");
    const int64_t dense = count_cost(g).macs;
    EXPECT_EQ(dense, n * c * k * k * H * W);
    factorize_conv(g, conv.id, Scheme::kChannel, r);
    EXPECT_EQ(count_cost(g).macs, (r * c * k * k + n * r) * H * W);
    EXPECT_EQ(count_cost(g).params, r * c * k * k + n * r);
    EXPECT_EQ(factorized_conv_macs(conv, {c, H, W}, Scheme::kChannel, r), count_cost(g).macs);
    Graph h = conv_only(cc);
    factorize_conv(h, h.find("conv")->id, Scheme::kSpatial, r);
    EXPECT_EQ(count_cost(h).macs, (c * r * k + n * r * k) * H * W);
    EXPECT_EQ(factorized_conv_macs(conv, {c, H, W}, Scheme::kSpatial, r), count_cost(h).macs);
    // ND: r*(n*c + n*kh*kw).
    Graph d = conv_only(cc);
    factorize_conv(d, d.find("conv")->id, Scheme::kDecouple, r);
    EXPECT_EQ(count_cost(d).macs, r * (n * c + n * k * k) * H * W);
    EXPECT_EQ(d.find("conv.1")->attrs.groups, n);
    // channel-in: c*r + n*r*kh*kw (the same as channel when c = n).
    Graph ci = conv_only(cc);
    factorize_conv(ci, ci.find("conv")->id, Scheme::kChannelIn, r);
    EXPECT_EQ(count_cost(ci).macs, (c * r + n * r * k * k) * H * W);
  }
  // Speed-up > 1 exactly when r < n*c*k^2 / (c*k^2 + n) for NC (§1.8.7).
  Graph g = conv_only(cc);
  const Node& conv = *g.find("conv");
  const double bound = double(n * c * k * k) / double(c * k * k + n);
  const int64_t be = break_even_rank(conv, {c, H, W}, Scheme::kChannel);
  EXPECT_LT(be, bound);
  EXPECT_GE(be + 1, bound);
  EXPECT_LT(factorized_conv_macs(conv, {c, H, W}, Scheme::kChannel, be),
            conv_macs(conv, {c, H, W}));
  // Strided and non-square cases: the helper agrees with count_cost after surgery.
  for (const auto& kc : kCases)
    for (Scheme s : kSchemes) {
      Graph a = one_conv(kc, torch::kFloat);
      const Node before = *a.find("conv");
      const int64_t total = count_cost(a).macs, dense_conv = conv_macs(before, {kc.c, kc.h, kc.w});
      factorize_conv(a, before.id, s, 2);
      EXPECT_EQ(count_cost(a).macs,
                total - dense_conv + factorized_conv_macs(before, {kc.c, kc.h, kc.w}, s, 2))
          << kc.what << " " << scheme_name(s);
    }
}

TEST(Factorize, BadRequestsLeaveTheGraphUnchanged) {
  Graph g = testing::fixture_all_ops(5);
  const size_t count = g.nodes.size();
  const int next = g.next_id;
  EXPECT_THROW(factorize_conv(g, g.find("res.conv1")->id, Scheme::kChannel, 0), c10::Error);
  EXPECT_THROW(factorize_conv(g, g.find("res.conv1")->id, Scheme::kChannel, 9), c10::Error);
  EXPECT_THROW(factorize_conv(g, g.find("dw")->id, Scheme::kChannel, 1), c10::Error);  // grouped
  EXPECT_THROW(factorize_conv(g, g.find("fc")->id, Scheme::kChannel, 1), c10::Error);
  EXPECT_THROW(scheme_from_name("tucker"), c10::Error);
  EXPECT_THROW(factorize_conv(g, g.find("res.conv1")->id, Scheme::kDecouple, 10), c10::Error);
  EXPECT_EQ(g.nodes.size(), count);
  EXPECT_EQ(g.next_id, next);
  validate(g);
}

}  // namespace
}  // namespace nnslim
