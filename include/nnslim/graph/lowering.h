// Inference-only rewrites of a graph: the same function, computed another way where that runs
// faster. Chosen by measured time (report/latency.cpp), applied to a private copy, never saved.
//
// Merging a factor pair. TRP's channel scheme turns a kxk conv C -> N into a kxk conv C -> r and
// a 1x1 conv r -> N. At batch 1 with few channels, eager CPU kernels are bound by the input side
// of a kxk conv (its im2col / its pass over C input channels), not by its r outputs: measured on
// resnet20 at 32x32, 16 -> 7..9 costs what 16 -> 16 costs, and the 1x1 comes on top. There the
// pair runs faster as the single conv it equals, weight W2 . W1 (the "1x1 fused into its
// neighbour"); everywhere else the thin pair is faster and stays.
#pragma once

#include "nnslim/graph/graph.h"
#include "nnslim/graph/sparse_conv.h"

#include <optional>
#include <vector>

namespace nnslim {

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

// Fusing a factor pair: one node that runs the pair in a single pass (graph/fused_pair.h, where
// the input allows it: float32 NCHW on the CPU; the two eager convs otherwise). It keeps
// second's id, name, weight and bias, reads first's input with first's attributes, and holds
// first's weight in this buffer, whose presence switches the executor.
inline constexpr const char* kFusedFirstWeight = "inference.fused_first_weight";
// Whether `first` has what the fused kernel needs (stride 1, dilation 1, padding < kernel).
bool can_fuse_conv_pair(const Graph& graph, const ConvPair& pair);
Node fused_conv_pair(const Graph& graph, const ConvPair& pair);
void fuse_conv_pair(Graph& graph, const ConvPair& pair);

// Sparse execution of a conv (graph/sparse_conv.h). The CSR form of its weight goes into these
// buffers, whose presence switches the executor; the dense weight stays for the fallback
// (autograd, channels-last input). kSparseSource records the kernel and which weight the CSR
// form was made from (its storage, version counter and shape): if the weight has been replaced
// or changed in place since (an optimizer step, BN folding, surgery), sparse_conv_of returns
// nothing and the conv runs dense -- a stale sparse form is never used.
inline constexpr const char* kSparseRowPtr = "inference.sparse_row_ptr";
inline constexpr const char* kSparseCols = "inference.sparse_cols";
inline constexpr const char* kSparseValues = "inference.sparse_values";
inline constexpr const char* kSparseSource = "inference.sparse_source";
// Whether sparse execution applies to `conv` at all: an ungrouped float32 conv (not a fused pair).
bool can_sparsify_conv(const Node& conv);
void sparsify_conv(Node& conv, SparseConvKernel kernel);
struct SparseConvOf {
  SparseConvWeight weight;
  SparseConvKernel kernel;
};
std::optional<SparseConvOf> sparse_conv_of(const Node& conv);

}  // namespace nnslim
