// A small API to build graphs (used by the model zoo and by tests). It tracks the channel count
// and spatial size of every value so that layers can be declared by their output width alone,
// and initialises parameters like torchvision (Kaiming-normal fan_out for convs, BN γ=1 β=0,
// PyTorch's default uniform for Linear). Seed torch (torch::manual_seed) before building for
// reproducible weights.
#pragma once

#include "nnslim/graph/graph.h"

namespace nnslim {

class GraphBuilder {
 public:
  // input_shape = [C, H, W].
  explicit GraphBuilder(std::vector<int64_t> input_shape);

  int input() const { return kGraphInput; }
  int conv(int x, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding,
           const std::string& name, bool bias = false, int64_t groups = 1, int64_t dilation = 1);
  // Rectangular kernels/strides/paddings ({h, w}).
  int conv2(int x, int64_t out_channels, std::vector<int64_t> kernel, std::vector<int64_t> stride,
            std::vector<int64_t> padding, const std::string& name, bool bias = false,
            int64_t groups = 1);
  int bn(int x, const std::string& name);
  int relu(int x, const std::string& name);
  int relu6(int x, const std::string& name);
  int maxpool(int x, int64_t kernel, int64_t stride, int64_t padding, const std::string& name,
              bool ceil_mode = false);
  int avgpool(int x, int64_t kernel, int64_t stride, int64_t padding, const std::string& name,
              bool ceil_mode = false);
  int sigmoid(int x, const std::string& name);
  int hardsigmoid(int x, const std::string& name);  // torch's alpha = 1/6, beta = 0.5
  int hardswish(int x, const std::string& name);
  int silu(int x, const std::string& name);
  // a * b: equal shapes, or a [C,H,W] value and a [C,1,1] gate (either order).
  int mul(int a, int b, const std::string& name);
  // ShuffleNet's channel shuffle of `groups` groups (torchvision's channel_shuffle) and a slice
  // of channels [start, end) (x.chunk(2, dim=1) is two of them).
  int channel_shuffle(int x, int64_t groups, const std::string& name);
  int slice_channels(int x, int64_t start, int64_t end, const std::string& name);
  // LayerNorm over the channels of each pixel (torchvision's LayerNorm2d; weight 1, bias 0).
  int layernorm2d(int x, const std::string& name, double eps = 1e-6);
  int gelu(int x, const std::string& name);
  int global_avgpool(int x, const std::string& name);
  int flatten(int x, const std::string& name);
  int linear(int x, int64_t out_features, const std::string& name, bool bias = true);
  int add(std::vector<int> xs, const std::string& name);
  int concat(std::vector<int> xs, const std::string& name);
  int dropout(int x, double p, const std::string& name);
  int identity(int x, const std::string& name);

  // Shape [C, H, W] (or [F] after flatten) of a value built so far.
  const std::vector<int64_t>& shape(int value) const;
  int64_t channels(int value) const { return shape(value)[0]; }

  // Finishes the graph with `output` as its output value. Validates it (shape inference).
  Graph build(int output, std::map<std::string, std::string> meta = {});

 private:
  int push(Node node);
  Graph graph_;
  std::map<int, std::vector<int64_t>> shapes_;
};

// Re-draws every parameter of an existing graph with the builder's initialisation rules and
// resets BatchNorm running statistics (mean 0, var 1): "training from scratch" for any graph,
// pruned or not. Seed torch first for reproducible weights.
void reinitialize(Graph& graph);

}  // namespace nnslim
