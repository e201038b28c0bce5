// The graph IR: every network in nnslim -- zoo models, loaded files, compressed models -- is a
// Graph of Nodes. Surgery edits this data; execution, shape inference, cost counting and
// serialisation are plain loops over it (DESIGN.md §1).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace nnslim {

enum class Op {
  kConv2d,       // params: weight [out, in/groups, kh, kw], bias? [out]
  kBatchNorm2d,  // params: weight [C], bias [C]; buffers: running_mean [C], running_var [C]
  kReLU,
  kReLU6,
  kMaxPool2d,      // attrs: kernel, stride, padding, ceil_mode
  kAvgPool2d,      // attrs: kernel, stride, padding, ceil_mode (count_include_pad = true, as
                   // torch's default)
  kGlobalAvgPool,  // [N,C,H,W] -> [N,C,1,1]
  kFlatten,        // [N, ...] -> [N, prod(...)]
  kLinear,         // params: weight [out, in], bias? [out]
  kAdd,            // elementwise sum of >= 2 inputs of equal shape
  kConcat,         // along the channel dimension (dim 1)
  kDropout,        // attrs: p
  kIdentity,
  // Elementwise activations (any input shape). ONNX has no SiLU and, before opset 14, no
  // HardSwish: import fuses x * Sigmoid(x) and x * HardSigmoid(x) into them (io/onnx.h).
  kSigmoid,
  kHardSigmoid,  // attrs: alpha, beta: clamp(alpha * x + beta, 0, 1)
  kHardSwish,    // x * relu6(x + 3) / 6, as torch.nn.Hardswish
  kSiLU,         // x * sigmoid(x)
  // Product of two inputs of equal shape, or [C,H,W] and [C,1,1] in either order (the gate of
  // a squeeze-excitation block), broadcast to [C,H,W].
  kMul,
  // Channel ops of ShuffleNet v2 (imported from its Reshape-Transpose-Reshape shuffle and its
  // Split/Slice of the channels): output channel j of kChannelShuffle is input channel
  // attrs.perm[j] (a permutation; a pruned shuffle is still one, of the kept channels);
  // kSliceChannels is channels [attrs.start, attrs.end) of its input (an alias of it).
  kChannelShuffle,
  kSliceChannels,
  // ConvNeXt: kLayerNorm2d normalises each pixel over the channels (torchvision's LayerNorm2d,
  // LayerNorm on NHWC): params weight [C], bias [C]; attrs: eps. kGELU is the exact (erf) GELU.
  kLayerNorm2d,
  kGELU,
};

// Stable lower-case name ("conv2d", "batchnorm2d", ...) used in files, tables and errors.
const char* op_name(Op op);
// Inverse of op_name; throws c10::Error listing the known names.
Op op_from_name(const std::string& name);

// Attributes; each op reads only the fields it needs (documented on Op).
struct Attrs {
  std::vector<int64_t> kernel{1, 1};
  std::vector<int64_t> stride{1, 1};
  std::vector<int64_t> padding{0, 0};
  std::vector<int64_t> dilation{1, 1};
  int64_t groups = 1;
  double eps = 1e-5;          // BatchNorm, LayerNorm2d
  double momentum = 0.1;      // BatchNorm (torch convention)
  double p = 0.5;             // Dropout
  bool ceil_mode = false;     // MaxPool2d/AvgPool2d: output size rounded up, as torch's ceil_mode
  double alpha = 1.0 / 6;     // HardSigmoid (torch's fixed slope and offset by default)
  double beta = 0.5;          // HardSigmoid
  std::vector<int64_t> perm;  // ChannelShuffle: output channel j = input channel perm[j]
  int64_t start = 0;          // SliceChannels: channels [start, end)
  int64_t end = 0;
};

// Value ids: kGraphInput is the network input; every other value is the output of the node with
// that id. Ids are stable across surgery (new nodes get fresh ids).
constexpr int kGraphInput = 0;

// How a conv node is computed. Inference only: an inference plan (graph/inference_plan.h) or a
// caller chooses it through graph/lowering.h, the executor switches on it, and files never hold
// it (a loaded graph runs dense). kDense is torch::conv2d on the node's weight; the others keep
// their data in Node::kernel_data (graph/lowering.h) and run dense where they do not apply
// (autograd, an input they do not take, a weight changed since their data was made).
enum class ConvKernel : uint8_t {
  kDense,
  kFusedPair,  // a TRP factor pair in one pass (graph/kernels/fused_pair.h)
  kSparse,     // CSR weight (graph/kernels/sparse_conv.h)
  kUnified,    // sign-sum over unified blocks (graph/kernels/unified_conv.h)
};
struct ConvKernelData;  // graph/lowering.h

struct Node {
  int id = -1;
  Op op = Op::kIdentity;
  std::string name;         // e.g. "layer1.0.conv1"; unique in a graph
  std::vector<int> inputs;  // value ids
  Attrs attrs;
  std::map<std::string, torch::Tensor> params;   // trainable ("weight", "bias")
  std::map<std::string, torch::Tensor> buffers;  // not trainable ("running_mean", ...)
  // Inference only (see ConvKernel), never saved. The data is immutable, so copies of the node
  // share it; Graph::clone() keeps the choice for the cloned weight.
  ConvKernel kernel = ConvKernel::kDense;
  std::shared_ptr<const ConvKernelData> kernel_data;
};

struct Graph {
  std::vector<Node> nodes;                  // topological order
  int output = -1;                          // value id of the network output
  std::vector<int64_t> input_shape;         // [C, H, W] (no batch dimension)
  std::map<std::string, std::string> meta;  // model, dataset, classes, mean, std, ...
  int next_id = 1;

  // Appends a node, giving it a fresh id; returns that id.
  int add(Node node);
  // Position of node `id` in `nodes`; throws if absent.
  size_t index_of(int id) const;
  const Node& node(int id) const { return nodes[index_of(id)]; }
  Node& node(int id) { return nodes[index_of(id)]; }
  const Node* find(const std::string& name) const;
  Node* find(const std::string& name);
  // Ids of the nodes that read value `id`.
  std::vector<int> consumers(int id) const;

  // All trainable tensors in a fixed order (node order, then parameter name). These are the
  // tensors given to torch::optim; their identity survives until surgery replaces them.
  std::vector<torch::Tensor> parameters() const;
  // Same order, with "node.param" names.
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const;

  // Moves/casts every parameter and buffer in place (keeps requires_grad on parameters), and a
  // fused pair's first weight with them. Sparse or unified kernel data made from a weight this
  // replaces is stale from then on: that conv runs dense.
  void to(torch::Device device);
  void to(torch::Dtype dtype);
  // A deep copy (tensors cloned, detached, requires_grad restored; kernel choices kept).
  Graph clone() const;
  // Convenience accessors for meta.
  int64_t classes() const;
};

}  // namespace nnslim
