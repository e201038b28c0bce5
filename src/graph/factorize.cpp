#include "nnslim/graph/factorize.h"

#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <algorithm>

namespace nnslim {

const char* scheme_name(Scheme s) {
  switch (s) {
    case Scheme::kChannel:
      return "channel";
    case Scheme::kSpatial:
      return "spatial";
    case Scheme::kDecouple:
      return "decouple";
    case Scheme::kChannelIn:
      return "channel-in";
  }
  TORCH_INTERNAL_ASSERT(false, "scheme without a name");
}

Scheme scheme_from_name(const std::string& name) {
  if (name == "channel") return Scheme::kChannel;
  if (name == "spatial") return Scheme::kSpatial;
  if (name == "decouple") return Scheme::kDecouple;
  if (name == "channel-in") return Scheme::kChannelIn;
  TORCH_CHECK(false, "unknown decomposition scheme '", name,
              "' (known: channel, spatial, decouple, channel-in)");
}

// ---- matricisation (METHODS.md §1.2) ------------------------------------------------------------

torch::Tensor matricize(const torch::Tensor& w, Scheme s) {
  TORCH_CHECK(w.dim() == 4, "matricize: expects a conv weight [n, c, kh, kw], got ", w.sizes());
  const int64_t n = w.size(0), c = w.size(1), kh = w.size(2), kw = w.size(3);
  if (s == Scheme::kChannel) return w.reshape({n, c * kh * kw});
  if (s == Scheme::kDecouple) return w.reshape({n, c, kh * kw});
  if (s == Scheme::kChannelIn) return w.permute({1, 0, 2, 3}).reshape({c, n * kh * kw});
  // Rows (ci, y), columns (o, x): a rank-1 term is a vertical filter times a horizontal one.
  return w.permute({1, 2, 0, 3}).reshape({c * kh, n * kw});
}

torch::Tensor unmatricize(const torch::Tensor& m, Scheme s, at::IntArrayRef shape) {
  TORCH_CHECK(shape.size() == 4, "unmatricize: weight shape must be [n, c, kh, kw], got ", shape);
  const int64_t n = shape[0], c = shape[1], kh = shape[2], kw = shape[3];
  if (s == Scheme::kChannel) {
    TORCH_CHECK(m.dim() == 2 && m.size(0) == n && m.size(1) == c * kh * kw,
                "unmatricize(channel): expects [", n, ", ", c * kh * kw, "], got ", m.sizes());
    return m.reshape({n, c, kh, kw});
  }
  if (s == Scheme::kDecouple) {
    TORCH_CHECK(m.dim() == 3 && m.size(0) == n && m.size(1) == c && m.size(2) == kh * kw,
                "unmatricize(decouple): expects [", n, ", ", c, ", ", kh * kw, "], got ",
                m.sizes());
    return m.reshape({n, c, kh, kw});
  }
  if (s == Scheme::kChannelIn) {
    TORCH_CHECK(m.dim() == 2 && m.size(0) == c && m.size(1) == n * kh * kw,
                "unmatricize(channel-in): expects [", c, ", ", n * kh * kw, "], got ", m.sizes());
    return m.reshape({c, n, kh, kw}).permute({1, 0, 2, 3}).contiguous();
  }
  TORCH_CHECK(m.dim() == 2 && m.size(0) == c * kh && m.size(1) == n * kw,
              "unmatricize(spatial): expects [", c * kh, ", ", n * kw, "], got ", m.sizes());
  return m.reshape({c, kh, n, kw}).permute({2, 0, 1, 3}).contiguous();
}

int64_t max_rank(at::IntArrayRef shape, Scheme s) {
  TORCH_CHECK(shape.size() == 4, "max_rank: weight shape must be [n, c, kh, kw], got ", shape);
  const int64_t n = shape[0], c = shape[1], kh = shape[2], kw = shape[3];
  switch (s) {
    case Scheme::kChannel:
      return std::min(n, c * kh * kw);
    case Scheme::kSpatial:
      return std::min(c * kh, n * kw);
    case Scheme::kDecouple:
      return std::min(c, kh * kw);
    case Scheme::kChannelIn:
      return std::min(c, n * kh * kw);
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled scheme");
}

// ---- factors (METHODS.md §1.2, "Factor construction") -------------------------------------------

ConvFactors factor_conv_weight(const torch::Tensor& weight, Scheme s, int64_t rank) {
  torch::NoGradGuard no_grad;
  const auto shape = weight.sizes().vec();
  const int64_t R = max_rank(shape, s);
  TORCH_CHECK(rank >= 1 && rank <= R, "factorize: rank must be in [1, ", R, "] for a ",
              scheme_name(s), " factorisation of a weight ", weight.sizes(), ", got ", rank);
  const int64_t n = shape[0], c = shape[1], kh = shape[2], kw = shape[3];
  // Surgery is one-off: do the SVD in double so that a full-rank factorisation is exact to
  // float32 rounding whatever the weight's conditioning.
  auto m = matricize(weight.detach().to(torch::kCPU, torch::kDouble), s);
  auto svd = torch::linalg_svd(m, /*full_matrices=*/false);
  // (batched over filters for decouple: a leading [n] dimension everywhere)
  auto sq = std::get<1>(svd).narrow(-1, 0, rank).sqrt();              // [r]
  auto us = std::get<0>(svd).narrow(-1, 0, rank) * sq.unsqueeze(-2);  // U_r diag(√σ) [rows, r]
  auto sv = std::get<2>(svd).narrow(-2, 0, rank) * sq.unsqueeze(-1);  // diag(√σ) V_r^T [r, cols]
  ConvFactors f;
  if (s == Scheme::kDecouple) {
    // Path j of filter o: pointwise column (U_o √Σ_o)[:, j] -> channel o*r + j; depthwise kernel
    // (√Σ_o V_o^T)[j] reshaped to kh x kw (METHODS.md §1.2, ND).
    f.first = us.permute({0, 2, 1}).reshape({n * rank, c, 1, 1});
    f.second = sv.reshape({n, rank, kh, kw});
  } else if (s == Scheme::kChannelIn) {
    // rows ci -> first [r, c, 1, 1]; columns (o, y, x) -> second [n, r, kh, kw].
    f.first = us.t().reshape({rank, c, 1, 1});
    f.second = sv.reshape({rank, n, kh, kw}).permute({1, 0, 2, 3});
  } else if (s == Scheme::kChannel) {
    f.first = sv.reshape({rank, c, kh, kw});
    f.second = us.reshape({n, rank, 1, 1});
  } else {
    // rows (ci, y) -> first [r, c, kh, 1]; columns (o, x) -> second [n, r, 1, kw].
    f.first = us.reshape({c, kh, rank}).permute({2, 0, 1}).unsqueeze(3);
    f.second = sv.reshape({rank, n, kw}).permute({1, 0, 2}).unsqueeze(2);
  }
  f.first = f.first.contiguous().to(weight.device(), weight.scalar_type());
  f.second = f.second.contiguous().to(weight.device(), weight.scalar_type());
  return f;
}

// ---- costs --------------------------------------------------------------------------------------

namespace {

int64_t window_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

struct ConvGeometry {
  int64_t n, c, kh, kw, h, w, ho, wo, wv;  // wv: width after the spatial scheme's kh x 1 conv
};

ConvGeometry geometry(const Node& conv, const Shape& in) {
  TORCH_CHECK(conv.op == Op::kConv2d, "node '", conv.name, "' is not a conv");
  TORCH_CHECK(in.size() == 3, "node '", conv.name, "': input must be CxHxW, got ", shape_str(in));
  const auto& w = conv.params.at("weight");
  const auto& a = conv.attrs;
  ConvGeometry g;
  g.n = w.size(0);
  g.c = w.size(1);
  g.kh = w.size(2);
  g.kw = w.size(3);
  g.ho = window_out(in[1], g.kh, a.stride[0], a.padding[0], a.dilation[0]);
  g.wo = window_out(in[2], g.kw, a.stride[1], a.padding[1], a.dilation[1]);
  g.h = in[1];
  g.w = in[2];
  g.wv = in[2];
  return g;
}

}  // namespace

int64_t conv_macs(const Node& conv, const Shape& in) {
  auto g = geometry(conv, in);
  return g.n * g.c * g.kh * g.kw * g.ho * g.wo;
}

int64_t factorized_conv_macs(const Node& conv, const Shape& in, Scheme s, int64_t r) {
  auto g = geometry(conv, in);
  // METHODS.md §1.6: NC r*c*kh*kw + n*r, VH c*r*kh + n*r*kw per output pixel (stride 1).
  if (s == Scheme::kChannel) return (r * g.c * g.kh * g.kw + g.n * r) * g.ho * g.wo;
  // ND: r*(n*c + n*kh*kw); the pointwise part runs at the input resolution.
  if (s == Scheme::kDecouple)
    return g.n * r * g.c * g.h * g.w + g.n * r * g.kh * g.kw * g.ho * g.wo;
  if (s == Scheme::kChannelIn) return r * g.c * g.h * g.w + g.n * r * g.kh * g.kw * g.ho * g.wo;
  return r * g.c * g.kh * g.ho * g.wv + g.n * r * g.kw * g.ho * g.wo;
}

int64_t break_even_rank(const Node& conv, const Shape& in, Scheme s) {
  const int64_t dense = conv_macs(conv, in);
  const int64_t per_rank = factorized_conv_macs(conv, in, s, 1);  // MACs are linear in r
  if (per_rank <= 0) return 0;
  return std::min((dense - 1) / per_rank, max_rank(conv.params.at("weight").sizes(), s));
}

bool can_factorize(const Node& node) {
  if (node.op != Op::kConv2d || node.attrs.groups != 1) return false;
  auto it = node.params.find("weight");
  return it != node.params.end() && it->second.defined() && it->second.dim() == 4;
}

// ---- surgery ------------------------------------------------------------------------------------

FactorizeResult replace_conv_with_factors(Graph& graph, int node_id, Scheme s,
                                          const ConvFactors& f) {
  const Node& old = graph.node(node_id);
  TORCH_CHECK(can_factorize(old), "factorize_conv: node '", old.name, "' (", op_name(old.op),
              ") is not an ungrouped conv");
  const auto& w = old.params.at("weight");
  const int64_t n = w.size(0), c = w.size(1), kh = w.size(2), kw = w.size(3);
  TORCH_CHECK(f.first.defined() && f.second.defined() && f.first.dim() == 4 && f.second.dim() == 4,
              "factorize_conv: node '", old.name, "': factors must be 4-D");
  const int64_t r = s == Scheme::kDecouple ? f.second.size(1) : f.first.size(0);
  std::vector<int64_t> first_shape, second_shape;
  switch (s) {
    case Scheme::kChannel:
      first_shape = {r, c, kh, kw};
      second_shape = {n, r, 1, 1};
      break;
    case Scheme::kSpatial:
      first_shape = {r, c, kh, 1};
      second_shape = {n, r, 1, kw};
      break;
    case Scheme::kDecouple:
      first_shape = {n * r, c, 1, 1};
      second_shape = {n, r, kh, kw};
      break;
    case Scheme::kChannelIn:
      first_shape = {r, c, 1, 1};
      second_shape = {n, r, kh, kw};
      break;
  }
  TORCH_CHECK(f.first.sizes().vec() == first_shape && f.second.sizes().vec() == second_shape,
              "factorize_conv: node '", old.name, "': ", scheme_name(s), " factors must be ",
              first_shape, " and ", second_shape, ", got ", f.first.sizes(), " and ",
              f.second.sizes());
  for (const char* suffix : {".0", ".1"})
    TORCH_CHECK(!graph.find(old.name + suffix), "factorize_conv: node '", old.name, "': the name '",
                old.name + suffix, "' is taken");

  // Work on a copy so that a failed validation leaves the caller's graph as it was.
  Graph g = graph;
  const size_t pos = g.index_of(node_id);
  Node a, b;
  a.op = b.op = Op::kConv2d;
  a.name = old.name + ".0";
  b.name = old.name + ".1";
  a.inputs = old.inputs;
  const auto& oa = old.attrs;
  // [OUR CHOICE] (METHODS.md §1.2): stride, padding and dilation are carried over instead of the
  // official code's hard-coded stride 1 / padding 1, so strided and non-square layers work too.
  if (s == Scheme::kChannel) {
    a.attrs.kernel = {kh, kw};
    a.attrs.stride = oa.stride;
    a.attrs.padding = oa.padding;
    a.attrs.dilation = oa.dilation;
    b.attrs.kernel = {1, 1};
  } else if (s == Scheme::kDecouple) {
    // [OUR CHOICE] (§1.2): the stride sits on the depthwise (grouped) conv.
    a.attrs.kernel = {1, 1};
    b.attrs.kernel = {kh, kw};
    b.attrs.stride = oa.stride;
    b.attrs.padding = oa.padding;
    b.attrs.dilation = oa.dilation;
    b.attrs.groups = n;
  } else if (s == Scheme::kChannelIn) {
    // [OUR CHOICE]: the 1x1 runs at the input size; the kh x kw conv carries stride/pad/dil.
    a.attrs.kernel = {1, 1};
    b.attrs.kernel = {kh, kw};
    b.attrs.stride = oa.stride;
    b.attrs.padding = oa.padding;
    b.attrs.dilation = oa.dilation;
  } else {
    a.attrs.kernel = {kh, 1};
    a.attrs.stride = {oa.stride[0], 1};
    a.attrs.padding = {oa.padding[0], 0};
    a.attrs.dilation = {oa.dilation[0], 1};
    b.attrs.kernel = {1, kw};
    b.attrs.stride = {1, oa.stride[1]};
    b.attrs.padding = {0, oa.padding[1]};
    b.attrs.dilation = {1, oa.dilation[1]};
  }
  const bool rg = w.requires_grad();
  {
    torch::NoGradGuard no_grad;
    a.params["weight"] =
        f.first.detach().to(w.device(), w.scalar_type()).contiguous().clone().requires_grad_(rg);
    b.params["weight"] =
        f.second.detach().to(w.device(), w.scalar_type()).contiguous().clone().requires_grad_(rg);
  }
  auto bias = old.params.find("bias");
  if (bias != old.params.end()) b.params["bias"] = bias->second;
  a.id = g.next_id++;
  b.id = g.next_id++;
  g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(pos));
  g.nodes.insert(g.nodes.begin() + static_cast<std::ptrdiff_t>(pos), {a, b});
  g.nodes[pos + 1].inputs = {a.id};
  for (auto& node : g.nodes)
    if (node.id != b.id)
      for (int& in : node.inputs)
        if (in == node_id) in = b.id;
  if (g.output == node_id) g.output = b.id;
  validate(g);
  FactorizeResult res{a.id, b.id};
  graph = std::move(g);
  return res;
}

FactorizeResult factorize_conv(Graph& graph, int node_id, Scheme s, int64_t rank) {
  const Node& old = graph.node(node_id);
  TORCH_CHECK(can_factorize(old), "factorize_conv: node '", old.name, "' (", op_name(old.op),
              ") is not an ungrouped conv");
  return replace_conv_with_factors(graph, node_id, s,
                                   factor_conv_weight(old.params.at("weight"), s, rank));
}

}  // namespace nnslim
