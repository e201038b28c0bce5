#include "nnslim/graph/execute.h"

#include "nnslim/graph/kernels/fused_pair.h"
#include "nnslim/graph/kernels/sparse_conv.h"
#include "nnslim/graph/kernels/unified_conv.h"
#include "nnslim/graph/lowering.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace nnslim {

namespace {
const torch::Tensor* opt_param(const Node& n, const char* key) {
  auto it = n.params.find(key);
  return it == n.params.end() ? nullptr : &it->second;
}

// A conv by its kernel (Node::kernel, graph/lowering.h). Every kernel other than kDense runs
// only where it applies (no autograd, an input it takes, current data) and falls back to what
// computes the same function with the dense weights otherwise.
torch::Tensor run_conv(const Node& n, const torch::Tensor& x) {
  const auto& a = n.attrs;
  const auto& w = n.params.at("weight");
  const auto* b = opt_param(n, "bias");
  const torch::Tensor bias = b ? *b : torch::Tensor();
  const bool inference = !torch::GradMode::is_enabled();
  switch (n.kernel) {
    case ConvKernel::kDense:
      break;
    case ConvKernel::kFusedPair: {
      TORCH_CHECK(n.kernel_data, "node '", n.name, "': fused pair without its first weight");
      const auto& w1 = n.kernel_data->first_weight;
      if (inference && x.is_contiguous() &&
          fused_pair_supports(x, w1, w, a.stride, a.padding, a.dilation, a.groups))
        return fused_pair(x, w1, w, bias, a.padding);
      return torch::conv2d(torch::conv2d(x, w1, {}, a.stride, a.padding, a.dilation, a.groups), w,
                           bias);
    }
    case ConvKernel::kSparse:
      if (inference && sparse_conv_supports(x, w, a.groups))
        if (auto sparse = sparse_conv_of(n))  // still current
          return sparse_conv2d(x, sparse->weight, bias, a.stride, a.padding, a.dilation,
                               sparse->kernel);
      break;
    case ConvKernel::kUnified:
      if (inference)
        if (const UnifiedConv2d* unified = unified_conv_of(n))  // still current
          if (x.device().is_cpu() && x.scalar_type() == unified->dtype())
            return unified->forward(x, bias);
      break;
  }
  return torch::conv2d(x, w, bias, a.stride, a.padding, a.dilation, a.groups);
}
}  // namespace

torch::Tensor run_node(const Node& n, const std::vector<torch::Tensor>& in, Mode mode) {
  const bool train = mode == Mode::kTrain;
  const auto& a = n.attrs;
  switch (n.op) {
    case Op::kConv2d:
      return run_conv(n, in[0]);
    case Op::kBatchNorm2d:
      return torch::batch_norm(in[0], n.params.at("weight"), n.params.at("bias"),
                               n.buffers.at("running_mean"), n.buffers.at("running_var"), train,
                               a.momentum, a.eps, /*cudnn_enabled=*/true);
    case Op::kReLU:
      return torch::relu(in[0]);
    case Op::kReLU6:
      return torch::hardtanh(in[0], 0.0, 6.0);
    case Op::kMaxPool2d:
      return torch::max_pool2d(in[0], a.kernel, a.stride, a.padding, /*dilation=*/{1, 1},
                               a.ceil_mode);
    case Op::kAvgPool2d:
      return torch::avg_pool2d(in[0], a.kernel, a.stride, a.padding, a.ceil_mode,
                               /*count_include_pad=*/true);
    case Op::kGlobalAvgPool:
      return in[0].mean({2, 3}, /*keepdim=*/true);
    case Op::kFlatten:
      return in[0].flatten(1);
    case Op::kLinear: {
      const auto* b = opt_param(n, "bias");
      return torch::linear(in[0], n.params.at("weight"), b ? *b : torch::Tensor());
    }
    case Op::kAdd: {
      torch::Tensor out = in[0] + in[1];
      for (size_t i = 2; i < in.size(); ++i) out = out + in[i];
      return out;
    }
    case Op::kConcat:
      return in.size() == 1 ? in[0] : torch::cat(in, 1);
    case Op::kDropout:
      return torch::dropout(in[0], a.p, train);
    case Op::kIdentity:
      return in[0];
    case Op::kSigmoid:
      return torch::sigmoid(in[0]);
    case Op::kHardSigmoid:
      // torch's own kernel for torch's constants (within float precision, as ONNX stores them).
      if (std::abs(a.alpha - 1.0 / 6) < 1e-7 && std::abs(a.beta - 0.5) < 1e-7)
        return torch::hardsigmoid(in[0]);
      return torch::clamp(in[0] * a.alpha + a.beta, 0.0, 1.0);
    case Op::kHardSwish:
      return torch::hardswish(in[0]);
    case Op::kSiLU:
      return torch::silu(in[0]);
    case Op::kMul:
      return in[0] * in[1];
    case Op::kChannelShuffle:
      return in[0].index_select(1, torch::tensor(a.perm, torch::kLong).to(in[0].device()));
    case Op::kSliceChannels:
      return in[0].narrow(1, a.start, a.end - a.start);
    case Op::kLayerNorm2d:  // as torchvision's LayerNorm2d: layer_norm over C of the NHWC view
      return torch::layer_norm(in[0].permute({0, 2, 3, 1}), {in[0].size(1)}, n.params.at("weight"),
                               n.params.at("bias"), a.eps)
          .permute({0, 3, 1, 2})
          .contiguous();
    case Op::kGELU:
      return torch::gelu(in[0]);
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled op");
}

torch::Tensor forward(const Graph& graph, const torch::Tensor& x, Mode mode) {
  TORCH_CHECK(x.dim() == static_cast<int64_t>(graph.input_shape.size()) + 1, "input must be [N, ",
              graph.input_shape, "], got ", x.sizes());
  for (size_t i = 0; i < graph.input_shape.size(); ++i)
    TORCH_CHECK(x.size(i + 1) == graph.input_shape[i], "input must be [N, ", graph.input_shape,
                "], got ", x.sizes());
  // Values live in a slot per id; each is released after its last reader so inference at large
  // batch sizes keeps only the live activations.
  std::vector<torch::Tensor> values(graph.next_id);
  std::vector<int> uses(graph.next_id, 0);
  for (const auto& n : graph.nodes)
    for (int in : n.inputs) ++uses[in];
  ++uses[graph.output];
  // Only outputs of these ops are freshly allocated; others (identity, flatten, eval dropout,
  // single-input concat, channel slices) may alias their input and must never be modified in place.
  std::vector<char> fresh(graph.next_id, 0);
  for (const auto& n : graph.nodes)
    fresh[n.id] = n.op == Op::kConv2d || n.op == Op::kBatchNorm2d || n.op == Op::kAdd ||
                  n.op == Op::kLinear || n.op == Op::kMul || n.op == Op::kSigmoid ||
                  n.op == Op::kHardSigmoid || n.op == Op::kHardSwish || n.op == Op::kSiLU ||
                  n.op == Op::kChannelShuffle || n.op == Op::kLayerNorm2d || n.op == Op::kGELU;
  values[kGraphInput] = x;
  std::vector<torch::Tensor> ins;
  for (const auto& n : graph.nodes) {
    ins.clear();
    for (int id : n.inputs) ins.push_back(values[id]);
    // A ReLU or Add whose first input is fresh and read by nobody else may write into it (as
    // torchvision's inplace=True and `out += identity`): saves an activation-sized allocation
    // and a memory pass per block. Never on the caller's tensor; Add only without broadcasting
    // and outside autograd (a saved input must not change before backward); HardSwish and SiLU
    // likewise outside autograd only.
    const bool first_is_free = !n.inputs.empty() && fresh[n.inputs[0]] && uses[n.inputs[0]] == 1;
    for (int id : n.inputs)
      if (--uses[id] == 0) values[id] = torch::Tensor();
    if (n.op == Op::kReLU && first_is_free) {
      values[n.id] = torch::relu_(ins[0]);
    } else if (n.op == Op::kHardSwish && first_is_free && !torch::GradMode::is_enabled()) {
      values[n.id] = torch::hardswish_(ins[0]);  // its backward needs the input: inference only
    } else if (n.op == Op::kSiLU && first_is_free && !torch::GradMode::is_enabled()) {
      values[n.id] = torch::silu_(ins[0]);
    } else if (n.op == Op::kAdd && first_is_free && !torch::GradMode::is_enabled() &&
               std::all_of(ins.begin() + 1, ins.end(),
                           [&](const torch::Tensor& t) { return t.sizes() == ins[0].sizes(); })) {
      for (size_t i = 1; i < ins.size(); ++i) ins[0].add_(ins[i]);
      values[n.id] = ins[0];
    } else {
      values[n.id] = run_node(n, ins, mode);
    }
  }
  return values[graph.output];
}

}  // namespace nnslim
