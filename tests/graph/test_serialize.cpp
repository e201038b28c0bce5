// The *.nnslim file: bitwise round trip, and clear errors for truncated, corrupt, foreign and
// newer-version files.
#include "nnslim/graph/execute.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/models/zoo.h"
#include "nnslim/train/checkpoint.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace nnslim {
namespace {

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
void spit(const std::string& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Serialize, RoundTripIsBitwise) {
  testing::TempDir dir;
  Graph g = testing::fixture_all_ops(3);
  g.meta["dataset"] = "synthetic";
  // Make BN buffers non-trivial.
  forward(g, torch::randn({4, 2, 8, 8}), Mode::kTrain);
  save_graph(g, dir.file("m.nnslim"));
  Graph h = load_graph(dir.file("m.nnslim"));
  ASSERT_EQ(g.nodes.size(), h.nodes.size());
  EXPECT_EQ(g.meta, h.meta);
  EXPECT_EQ(g.input_shape, h.input_shape);
  EXPECT_EQ(g.output, h.output);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const auto &a = g.nodes[i], &b = h.nodes[i];
    EXPECT_EQ(a.id, b.id);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.op, b.op);
    EXPECT_EQ(a.inputs, b.inputs);
    EXPECT_EQ(a.attrs.stride, b.attrs.stride);
    EXPECT_EQ(a.attrs.groups, b.attrs.groups);
    EXPECT_EQ(a.attrs.p, b.attrs.p);
    for (const auto& [k, t] : a.params) {
      EXPECT_TRUE(t.equal(b.params.at(k))) << a.name << "." << k;
      EXPECT_TRUE(b.params.at(k).requires_grad());
    }
    for (const auto& [k, t] : a.buffers)
      EXPECT_TRUE(t.equal(b.buffers.at(k))) << a.name << "." << k;
  }
  auto x = torch::randn({2, 2, 8, 8});
  EXPECT_TRUE(forward(g, x, Mode::kEval).equal(forward(h, x, Mode::kEval)));
  // Saving the loaded graph gives the same bytes.
  save_graph(h, dir.file("m2.nnslim"));
  EXPECT_EQ(slurp(dir.file("m.nnslim")), slurp(dir.file("m2.nnslim")));
  // No temp file is left behind.
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path)) files += e.is_regular_file();
  EXPECT_EQ(files, 2);
}

TEST(Serialize, BadFilesGiveClearErrors) {
  testing::TempDir dir;
  std::string path = dir.file("m.nnslim");
  save_graph(testing::tiny_convnet(), path);
  std::string good = slurp(path);

  spit(path, good.substr(0, good.size() / 2));
  EXPECT_NE(error_of([&] { load_graph(path); }).find("truncated"), std::string::npos);

  spit(path, good.substr(0, 10));
  EXPECT_NE(error_of([&] { load_graph(path); }).find("truncated"), std::string::npos);

  std::string corrupt = good;
  corrupt[corrupt.size() / 2] ^= 0x5a;
  spit(path, corrupt);
  EXPECT_NE(error_of([&] { load_graph(path); }).find("checksum mismatch"), std::string::npos);

  std::string newer = good;
  newer[8] = 99;  // version field
  spit(path, newer);
  auto msg = error_of([&] { load_graph(path); });
  EXPECT_NE(msg.find("version 99 is newer"), std::string::npos) << msg;

  spit(path, "hello world, not a model at all");
  msg = error_of([&] { load_graph(path); });
  EXPECT_NE(msg.find("not a nnslim model file"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;

  msg = error_of([&] { load_graph(dir.file("missing.nnslim")); });
  EXPECT_NE(msg.find("cannot open"), std::string::npos) << msg;
}

TEST(Serialize, ReaderRejectsOverlongFields) {
  Writer w;
  w.u64(1ull << 40);  // a string length far beyond the data
  Reader r(w.bytes(), "test");
  EXPECT_THROW(r.str(), c10::Error);
}

// ---- format version 2: sparse tensor encodings ------------------------------------------------

// Bytes of a contiguous CPU tensor, for bitwise comparisons (-0.0 != +0.0, NaN payloads).
std::string raw_bytes(const torch::Tensor& t) {
  auto c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

// The encoding byte Writer::tensor chose (right after the shape).
int encoding_of(const torch::Tensor& t) {
  Writer w;
  w.tensor(t);
  return static_cast<unsigned char>(w.bytes()[4 + 4 + 4 + 8 * t.dim()]);
}

torch::Tensor round_trip(const torch::Tensor& t) {
  Writer w;
  w.tensor(t);
  Reader r(w.bytes(), "test");
  auto back = r.tensor();
  EXPECT_TRUE(r.done());
  return back;
}

// Zeroes a fraction of the entries (+0.0), at random positions.
torch::Tensor with_zeros(torch::Tensor t, double fraction, uint64_t seed) {
  torch::manual_seed(seed);
  return t.masked_fill(torch::rand(t.sizes()) < fraction, 0);
}

TEST(Serialize, SparseTensorsRoundTripBitwise) {
  torch::manual_seed(0);
  std::vector<torch::Tensor> cases;
  for (double f : {0.0, 0.3, 0.9, 0.97, 0.995, 1.0})
    for (auto shape : std::vector<std::vector<int64_t>>{{1000}, {37, 3, 3, 3}, {7}, {513}})
      cases.push_back(with_zeros(torch::randn(shape), f, cases.size()));
  auto negz = with_zeros(torch::randn({600}), 0.9, 1);
  negz = negz * torch::where(torch::rand({600}) < 0.5, torch::ones({600}), -torch::ones({600}));
  cases.push_back(negz);  // zeros of both signs: -0.0 must come back as -0.0
  cases.push_back(torch::full({300}, -0.0));
  cases.push_back(with_zeros(torch::randn({1000}, torch::kDouble), 0.95, 2));
  cases.push_back(with_zeros(torch::randn({1000}), 0.9, 3).to(torch::kHalf));
  cases.push_back(with_zeros(torch::randn({1000}), 0.9, 4).to(torch::kBFloat16));
  cases.push_back(torch::zeros({1000}, torch::kLong));  // integers stay dense
  cases.push_back(torch::zeros({0, 5}));
  cases.push_back(torch::tensor(0.0f));
  cases.push_back(torch::tensor(-0.0f));
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& t = cases[i];
    auto back = round_trip(t);
    ASSERT_TRUE(back.defined()) << i;
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << i;
    EXPECT_EQ(back.sizes(), t.sizes()) << i;
    EXPECT_EQ(raw_bytes(back), raw_bytes(t)) << "case " << i;
  }
  EXPECT_FALSE(round_trip(torch::Tensor()).defined());
  // The smallest encoding wins: dense when few zeros, bitmask in the middle, blocked indices
  // when very sparse; the sign bitmap only when a -0.0 is present.
  auto dense = torch::randn({4096});
  EXPECT_EQ(encoding_of(dense), 0);
  EXPECT_EQ(encoding_of(with_zeros(dense, 0.5, 5)), 1);
  EXPECT_EQ(encoding_of(with_zeros(dense, 0.99, 6)), 2);
  EXPECT_EQ(encoding_of(with_zeros(dense, 0.5, 5).neg()), 1 | kZeroSignsFlag);
  EXPECT_EQ(encoding_of(with_zeros(dense, 0.5, 5).neg().abs()), 1);
  EXPECT_EQ(encoding_of(torch::zeros({4096}, torch::kInt)), 0);
}

TEST(Serialize, SparseModelFileShrinks) {
  testing::TempDir dir;
  torch::manual_seed(0);
  Graph g = build_model("resnet20", {1, 28, 28}, 10);
  // Prune 90% of every conv/linear weight by magnitude, as gRDA-like sparsity.
  {
    torch::NoGradGuard ng;
    for (auto& n : g.nodes) {
      auto it = n.params.find("weight");
      if (it == n.params.end() || it->second.dim() < 2) continue;
      auto w = it->second;
      auto k = static_cast<int64_t>(0.9 * w.numel());
      auto thr = std::get<0>(w.abs().flatten().kthvalue(k));
      w.masked_fill_(w.abs() <= thr, 0);
    }
  }
  save_graph(g, dir.file("sparse.nnslim"));
  save_graph(g, dir.file("dense_v1.nnslim"), 1);
  auto sparse_size = std::filesystem::file_size(dir.file("sparse.nnslim"));
  auto dense_size = std::filesystem::file_size(dir.file("dense_v1.nnslim"));
  EXPECT_LT(sparse_size, 0.2 * dense_size) << sparse_size << " vs " << dense_size;
  for (const char* f : {"sparse.nnslim", "dense_v1.nnslim"}) {
    Graph h = load_graph(dir.file(f));
    for (size_t i = 0; i < g.nodes.size(); ++i)
      for (const auto& [k, t] : g.nodes[i].params)
        ASSERT_EQ(raw_bytes(t.detach()), raw_bytes(h.nodes[i].params.at(k).detach()))
            << f << " " << g.nodes[i].name << "." << k;
  }
}

// The squeeze-excitation ops and the newer attributes (ceil_mode, HardSigmoid's alpha/beta)
// round-trip; a graph without such attributes keeps exactly the version-2 layout, so files of
// earlier builds read as before and earlier builds read such files.
TEST(Serialize, NewOpsAndAttributesRoundTrip) {
  testing::TempDir dir;
  Graph g = testing::fixture_se_ops(2);
  forward(g, torch::randn({4, 3, 16, 16}), Mode::kTrain);  // non-trivial BN buffers
  g.find("b1.se.gate")->attrs.alpha = 0.2;                 // ONNX's default slope
  g.find("b1.se.gate")->attrs.beta = 0.25;
  save_graph(g, dir.file("se.nnslim"));
  Graph h = load_graph(dir.file("se.nnslim"));
  ASSERT_EQ(g.nodes.size(), h.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    EXPECT_EQ(g.nodes[i].op, h.nodes[i].op) << g.nodes[i].name;
    EXPECT_EQ(g.nodes[i].inputs, h.nodes[i].inputs) << g.nodes[i].name;
    EXPECT_EQ(g.nodes[i].attrs.ceil_mode, h.nodes[i].attrs.ceil_mode) << g.nodes[i].name;
    EXPECT_EQ(g.nodes[i].attrs.alpha, h.nodes[i].attrs.alpha) << g.nodes[i].name;
    EXPECT_EQ(g.nodes[i].attrs.beta, h.nodes[i].attrs.beta) << g.nodes[i].name;
  }
  EXPECT_TRUE(h.find("pool")->attrs.ceil_mode);
  EXPECT_EQ(h.find("b1.se.gate")->attrs.alpha, 0.2);
  auto x = torch::randn({2, 3, 16, 16});
  EXPECT_TRUE(forward(g, x, Mode::kEval).equal(forward(h, x, Mode::kEval)));
  save_graph(h, dir.file("se2.nnslim"));
  EXPECT_EQ(slurp(dir.file("se.nnslim")), slurp(dir.file("se2.nnslim")));
  // The attributes are a section after the version-2 nodes, absent when all are defaults.
  Graph plain = g;
  for (auto& n : plain.nodes) n.attrs.ceil_mode = false;
  plain.find("b1.se.gate")->attrs = Attrs();
  const std::string with = graph_to_bytes(g), without = graph_to_bytes(plain);
  EXPECT_GT(with.size(), without.size());
  EXPECT_EQ(with.substr(0, without.size()), without);
  EXPECT_FALSE(graph_from_bytes(without, "plain").find("pool")->attrs.ceil_mode);
  // An attribute this build does not know is refused, naming it.
  std::string future = with;
  auto at = future.find("ceil_mode");
  ASSERT_NE(at, std::string::npos);
  future[at + 8] = 'X';
  EXPECT_NE(error_of([&] { graph_from_bytes(future, "future.nnslim"); }).find("ceil_modX"),
            std::string::npos);
  // Checkpoints embed the graph's bytes: the section travels with them.
  Checkpoint ck;
  ck.graph = g;
  ck.epochs_done = 2;
  save_checkpoint(ck, dir.file("ck"));
  Checkpoint back = load_checkpoint(dir.file("ck"));
  EXPECT_TRUE(back.graph.find("pool")->attrs.ceil_mode);
  EXPECT_EQ(back.graph.find("b1.se.gate")->attrs.beta, 0.25);
  EXPECT_TRUE(forward(back.graph, x, Mode::kEval).equal(forward(g, x, Mode::kEval)));
}

// A channel shuffle's permutation and a channel slice's range are attributes of the optional
// section; LayerNorm2d's eps is the node's eps.
TEST(Serialize, ChannelOpsRoundTrip) {
  testing::TempDir dir;
  Graph g = testing::fixture_channel_ops(2);
  g.find("cn.norm")->attrs.eps = 1e-6;
  save_graph(g, dir.file("c.nnslim"));
  Graph h = load_graph(dir.file("c.nnslim"));
  ASSERT_EQ(g.nodes.size(), h.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    EXPECT_EQ(g.nodes[i].op, h.nodes[i].op) << g.nodes[i].name;
    EXPECT_EQ(g.nodes[i].attrs.perm, h.nodes[i].attrs.perm) << g.nodes[i].name;
    EXPECT_EQ(g.nodes[i].attrs.start, h.nodes[i].attrs.start) << g.nodes[i].name;
    EXPECT_EQ(g.nodes[i].attrs.end, h.nodes[i].attrs.end) << g.nodes[i].name;
    EXPECT_EQ(g.nodes[i].attrs.eps, h.nodes[i].attrs.eps) << g.nodes[i].name;
  }
  EXPECT_EQ(h.find("s2.x2")->attrs.start, 8);
  EXPECT_EQ(h.find("s2.x2")->attrs.end, 16);
  auto x = torch::randn({2, 3, 16, 16});
  EXPECT_TRUE(forward(g, x, Mode::kEval).equal(forward(h, x, Mode::kEval)));
  save_graph(h, dir.file("c2.nnslim"));
  EXPECT_EQ(slurp(dir.file("c.nnslim")), slurp(dir.file("c2.nnslim")));
  // A permutation entry that is not an index is refused.
  std::string bytes = graph_to_bytes(g);
  auto at = bytes.rfind("perm");
  ASSERT_NE(at, std::string::npos);
  const double bad = 0.5;
  std::memcpy(&bytes[at + 4], &bad, sizeof bad);
  EXPECT_NE(error_of([&] {
              graph_from_bytes(bytes, "bad.nnslim");
            }).find("attribute 'perm' must be a non-negative integer"),
            std::string::npos);
}

TEST(Serialize, ReadsVersion1Files) {
  testing::TempDir dir;
  Graph g = testing::fixture_all_ops(4);
  save_graph(g, dir.file("v1.nnslim"), 1);
  std::string bytes = slurp(dir.file("v1.nnslim"));
  EXPECT_EQ(bytes[8], 1);  // the version field
  Graph h = load_graph(dir.file("v1.nnslim"));
  auto x = torch::randn({2, 2, 8, 8});
  EXPECT_TRUE(forward(g, x, Mode::kEval).equal(forward(h, x, Mode::kEval)));
  // Re-saved, it is a version-2 file with the same content.
  save_graph(h, dir.file("v2.nnslim"));
  EXPECT_EQ(slurp(dir.file("v2.nnslim"))[8], static_cast<char>(kFormatVersion));
  Graph v2 = load_graph(dir.file("v2.nnslim"));
  EXPECT_TRUE(forward(v2, x, Mode::kEval).equal(forward(g, x, Mode::kEval)));
  // A version-1 checkpoint (its graph in format 1) still loads.
  Writer w(1);
  w.str(graph_to_bytes(g, 1));
  w.i64(3);
  w.str("");
  w.u64(0);
  w.u64(0);
  w.u64(0);
  const char magic[8] = {'N', 'N', 'S', 'L', 'I', 'M', 'C', '\0'};
  write_framed_file(dir.file("c"), magic, 1, w.bytes());
  Checkpoint ck = load_checkpoint(dir.file("c"));
  EXPECT_EQ(ck.epochs_done, 3);
  EXPECT_EQ(ck.in_epoch.batches_done, 0);  // versions before 3: always at an epoch end
  EXPECT_TRUE(forward(ck.graph, x, Mode::kEval).equal(forward(g, x, Mode::kEval)));
}

TEST(Serialize, CorruptSparseDataIsAnError) {
  auto t = with_zeros(torch::randn({2000}), 0.99, 7);  // blocked encoding
  auto b = with_zeros(torch::randn({2000}), 0.6, 8);   // bitmask encoding
  for (const auto& src : {t, b}) {
    Writer w;
    w.tensor(src);
    const size_t enc_at = 4 + 4 + 4 + 8;
    std::string good = w.bytes();
    // nnz larger than numel.
    std::string bad = good;
    uint64_t huge = 5000;
    std::memcpy(&bad[enc_at + 1], &huge, 8);
    EXPECT_THROW(Reader(bad, "test").tensor(), c10::Error);
    // An unknown encoding.
    bad = good;
    bad[enc_at] = 7;
    EXPECT_THROW(Reader(bad, "test").tensor(), c10::Error);
    // Truncated values.
    EXPECT_THROW(Reader(good.substr(0, good.size() - 3), "test").tensor(), c10::Error);
    // Flipped index bits: either rejected or decoded without writing out of bounds.
    for (size_t k = enc_at + 9; k < std::min(good.size(), enc_at + 200); k += 7) {
      bad = good;
      bad[k] ^= 0x5a;
      try {
        auto r = Reader(bad, "test").tensor();
        EXPECT_EQ(r.numel(), 2000);
      } catch (const c10::Error&) {
      }
    }
  }
}

// ---- sizes read from a file are checked before anything is allocated (issue 31) -------------

// A tensor header: defined, float, the dims, then (version 2) the encoding byte.
std::string tensor_header(const std::vector<int64_t>& dims, uint8_t encoding) {
  Writer w;
  w.u32(1);
  w.u32(static_cast<uint32_t>(torch::kFloat));
  w.u32(static_cast<uint32_t>(dims.size()));
  for (auto d : dims) w.i64(d);
  w.u8(encoding);
  return w.bytes();
}

TEST(Serialize, TensorDimsAreCheckedBeforeAllocating) {
  // Overflowing product: 2^39 * 2^39 wraps to 0 in 64 bits.
  std::string msg = error_of([&] {
    Reader(tensor_header({int64_t(1) << 39, int64_t(1) << 39}, 0), "t.nnslim").tensor();
  });
  EXPECT_NE(msg.find("t.nnslim: tensor of shape [549755813888, 549755813888]... has 2^40 or more"),
            std::string::npos)
      << msg;
  msg = error_of([&] { Reader(tensor_header({4, -1}, 0), "t.nnslim").tensor(); });
  EXPECT_NE(msg.find("t.nnslim: tensor dimension 1 is -1"), std::string::npos) << msg;
  // A dense 4 GiB tensor with no data, and a bitmask-encoded 2 TiB one (zero-filled before the
  // data was looked at): refused for the bytes they lack, nothing allocated.
  for (uint8_t enc : {0, 1, 2}) {
    msg = error_of([&] {
      Reader(tensor_header({int64_t(1) << 20, int64_t(1) << 19}, enc), "t.nnslim").tensor();
    });
    EXPECT_NE(msg.find("t.nnslim: tensor of shape [1048576, 524288] needs at least"),
              std::string::npos)
        << msg;
  }
  // A sparse tensor claiming more stored entries than the data left holds.
  std::string bytes = tensor_header({1000}, 1);
  Writer w;
  w.u64(900);
  bytes += w.bytes() + std::string(125 + 100, '\xff');
  msg = error_of([&] { Reader(bytes, "t.nnslim").tensor(); });
  EXPECT_NE(msg.find("claims 900 stored entries"), std::string::npos) << msg;
}

// A ~70-byte model file whose one weight asks for 2 TiB (and whose checksum is right).
TEST(Serialize, SmallModelFileCannotAskForHugeTensors) {
  testing::TempDir dir;
  Writer w;
  w.u64(0);  // metadata
  w.u64(3);  // input shape
  for (int64_t d : {1, 8, 8}) w.i64(d);
  w.i64(2);  // next id
  w.i64(1);  // output
  w.u64(1);  // nodes
  w.i64(1);
  w.str("conv2d");
  w.str("c");
  w.u64(1);
  w.i64(0);
  for (int k = 0; k < 4; ++k) w.u64(0);  // kernel, stride, padding, dilation: empty lists
  w.i64(1);
  w.f64(1e-5);
  w.f64(0.1);
  w.f64(0);
  w.u64(1);
  w.str("weight");
  std::string payload = w.bytes() + tensor_header({int64_t(1) << 20, int64_t(1) << 19, 1, 1}, 1);
  const std::string path = dir.file("bomb.nnslim");
  write_framed_file(path, "NNSLIMG", 2, payload);
  std::string msg = error_of([&] { load_graph(path); });
  EXPECT_NE(msg.find(path + ": tensor of shape [1048576, 524288, 1, 1] needs at least"),
            std::string::npos)
      << msg;
}

}  // namespace
}  // namespace nnslim
