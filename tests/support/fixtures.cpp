#include "support/fixtures.h"

#include "nnslim/train/checkpoint.h"

#include <unistd.h>
#include <array>
#include <atomic>
#include <cstdio>

namespace nnslim::testing {

Graph tiny_convnet(uint64_t seed) {
  torch::manual_seed(seed);
  GraphBuilder b({1, 8, 8});
  int x = b.relu(b.bn(b.conv(b.input(), 4, 3, 1, 1, "conv1"), "bn1"), "relu1");
  x = b.maxpool(x, 2, 2, 0, "pool");
  x = b.relu(b.bn(b.conv(x, 6, 3, 1, 1, "conv2", true), "bn2"), "relu2");
  x = b.flatten(b.global_avgpool(x, "gap"), "flatten");
  Graph g = b.build(b.linear(x, 3, "fc"), {{"classes", "3"}, {"model", "tiny"}});
  return g;
}

Graph fixture_all_ops(uint64_t seed) {
  torch::manual_seed(seed);
  GraphBuilder b({2, 8, 8});
  int x = b.relu6(b.bn(b.conv(b.input(), 8, 3, 1, 1, "stem"), "stem_bn"), "stem_relu");
  // Residual block.
  int y = b.relu(b.bn(b.conv(x, 8, 3, 1, 1, "res.conv1"), "res.bn1"), "res.relu");
  y = b.bn(b.conv(y, 8, 3, 1, 1, "res.conv2"), "res.bn2");
  x = b.relu(b.add({y, x}, "res.add"), "res.out");
  // Two branches concatenated.
  int a = b.relu(b.bn(b.conv(x, 4, 1, 1, 0, "br_a"), "br_a_bn"), "br_a_relu");
  int c = b.avgpool(b.conv(x, 6, 3, 1, 1, "br_b", true), 3, 1, 1, "br_b_pool");
  x = b.concat({a, c}, "cat");
  // Depthwise + pointwise.
  x = b.relu(b.bn(b.conv(x, 10, 3, 2, 1, "dw", false, 10), "dw_bn"), "dw_relu");
  x = b.identity(b.dropout(x, 0.25, "drop"), "id");
  x = b.maxpool(x, 2, 2, 0, "pool");
  x = b.flatten(x, "flatten");
  return b.build(b.linear(x, 5, "fc"), {{"classes", "5"}, {"model", "fixture"}});
}

Graph fixture_se_ops(uint64_t seed) {
  torch::manual_seed(seed);
  GraphBuilder b({3, 16, 16});
  int x = b.hardswish(b.bn(b.conv(b.input(), 8, 3, 2, 1, "stem"), "stem_bn"), "stem_act");
  // MobileNetV3's inverted residual: expand, depthwise, SE gated by HardSigmoid, project.
  int e = b.hardswish(b.bn(b.conv(x, 16, 1, 1, 0, "b1.expand"), "b1.expand_bn"), "b1.expand_act");
  e = b.hardswish(b.bn(b.conv(e, 16, 3, 1, 1, "b1.dw", false, 16), "b1.dw_bn"), "b1.dw_act");
  int s = b.global_avgpool(e, "b1.se.pool");
  s = b.relu(b.conv(s, 4, 1, 1, 0, "b1.se.fc1", true), "b1.se.relu");
  s = b.hardsigmoid(b.conv(s, 16, 1, 1, 0, "b1.se.fc2", true), "b1.se.gate");
  e = b.mul(e, s, "b1.se.scale");
  e = b.bn(b.conv(e, 8, 1, 1, 0, "b1.project"), "b1.project_bn");
  x = b.add({x, e}, "b1.add");
  x = b.maxpool(x, 3, 2, 0, "pool", /*ceil_mode=*/true);  // 8x8 -> 4x4 (3x3 in floor mode)
  // EfficientNet's SiLU with a Sigmoid gate, the gate as the Mul's first input.
  int f = b.silu(b.bn(b.conv(x, 12, 1, 1, 0, "b2.expand"), "b2.expand_bn"), "b2.expand_act");
  int t = b.global_avgpool(f, "b2.se.pool");
  t = b.silu(b.conv(t, 3, 1, 1, 0, "b2.se.fc1", true), "b2.se.act");
  t = b.sigmoid(b.conv(t, 12, 1, 1, 0, "b2.se.fc2", true), "b2.se.gate");
  f = b.mul(t, f, "b2.se.scale");
  x = b.avgpool(f, 3, 2, 1, "avg", /*ceil_mode=*/true);  // 4x4 -> 3x3 (2x2 in floor mode)
  x = b.flatten(b.global_avgpool(x, "gap"), "flatten");
  x = b.hardswish(b.linear(x, 10, "fc1"), "fc1_act");
  return b.build(b.linear(x, 5, "fc"), {{"classes", "5"}, {"model", "fixture_se"}});
}

Graph fixture_channel_ops(uint64_t seed) {
  torch::manual_seed(seed);
  GraphBuilder b({3, 16, 16});
  int x = b.relu(b.bn(b.conv(b.input(), 8, 3, 2, 1, "stem"), "stem_bn"), "stem_act");
  // ConvNeXt's CNBlock (its Linear layers on NHWC are 1x1 convs on NCHW).
  int c = b.layernorm2d(b.conv(x, 8, 7, 1, 3, "cn.dw", true, 8), "cn.norm");
  c = b.gelu(b.conv(c, 32, 1, 1, 0, "cn.pw1", true), "cn.gelu");
  x = b.add({x, b.conv(c, 8, 1, 1, 0, "cn.pw2", true)}, "cn.add");
  // ShuffleNet v2, stride 2: both branches read the whole input.
  int l = b.bn(b.conv(x, 8, 3, 2, 1, "s1.b1.dw", false, 8), "s1.b1.dw_bn");
  l = b.relu(b.bn(b.conv(l, 8, 1, 1, 0, "s1.b1.pw"), "s1.b1.pw_bn"), "s1.b1.act");
  int r = b.relu(b.bn(b.conv(x, 8, 1, 1, 0, "s1.b2.pw1"), "s1.b2.pw1_bn"), "s1.b2.act1");
  r = b.bn(b.conv(r, 8, 3, 2, 1, "s1.b2.dw", false, 8), "s1.b2.dw_bn");
  r = b.relu(b.bn(b.conv(r, 8, 1, 1, 0, "s1.b2.pw2"), "s1.b2.pw2_bn"), "s1.b2.act2");
  x = b.channel_shuffle(b.concat({l, r}, "s1.cat"), 2, "s1.shuffle");
  // Stride 1: x.chunk(2, dim=1), the second half through the branch.
  int x1 = b.slice_channels(x, 0, 8, "s2.x1");
  r = b.relu(
      b.bn(b.conv(b.slice_channels(x, 8, 16, "s2.x2"), 8, 1, 1, 0, "s2.b2.pw1"), "s2.b2.pw1_bn"),
      "s2.b2.act1");
  r = b.bn(b.conv(r, 8, 3, 1, 1, "s2.b2.dw", false, 8), "s2.b2.dw_bn");
  r = b.relu(b.bn(b.conv(r, 8, 1, 1, 0, "s2.b2.pw2"), "s2.b2.pw2_bn"), "s2.b2.act2");
  x = b.channel_shuffle(b.concat({x1, r}, "s2.cat"), 2, "s2.shuffle");
  // A depthwise conv on it holds half of block 1's channels (the other half ended in s2.b2).
  x = b.bn(b.conv(x, 16, 3, 1, 1, "s3.dw", false, 16), "s3.dw_bn");
  x = b.relu(b.bn(b.conv(x, 12, 1, 1, 0, "conv5"), "conv5_bn"), "conv5_act");
  x = b.flatten(b.global_avgpool(x, "gap"), "flatten");
  return b.build(b.linear(x, 5, "fc"), {{"classes", "5"}, {"model", "fixture_channel"}});
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path = (std::filesystem::temp_directory_path() /
          ("nnslim_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++)))
             .string();
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

DataSplits tiny_data(std::vector<int64_t> shape, int64_t classes, int64_t train, int64_t test) {
  return make_synthetic(train, test, shape, classes, 7);
}

bool same_weights(const Graph& a, const Graph& b) {
  if (a.nodes.size() != b.nodes.size()) return false;
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    for (const auto& [k, t] : a.nodes[i].params)
      if (!t.equal(b.nodes[i].params.at(k))) return false;
    for (const auto& [k, t] : a.nodes[i].buffers)
      if (!t.equal(b.nodes[i].buffers.at(k))) return false;
  }
  return true;
}

TrainOptions small_options(int64_t epochs) {
  TrainOptions o;
  o.epochs = epochs;
  o.batch_size = 16;
  o.schedule.base_lr = 0.05;
  o.seed = 3;
  o.eval_batch_size = 32;
  return o;
}

ResumeOutcome crash_and_resume(const std::function<std::vector<std::shared_ptr<Method>>()>& hooks,
                               TrainOptions options) {
  auto d = tiny_data({2, 8, 8}, 5);
  options.epochs = 3;
  ResumeOutcome r;
  r.full = fixture_all_ops(1);
  Trainer(r.full, options, hooks()).fit(d.train, nullptr);

  TempDir dir;
  options.out_dir = dir.path;
  Graph interrupted = fixture_all_ops(1);
  auto crashing = hooks();
  crashing.push_back(std::make_shared<CrashAtEpoch>(2));
  try {
    Trainer(interrupted, options, crashing).fit(d.train, nullptr);
    throw std::logic_error("crash_and_resume: the simulated crash did not happen");
  } catch (const std::runtime_error&) {
  }
  Checkpoint ck = load_checkpoint(checkpoint_path(dir.path));
  if (ck.epochs_done != 2) throw std::logic_error("crash_and_resume: checkpoint not after epoch 2");
  Graph resumed = fixture_all_ops(99);  // different init: everything must come from the checkpoint
  Trainer(resumed, options, hooks()).fit(d.train, nullptr, &ck);
  r.resumed_equals_full = same_weights(r.full, resumed);
  ck.optimizer_state.clear();
  Graph fresh = fixture_all_ops(99);
  Trainer(fresh, options, hooks()).fit(d.train, nullptr, &ck);
  r.without_optimizer_state_equals_full = same_weights(r.full, fresh);

  TempDir inside;
  options.out_dir = inside.path;
  options.checkpoint_seconds = 1e-9;  // after every batch
  Graph cut = fixture_all_ops(1);
  crashing = hooks();
  crashing.push_back(std::make_shared<CrashAtEpoch>(1, 3));
  try {
    Trainer(cut, options, crashing).fit(d.train, nullptr);
    throw std::logic_error("crash_and_resume: the simulated crash inside an epoch did not happen");
  } catch (const std::runtime_error&) {
  }
  Checkpoint mid = load_checkpoint(checkpoint_path(inside.path));
  if (mid.epochs_done != 1 || mid.in_epoch.batches_done != 3)
    throw std::logic_error("crash_and_resume: checkpoint not after batch 3 of epoch 2");
  Graph continued = fixture_all_ops(99);
  Trainer(continued, options, hooks()).fit(d.train, nullptr, &mid);
  r.resumed_inside_epoch_equals_full = same_weights(r.full, continued);
  return r;
}

int run_cli(const std::string& args, std::string* output) {
  return run_command(std::string(NNSLIM_BINARY) + " " + args, output);
}

int run_command(const std::string& command, std::string* output) {
  std::string cmd = "( " + command + " ) 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf;
  std::string out;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = ::pclose(p);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace nnslim::testing
