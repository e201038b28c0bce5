// Data-parallel training on c10d (issue 30): the launcher's environment, and W processes that
// compute what one process computes.
#include "nnslim/core/error.h"
#include "nnslim/dist/process_group.h"
#include "nnslim/graph/serialize.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace nnslim {
namespace {

using dist::launch_env;
using dist::LaunchEnv;

dist::Getenv vars(std::map<std::string, std::string> m) {
  return [m](const std::string& k) -> std::optional<std::string> {
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

TEST(LaunchEnv, NoLauncherIsOneProcess) {
  LaunchEnv e = launch_env(vars({{"PATH", "/usr/bin"}}));
  EXPECT_FALSE(e.distributed());
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.rank, 0);
}

TEST(LaunchEnv, ReadsTorchrunsVariables) {
  LaunchEnv e = launch_env(vars({{"RANK", "3"},
                                 {"WORLD_SIZE", "4"},
                                 {"LOCAL_RANK", "1"},
                                 {"LOCAL_WORLD_SIZE", "2"},
                                 {"MASTER_ADDR", "node7"},
                                 {"MASTER_PORT", "29400"},
                                 {"TORCHELASTIC_RUN_ID", "none"},
                                 {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                 {"TORCHELASTIC_RESTART_COUNT", "2"}}));
  EXPECT_TRUE(e.distributed());
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_addr, "node7");
  EXPECT_EQ(e.master_port, 29400);
  EXPECT_TRUE(e.agent_store);
  EXPECT_EQ(e.restart_count, 2);
  EXPECT_EQ(e.source, "torchrun");
  // Kubeflow's PyTorchJob sets no LOCAL_RANK and no agent store: rank 0 serves the store.
  LaunchEnv k = launch_env(vars({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "m"}}));
  EXPECT_EQ(k.local_rank, 0);
  EXPECT_FALSE(k.agent_store);
  EXPECT_EQ(k.master_port, 29500);
}

TEST(LaunchEnv, ReadsSlurmsVariables) {
  LaunchEnv e = launch_env(vars({{"SLURM_PROCID", "5"},
                                 {"SLURM_NTASKS", "8"},
                                 {"SLURM_LOCALID", "1"},
                                 {"MASTER_ADDR", "gnode10"},
                                 {"MASTER_PORT", "12345"}}));
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.source, "slurm");
  try {
    launch_env(vars({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}));
    FAIL() << "srun without MASTER_ADDR must be refused";
  } catch (const RequestError& err) {
    EXPECT_NE(std::string(err.what()).find("MASTER_ADDR"), std::string::npos) << err.what();
  }
}

TEST(LaunchEnv, ContradictionsAreErrorsNamingTheVariable) {
  auto message = [](std::map<std::string, std::string> m) {
    try {
      launch_env(vars(std::move(m)));
    } catch (const RequestError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(message({{"RANK", "0"}}).find("WORLD_SIZE is missing"), std::string::npos);
  EXPECT_NE(message({{"RANK", "2"}, {"WORLD_SIZE", "2"}}).find("not below WORLD_SIZE=2"),
            std::string::npos);
  EXPECT_NE(message({{"RANK", "x"}, {"WORLD_SIZE", "2"}}).find("RANK='x'"), std::string::npos);
  EXPECT_NE(message({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}})
                .find("not a TCP port"),
            std::string::npos);
}

// ---- several processes --------------------------------------------------------------------

#define REQUIRE_C10D() \
  if (!dist::c10d_available()) GTEST_SKIP() << "built without c10d (libgloo-dev)"

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// `nnslim ARGS --out DIR` as W processes with the variables a launcher sets; rc of the last.
int run_ranks(int world, const std::string& args, const std::string& dir, std::string* out) {
  const int port = free_port();
  std::ostringstream cmd;
  for (int r = 0; r < world; ++r)
    cmd << "RANK=" << r << " WORLD_SIZE=" << world << " LOCAL_RANK=" << r
        << " LOCAL_WORLD_SIZE=" << world << " MASTER_ADDR=127.0.0.1 MASTER_PORT=" << port << " "
        << NNSLIM_BINARY << " " << args << " --out " << dir << (r + 1 < world ? " & " : "; ");
  cmd << "rc=$?; wait; exit $rc";
  return testing::run_command(cmd.str(), out);
}

double max_weight_diff(const std::string& a, const std::string& b) {
  Graph ga = load_graph(a), gb = load_graph(b);
  auto pa = ga.parameters(), pb = gb.parameters();
  EXPECT_EQ(pa.size(), pb.size());
  double d = 0;
  for (size_t i = 0; i < pa.size() && i < pb.size(); ++i)
    d = std::max(d, testing::max_abs_diff(pa[i], pb[i]));
  return d;
}

// lenet5 has no BatchNorm, so W processes x B/W images make exactly the one-process update (up
// to float summation order). Batch 63 splits 32 + 31 and leaves a last batch of 16: the ranks'
// shares are weighted by their sizes; augmentation (crop + flip) is drawn per global position.
TEST(DataParallel, TwoProcessesComputeWhatOneComputes) {
  REQUIRE_C10D();
  testing::TempDir tmp;
  const std::string args =
      "train --model lenet5 --dataset synthetic --epochs 2 --batch-size 63 --lr 0.05 "
      "--threads 1 --no-latency --quiet";
  std::string out;
  ASSERT_EQ(testing::run_cli(args + " --out " + tmp.file("one"), &out), 0) << out;
  out.clear();
  ASSERT_EQ(run_ranks(2, args, tmp.file("two"), &out), 0) << out;
  const double d = max_weight_diff(tmp.file("one/model.nnslim"), tmp.file("two/model.nnslim"));
  EXPECT_LE(d, 1e-5) << "2 processes vs 1";
  // The comparison can tell runs apart: another seed is far from it.
  ASSERT_EQ(testing::run_cli(args + " --seed 1 --out " + tmp.file("seed1"), &out), 0) << out;
  EXPECT_GT(max_weight_diff(tmp.file("one/model.nnslim"), tmp.file("seed1/model.nnslim")), 1e-3);
  const std::string summary = [&] {
    std::ifstream f(tmp.file("two/summary.json"));
    return std::string((std::istreambuf_iterator<char>(f)), {});
  }();
  EXPECT_NE(summary.find("\"world_size\": 2"), std::string::npos) << summary;
  EXPECT_NE(summary.find("\"dist_backend\": \"gloo\""), std::string::npos) << summary;
}

// With BatchNorm the ranks normalise by their own batches (as DDP does; not the one-process
// update), but they keep rank 0's running statistics and identical weights: the trainer checks
// that every epoch (a weights fingerprint over the ranks) and would stop if they drifted apart.
TEST(DataParallel, BatchNormModelsStayInStepAcrossRanks) {
  REQUIRE_C10D();
  testing::TempDir tmp;
  std::string out;
  ASSERT_EQ(
      run_ranks(2,
                "train --model resnet20 --dataset synthetic --limit-train 128 --limit-test 64 "
                "--epochs 2 --batch-size 32 --threads 1 --no-latency",
                tmp.file("bn"), &out),
      0)
      << out;
  EXPECT_NE(out.find("data-parallel: 2 processes (gloo"), std::string::npos) << out;
  EXPECT_EQ(out.find("diverged"), std::string::npos) << out;
  std::ifstream metrics(tmp.file("bn/metrics.jsonl"));
  std::string line, all;
  while (std::getline(metrics, line)) all += line + "\n";
  EXPECT_NE(all.find("\"world_size\": 2"), std::string::npos) << all;
}

// Every method under 2 processes makes the same compressed model as in one: its training phase
// is data-parallel, its surgery runs on identical weights on each rank, its fine-tuning is
// data-parallel again. At a moderate learning rate: at lr 0.1 plain SGD on this task amplifies
// the float summation-order differences between 1 and 2 processes (~1e-7 per step) to ~5e-3 in
// two epochs (measured with magnitude --ratio 0, i.e. no pruning at all: 4.7e-3).
TEST(DataParallel, EveryMethodCompressesAsInOneProcess) {
  REQUIRE_C10D();
  testing::TempDir tmp;
  std::string out;
  ASSERT_EQ(testing::run_cli("train --model lenet5 --dataset synthetic --epochs 2 --batch-size 64 "
                             "--threads 1 --no-latency --quiet --out " +
                                 tmp.file("base"),
                             &out),
            0)
      << out;
  for (std::string method : {"magnitude --target-macs 0.5", "grda", "hspg", "trp", "unify"}) {
    const std::string args = "compress --model " + tmp.file("base/model.nnslim") + " --method " +
                             method +
                             " --dataset synthetic --epochs 1 --finetune-epochs 1 --lr 0.01 "
                             "--batch-size 63 --threads 1 --no-latency --quiet";
    std::string name = method;
    for (char& ch : name)
      if (ch == ' ' || ch == '-' || ch == '.') ch = '_';
    out.clear();
    ASSERT_EQ(testing::run_cli(args + " --out " + tmp.file("one_" + name), &out), 0) << out;
    ASSERT_EQ(run_ranks(2, args, tmp.file("two_" + name), &out), 0) << out;
    Graph a = load_graph(tmp.file("one_" + name + "/model.nnslim"));
    Graph b = load_graph(tmp.file("two_" + name + "/model.nnslim"));
    auto pa = a.named_parameters(), pb = b.named_parameters();
    ASSERT_EQ(pa.size(), pb.size()) << name;
    double d = 0;
    for (size_t i = 0; i < pa.size(); ++i) {
      ASSERT_EQ(pa[i].first, pb[i].first) << name;
      ASSERT_EQ(pa[i].second.sizes(), pb[i].second.sizes()) << name << " " << pa[i].first;
      d = std::max(d, testing::max_abs_diff(pa[i].second, pb[i].second));
    }
    EXPECT_LE(d, 1e-4) << name << ": 2 processes vs 1";
  }
}

// PyTorch's own launcher, as users run it (Debian's torchrun 1.13 needs --redirects/--tee on
// Python 3.11, docs/cli.md): its agent serves the store, every rank is a client.
TEST(DataParallel, TorchrunLaunchesTheBinaryAsIs) {
  REQUIRE_C10D();
  if (::access("/usr/bin/torchrun", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/torchrun";
  testing::TempDir tmp;
  const std::string args =
      "train --model lenet5 --dataset synthetic --epochs 1 --batch-size 64 --threads 1 "
      "--no-latency --quiet";
  std::string out;
  ASSERT_EQ(testing::run_cli(args + " --out " + tmp.file("one"), &out), 0) << out;
  out.clear();
  const std::string cmd = "cd " + tmp.path +
                          " && /usr/bin/torchrun --no_python --nproc_per_node 2 --redirects 1 "
                          "--tee 1 --master_port " +
                          std::to_string(free_port()) + " " + NNSLIM_BINARY + " " + args +
                          " --out " + tmp.file("two");
  ASSERT_EQ(testing::run_command(cmd, &out), 0) << out;
  EXPECT_LE(max_weight_diff(tmp.file("one/model.nnslim"), tmp.file("two/model.nnslim")), 1e-5)
      << out;
}

}  // namespace
}  // namespace nnslim
