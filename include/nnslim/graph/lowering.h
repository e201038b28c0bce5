// Inference-only rewrites of a graph: the same function, computed another way where that runs
// faster. Chosen by measured time (graph/inference_plan.h), applied to a private copy, never
// saved. Besides merging, each rewrite sets a conv node's kernel (Node::kernel, graph.h) and
// the kernel's data (ConvKernelData below), on which the executor switches.
//
// Merging a factor pair. TRP's channel scheme turns a kxk conv C -> N into a kxk conv C -> r and
// a 1x1 conv r -> N. At batch 1 with few channels, eager CPU kernels are bound by the input side
// of a kxk conv (its im2col / its pass over C input channels), not by its r outputs: measured on
// resnet20 at 32x32, 16 -> 7..9 costs what 16 -> 16 costs, and the 1x1 comes on top. There the
// pair runs faster as the single conv it equals, weight W2 . W1 (the "1x1 fused into its
// neighbour"); everywhere else the thin pair is faster and stays.
#pragma once

#include "nnslim/graph/graph.h"
#include "nnslim/graph/kernels/sparse_conv.h"
#include "nnslim/graph/kernels/unified_conv.h"
#include "nnslim/graph/unified_layer.h"

#include <memory>
#include <optional>
#include <vector>

namespace nnslim {

// Which weight tensor kernel data was made from: its storage, version counter (bumped by every
// in-place change: an optimizer step, fill_, mul_) and shape. Data whose weight has since been
// replaced (BN folding, surgery, Graph::to) or changed in place is stale and never used.
struct WeightStamp {
  const void* data = nullptr;
  int64_t version = -1;
  std::vector<int64_t> sizes;
  static WeightStamp of(const torch::Tensor& weight);
  bool matches(const torch::Tensor& weight) const;
};

// The data of a conv node's kernel (Node::kernel); only the members of that kernel are set.
struct ConvKernelData {
  // kFusedPair: the first conv's weight W1 [r, C, kh, kw]; the node holds W2 [N, r, 1, 1], the
  // pair's bias and the first conv's attributes.
  torch::Tensor first_weight;
  // kSparse, kUnified: the node weight the data below was made from.
  WeightStamp source;
  // kSparse: the weight in CSR form and the kernel that runs it.
  SparseConvWeight sparse;
  SparseConvKernel sparse_kernel = SparseConvKernel::kDirect;
  // kUnified: the layer and the kernel's plan for it (built once, with the node's attributes).
  UnifiedLayer unified_layer;
  std::shared_ptr<const UnifiedConv2d> unified;
};

// A kxk conv `first` (groups 1) whose only reader is `second`, a 1x1 conv (stride 1, padding 0,
// dilation 1, groups 1) reading nothing else.
struct ConvPair {
  int first = -1, second = -1;  // node ids
};
std::vector<ConvPair> mergeable_conv_pairs(const Graph& graph);

// The single conv that computes second(first(x)): kernel, stride, padding and dilation of
// `first`, weight W2 . W1, bias W2 . b1 + b2; reads first's input, keeps second's id and name.
Node merged_conv(const Graph& graph, const ConvPair& pair);
// Replaces the pair by merged_conv (first is removed). Throws if `pair` is not mergeable.
void merge_conv_pair(Graph& graph, const ConvPair& pair);

// Fusing a factor pair: one node that runs the pair in a single pass (graph/kernels/fused_pair.h,
// where the input allows it: float32 NCHW on the CPU; the two eager convs otherwise). It keeps
// second's id, name, weight and bias, reads first's input with first's attributes, and has
// kernel kFusedPair with first's weight in its data (Graph::to moves it with the graph).
// Whether `first` has what the fused kernel needs (stride 1, dilation 1, padding < kernel).
bool can_fuse_conv_pair(const Graph& graph, const ConvPair& pair);
Node fused_conv_pair(const Graph& graph, const ConvPair& pair);
void fuse_conv_pair(Graph& graph, const ConvPair& pair);

// Sparse execution of a conv (graph/kernels/sparse_conv.h): kernel kSparse, the CSR form of its
// weight in the kernel data; the dense weight stays for the fallback (autograd, channels-last
// input). The data records the weight it was made from (WeightStamp): if the weight has been
// replaced or changed in place since, sparse_conv_of returns nothing and the conv runs dense --
// a stale sparse form is never used.
// Whether sparse execution applies to `conv` at all: an ungrouped float32 conv (not a fused pair).
bool can_sparsify_conv(const Node& conv);
void sparsify_conv(Node& conv, SparseConvKernel kernel);
struct SparseConvOf {
  SparseConvWeight weight;
  SparseConvKernel kernel;
};
std::optional<SparseConvOf> sparse_conv_of(const Node& conv);

// Unified execution of a conv (graph/kernels/unified_conv.h): kernel kUnified with the layer in
// the kernel data, for a float or double conv weight; the same staleness guard as for sparse
// convs. The kernel runs without autograd on a CPU input of the layer's dtype; dense otherwise.
// Throws unless `layer` decodes to the conv's weight bit for bit (it is the same function).
void use_unified_kernel(Node& conv, const UnifiedLayer& layer);
// Every conv listed as unified in the graph's metadata (kUnifyBlocksMeta, graph/unified_file.h:
// a unify result, or a model loaded from the compact unified file) gets the unified kernel,
// its layer classified from the weight (lossless). Returns how many.
int64_t use_unified_kernels(Graph& graph);
// The kernel of a conv whose kernel is kUnified and whose data is current; nullptr otherwise.
const UnifiedConv2d* unified_conv_of(const Node& conv);

}  // namespace nnslim
