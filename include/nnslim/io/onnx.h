// ONNX export and import: a 1:1 mapping between nnslim graphs and ONNX models (DESIGN.md §1).
//
// Export writes the eval-mode function of any graph (dense, pruned, factorised, sparse stored
// dense) with a symbolic batch dimension; BatchNorm is folded into the convolution before it by
// default. SiLU is written as x * Sigmoid(x), HardSwish below opset 14 as x * HardSigmoid(x),
// GELU as Div/Erf/Add/Mul/Mul, layernorm2d as Transpose, LayerNormalization (opset 17) or its
// pieces, Transpose; a channel shuffle as Reshape/Transpose/Reshape (a pruned one as a Gather), a
// channel slice as Slice, as PyTorch writes them; ceil_mode pooling needs opset 10 or newer.
// Every exported model passes ONNX's own checker before it is written.
//
// Import accepts the CNN subset that nnslim's IR expresses: Conv, BatchNormalization, Relu,
// Clip(0, 6) as ReLU6, Add, Sum, Concat (channels), MaxPool and AveragePool (ceil_mode too),
// GlobalAveragePool, ReduceMean over H and W (GlobalAvgPool, plus Flatten without keepdims),
// Sigmoid, HardSigmoid, HardSwish, Mul of two activations (equal shapes or an [N,C,1,1] gate),
// Flatten, Gemm, Reshape in its flatten form, Identity, Dropout, Constant and initializers. The
// pairs x * Sigmoid(x) and x * HardSigmoid(x) (torch's constants) that PyTorch exports for SiLU
// and, before opset 14, HardSwish become one silu / hardswish node again. ShuffleNet v2: the
// channel shuffle Reshape [N,g,C/g,H,W] -> Transpose(0,2,1,3,4) -> Reshape [N,C,H,W] (or a
// Gather of a permutation along channels) becomes channel_shuffle, Split and Slice along the
// channels become slice_channels nodes. ConvNeXt: a Transpose to NHWC is followed through
// LayerNormalization over the last axis (or its ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/
// Add pieces) -> layernorm2d, MatMul by a constant [C, O] (+ Add of a constant [O]) -> a 1x1
// conv, and Div/Erf/Add/Mul/Mul (GELU) -> gelu, until a Transpose back to NCHW; a Mul by a
// constant [C,1,1] (ConvNeXt's layer scale) is folded into the conv before it. And
// any node whose inputs are all constant (Identity, Cast, Shape of a static shape, Gather,
// Unsqueeze, Squeeze, Concat, Reshape, Slice, Add, Sub, Mul, Div, Transpose) is evaluated at
// import. The result trains and compresses like a zoo model. Anything else is an error that
// lists every unsupported node with its op and the reason -- never a silently different model.
//
// Both need ONNX (Debian's libonnx-dev) at build time; without it they throw, saying so.
#pragma once

#include "nnslim/graph/graph.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace nnslim {

struct OnnxExportOptions {
  int64_t opset = 13;          // 9..17 (ReLU6 is Clip with attributes below 11)
  bool fold_batchnorm = true;  // fold BN into the preceding conv (inference graphs)
};

// Serialized ModelProto; checked with onnx::checker before it is returned.
std::string export_onnx_bytes(const Graph& graph, const OnnxExportOptions& options = {});
// Same, written atomically to `path`.
void export_onnx(const Graph& graph, const std::string& path,
                 const OnnxExportOptions& options = {});

struct OnnxImportOptions {
  // [C, H, W]; required when the model's input has no static shape, overrides it otherwise.
  std::vector<int64_t> input_shape;
};

// What an import did, for the user: the ONNX ops evaluated at import because their inputs were
// constant (Identity on shared initializers, Shape arithmetic), the ops translated into graph
// nodes, and the node pairs fused into one (x * Sigmoid(x) -> silu); each with its count.
struct OnnxImportReport {
  std::map<std::string, int64_t> folded;
  std::map<std::string, int64_t> mapped;
  std::map<std::string, int64_t> fused;
};

// `what` names the source in errors (a path). `report`, when given, receives what was done.
Graph import_onnx_bytes(const std::string& bytes, const std::string& what,
                        const OnnxImportOptions& options = {}, OnnxImportReport* report = nullptr);
Graph import_onnx(const std::string& path, const OnnxImportOptions& options = {},
                  OnnxImportReport* report = nullptr);

// False when nnslim was built without ONNX.
bool onnx_available();

}  // namespace nnslim
