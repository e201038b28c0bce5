// The *.nnslim file: bitwise round trip, and clear errors for truncated, corrupt, foreign and
// newer-version files.
#include "nnslim/graph/execute.h"
#include "nnslim/graph/serialize.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

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
    for (const auto& [k, t] : a.buffers) EXPECT_TRUE(t.equal(b.buffers.at(k))) << a.name << "." << k;
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

}  // namespace
}  // namespace nnslim
