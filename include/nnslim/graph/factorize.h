// Low-rank factorisation of a convolution (TRP surgery, METHODS.md §1.2 and §1.6): a conv node is
// replaced by two conv nodes whose composition equals the conv with the rank-r approximation of
// its weight in the chosen matricisation.
//
//   scheme    matrix M(W) for W [n, c, kh, kw]        replacement (first -> second)
//   channel   W.reshape(n, c*kh*kw)                   [r, c, kh, kw] kh x kw, c->r, stride/pad/dil
//   ("NC")    rows o, columns (ci, y, x)              of the original, no bias
//                                                     -> [n, r, 1, 1] 1x1, r->n, original bias
//   spatial   W.permute(1,2,0,3).reshape(c*kh, n*kw)  [r, c, kh, 1] kh x 1, c->r, stride (sh,1),
//   ("VH")    rows (ci, y), columns (o, x)            padding (ph,0), dilation (dh,1), no bias
//                                                     -> [n, r, 1, kw] 1 x kw, r->n, stride
//                                                     (1,sw), padding (0,pw), dilation (1,dw), bias
//   channel-in W.permute(1,0,2,3).reshape(c, n*kh*kw) [r, c, 1, 1] 1x1, c->r, no bias
//   [OUR CHOICE] rows ci, columns (o, y, x)            -> [n, r, kh, kw] kh x kw, r->n, stride/pad/
//             (the input-side twin of channel: same    dil of the original, bias
//             MACs when c = n, but the kh x kw conv reads only r channels, which eager CPU
//             kernels run much faster at small batch)
//   decouple  per filter o: W[o].reshape(c, kh*kw)     [n*r, c, 1, 1] 1x1, c->n*r (channel o*r+j =
//   ("ND")    batched [n, c, kh*kw]; rows ci,          path j of filter o), no bias
//             columns (y, x)                           -> [n, r, kh, kw] kh x kw, groups n, n*r->n,
//                                                     stride/pad/dil of the original, bias
//             (the r parallel pointwise+depthwise paths of network decoupling, summed by the
//             grouped conv; the rank r is shared by all filters)
//
// With rank = max_rank the replacement computes the original conv exactly (up to rounding); with a
// smaller rank it computes the conv whose weight is unmatricize(U_r diag(s_r) V_r^T), the best
// rank-r approximation of M(W) (of every M_o for decouple) in the Frobenius norm. Only ungrouped
// convs (groups == 1) are
// factorised. The matricisation helpers live here (not in methods/) because surgery needs them
// and graph/ never includes methods/; methods/lowrank.h builds on them.
#pragma once

#include "nnslim/graph/shape.h"

#include <string>

namespace nnslim {

enum class Scheme {
  kChannel,    // "channel" (NC): kh x kw conv to r channels, then 1x1
  kSpatial,    // "spatial" (VH): kh x 1 conv to r channels, then 1 x kw
  kDecouple,   // "decouple" (ND): 1x1 conv to n*r channels, then kh x kw conv with groups n
  kChannelIn,  // "channel-in" [OUR CHOICE]: 1x1 conv to r channels, then kh x kw conv r->n
};

const char* scheme_name(Scheme s);                 // "channel", "spatial", "decouple", "channel-in"
Scheme scheme_from_name(const std::string& name);  // throws c10::Error listing the known names

// M(W) for a conv weight W [n, c, kh, kw] (table above); decouple gives a batch [n, c, kh*kw].
// Returns a view/copy in W's dtype.
torch::Tensor matricize(const torch::Tensor& weight, Scheme s);
// Inverse of matricize: m has matricize's shape for a weight of `weight_shape` [n, c, kh, kw].
torch::Tensor unmatricize(const torch::Tensor& m, Scheme s, at::IntArrayRef weight_shape);
// min(rows, cols) of M(W) (of each M_o for decouple) for a weight of this shape.
int64_t max_rank(at::IntArrayRef weight_shape, Scheme s);

// The two factor weights of the rank-r truncated SVD of M(W) (√σ split between the factors).
// channel: first [r, c, kh, kw], second [n, r, 1, 1]; spatial: first [r, c, kh, 1],
// second [n, r, 1, kw]; decouple: first [n*r, c, 1, 1], second [n, r, kh, kw]; channel-in:
// first [r, c, 1, 1], second [n, r, kh, kw]. The SVD runs in
// float64 on the CPU; the factors come back in W's dtype and device. Requires 1 <= rank <=
// max_rank.
struct ConvFactors {
  torch::Tensor first, second;
};
ConvFactors factor_conv_weight(const torch::Tensor& weight, Scheme s, int64_t rank);

// MACs (cost.h convention) of conv node `conv` reading an input of shape `in` [C, H, W]:
// dense, and after factorisation with `rank` (exactly what count_cost reports for the pair).
// With output Ho x Wo: channel (r*c*kh*kw + n*r) * Ho*Wo; spatial r*c*kh * Ho*Wv + n*r*kw * Ho*Wo
// where Wv = W (the kh x 1 conv keeps the input width); decouple n*r*c * H*W + n*r*kh*kw * Ho*Wo
// and channel-in r*c * H*W + n*r*kh*kw * Ho*Wo (the pointwise conv runs at the input size) --
// METHODS.md §1.6 when the stride is 1 and the padding keeps the size.
int64_t conv_macs(const Node& conv, const Shape& in);
int64_t factorized_conv_macs(const Node& conv, const Shape& in, Scheme s, int64_t rank);

// Largest rank whose factorisation has fewer MACs than the dense conv (0 if none does).
int64_t break_even_rank(const Node& conv, const Shape& in, Scheme s);

// Whether factorize_conv accepts this node (conv, groups == 1, 4-D weight).
bool can_factorize(const Node& node);

struct FactorizeResult {
  int first = -1, second = -1;  // ids of the new nodes; `second` carries the old output
};

// Replaces conv node `node_id` by the two factor convs of factor_conv_weight(weight, s, rank).
// The new nodes take fresh ids and sit where the old node was (topological order kept); they
// are named "<name>.0" and "<name>.1" (as PyTorch names a Sequential swapped in for a module).
// Every reader of the old node (and graph.output) reads the second node instead. The graph is
// re-validated; on any error it is left unchanged. New parameters require grad.
FactorizeResult factorize_conv(Graph& graph, int node_id, Scheme s, int64_t rank);
// Same with given factors (shapes as factor_conv_weight's; bias is taken from the old node).
FactorizeResult replace_conv_with_factors(Graph& graph, int node_id, Scheme s,
                                          const ConvFactors& factors);

}  // namespace nnslim
