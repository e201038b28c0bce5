// Tiny deterministic graphs and helpers shared by the tests.
#pragma once

#include "nnslim/data/dataset.h"
#include "nnslim/graph/builder.h"
#include "nnslim/train/trainer.h"

#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace nnslim::testing {

// conv-bn-relu-pool-conv-bn-relu-gap-flatten-linear, input 1x8x8, 3 classes.
Graph tiny_convnet(uint64_t seed = 0);
// A residual block (Add), a Concat of two branches, a depthwise conv and Flatten->Linear.
Graph fixture_all_ops(uint64_t seed = 0);
// MobileNetV3 / EfficientNet ops: HardSwish and SiLU, squeeze-excitation blocks gated by
// HardSigmoid and by Sigmoid (Mul, the gate second and first), ceil-mode max and average pools,
// a residual Add, Linear -> HardSwish -> Linear. Input 3x16x16, 5 classes.
Graph fixture_se_ops(uint64_t seed = 0);
// ConvNeXt and ShuffleNet v2 ops: a ConvNeXt block (depthwise 7x7, layernorm2d, 1x1 -> GELU ->
// 1x1, residual Add) on the stem, then ShuffleNet's stride-2 block (two branches, concat,
// channel_shuffle) and stride-1 block (slice_channels halves, one through the branch), a
// depthwise conv (it holds only some channels of block 1's groups), a 1x1 conv, pooling and a
// Linear. Input 3x16x16, 5 classes.
Graph fixture_channel_ops(uint64_t seed = 0);
// Unique empty temp directory, removed by the destructor.
struct TempDir {
  TempDir();
  ~TempDir();
  std::string path;
  std::string file(const std::string& name) const { return path + "/" + name; }
};
// Max |a - b| as a double.
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b);
// A small learnable dataset of the given image shape.
DataSplits tiny_data(std::vector<int64_t> shape = {1, 8, 8}, int64_t classes = 3,
                     int64_t train = 96, int64_t test = 48);
// Bitwise equality of every parameter and buffer of two graphs of the same structure.
bool same_weights(const Graph& a, const Graph& b);
// A short, seeded training recipe for tiny models (batch 16, lr 0.05, seed 3).
TrainOptions small_options(int64_t epochs);
// Simulates a crash: throws when batch `batch` of the given epoch starts (0-based; the last
// checkpoint is on disk).
struct CrashAtEpoch : Method {
  explicit CrashAtEpoch(int64_t e, int64_t b = 0) : epoch(e), batch(b) {}
  int64_t epoch, batch;
  std::string name() const override { return "crash"; }
  void before_step(Context& c) override {
    if (c.epoch == epoch && c.batch == batch) throw std::runtime_error("simulated crash");
  }
};
// Trains fixture_all_ops(1) on tiny_data({2, 8, 8}, 5) for 3 epochs with fresh hooks from
// `hooks()`: once uninterrupted; once crashed at epoch 2 and resumed from the checkpoint into a
// differently initialised graph; once resumed like that but with the optimizer state dropped;
// once with a checkpoint after every batch, crashed inside the second epoch (before its fourth
// batch) and resumed from there.
struct ResumeOutcome {
  Graph full;
  bool resumed_equals_full = false;
  bool without_optimizer_state_equals_full = false;
  bool resumed_inside_epoch_equals_full = false;
};
ResumeOutcome crash_and_resume(const std::function<std::vector<std::shared_ptr<Method>>()>& hooks,
                               TrainOptions options);
// Runs the nnslim binary with arguments; returns the exit code, captures stdout+stderr.
int run_cli(const std::string& args, std::string* output = nullptr);
// A shell command line; its exit code, stdout and stderr together in `output`.
int run_command(const std::string& command, std::string* output = nullptr);

}  // namespace nnslim::testing
