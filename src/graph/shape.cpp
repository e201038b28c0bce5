#include "nnslim/graph/shape.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <set>
#include <sstream>

namespace nnslim {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "x" : "") << s[i];
  return os.str();
}

namespace {

constexpr int64_t kMaxWindowAttr = int64_t(1) << 16;
// The largest value (entries per image) and the largest dimension a graph may have: far beyond
// any real network, small enough that no size arithmetic overflows.
constexpr int64_t kMaxValueEntries = int64_t(1) << 32;
constexpr int64_t kMaxDimension = int64_t(1) << 24;

// Entries of a shape; -1 when some dimension is < 1 or the product exceeds kMaxValueEntries.
int64_t bounded_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) {
    if (d < 1 || d > kMaxDimension || n > kMaxValueEntries / d) return -1;
    n *= d;
  }
  return n;
}

// Output size of a sliding window (conv or pool), by torch's rule (pooling_output_shape): in
// ceil mode the size is rounded up, but the last window must start inside the input or its
// left padding.
int64_t window_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  if (span < 0) return 0;
  int64_t out = (span + (ceil ? s - 1 : 0)) / s + 1;
  if (ceil && (out - 1) * s >= in + p) --out;
  return out;
}

struct Checker {
  const Node& n;
  template <typename... Args>
  void check(bool ok, const Args&... args) const {
    TORCH_CHECK(ok, "node '", n.name, "' (", op_name(n.op), "): ", args...);
  }
  const torch::Tensor& param(const char* key) const {
    auto it = n.params.find(key);
    check(it != n.params.end() && it->second.defined(), "missing parameter '", key, "'");
    return it->second;
  }
  const torch::Tensor& buffer(const char* key) const {
    auto it = n.buffers.find(key);
    check(it != n.buffers.end() && it->second.defined(), "missing buffer '", key, "'");
    return it->second;
  }
  void check_vec(const torch::Tensor& t, int64_t len, const char* what) const {
    check(t.dim() == 1 && t.size(0) == len, what, " must have shape [", len, "], got ", t.sizes());
  }
  // Two integers in [min, kMaxWindowAttr]: a window attribute beyond that (a padding, dilation,
  // stride or kernel of more than 2^16) is a corrupt file, and would overflow the size arithmetic.
  void check_pair(const std::vector<int64_t>& v, const char* what, int64_t min) const {
    check(v.size() == 2 && v[0] >= min && v[1] >= min && v[0] <= kMaxWindowAttr &&
              v[1] <= kMaxWindowAttr,
          what, " must be two integers >= ", min, " and <= ", kMaxWindowAttr, ", got ",
          c10::IntArrayRef(v));
  }
};

Shape infer_conv(const Checker& c, const Shape& in) {
  const Node& n = c.n;
  c.check(in.size() == 3, "expects a CxHxW input, got ", shape_str(in));
  const auto& w = c.param("weight");
  c.check(w.dim() == 4, "weight must be 4-D [out, in/groups, kh, kw], got ", w.sizes());
  for (int64_t d : w.sizes()) c.check(d >= 1, "weight has an empty dimension: ", w.sizes());
  const auto& a = n.attrs;
  c.check(a.groups >= 1 && a.groups <= kMaxDimension, "groups must be in [1, ", kMaxDimension,
          "], got ", a.groups);
  c.check_pair(a.stride, "stride", 1);
  c.check_pair(a.padding, "padding", 0);
  c.check_pair(a.dilation, "dilation", 1);
  c.check(in[0] % a.groups == 0 && w.size(0) % a.groups == 0, "groups=", a.groups,
          " must divide input channels ", in[0], " and output channels ", w.size(0));
  c.check(w.size(1) * a.groups == in[0], "weight expects ", w.size(1) * a.groups,
          " input channels, input has ", in[0]);
  if (n.params.count("bias")) c.check_vec(n.params.at("bias"), w.size(0), "bias");
  int64_t h = window_out(in[1], w.size(2), a.stride[0], a.padding[0], a.dilation[0], false);
  int64_t wd = window_out(in[2], w.size(3), a.stride[1], a.padding[1], a.dilation[1], false);
  c.check(h >= 1 && wd >= 1, "output would be empty for input ", shape_str(in));
  return {w.size(0), h, wd};
}

Shape infer_pool(const Checker& c, const Shape& in) {
  const auto& a = c.n.attrs;
  c.check(in.size() == 3, "expects a CxHxW input, got ", shape_str(in));
  c.check_pair(a.kernel, "kernel", 1);
  c.check_pair(a.stride, "stride", 1);
  c.check_pair(a.padding, "padding", 0);
  c.check(a.padding[0] * 2 <= a.kernel[0] && a.padding[1] * 2 <= a.kernel[1],
          "padding must be at most half the kernel");
  int64_t h = window_out(in[1], a.kernel[0], a.stride[0], a.padding[0], 1, a.ceil_mode);
  int64_t w = window_out(in[2], a.kernel[1], a.stride[1], a.padding[1], 1, a.ceil_mode);
  c.check(h >= 1 && w >= 1, "output would be empty for input ", shape_str(in));
  return {in[0], h, w};
}

Shape infer_node(const Node& n, const std::vector<Shape>& ins) {
  Checker c{n};
  bool multi = n.op == Op::kAdd || n.op == Op::kConcat;
  if (n.op == Op::kMul)
    c.check(ins.size() == 2, "takes exactly two inputs, got ", ins.size());
  else if (multi)
    c.check(ins.size() >= (n.op == Op::kAdd ? 2u : 1u), "needs more inputs, got ", ins.size());
  else
    c.check(ins.size() == 1, "takes exactly one input, got ", ins.size());
  const Shape& in = ins[0];
  switch (n.op) {
    case Op::kConv2d:
      return infer_conv(c, in);
    case Op::kBatchNorm2d: {
      c.check(in.size() == 3, "expects a CxHxW input, got ", shape_str(in));
      c.check_vec(c.param("weight"), in[0], "weight");
      c.check_vec(c.param("bias"), in[0], "bias");
      c.check_vec(c.buffer("running_mean"), in[0], "running_mean");
      c.check_vec(c.buffer("running_var"), in[0], "running_var");
      c.check(n.attrs.eps > 0 && std::isfinite(n.attrs.eps), "eps must be finite and > 0, got ",
              n.attrs.eps);
      c.check(n.attrs.momentum >= 0 && n.attrs.momentum <= 1, "momentum must be in [0, 1], got ",
              n.attrs.momentum);
      return in;
    }
    case Op::kReLU:
    case Op::kReLU6:
    case Op::kIdentity:
    case Op::kSigmoid:
    case Op::kHardSwish:
    case Op::kSiLU:
    case Op::kGELU:
      return in;
    case Op::kChannelShuffle: {
      c.check(in.size() == 3, "expects a CxHxW input, got ", shape_str(in));
      const auto& perm = n.attrs.perm;
      c.check(static_cast<int64_t>(perm.size()) == in[0], "perm has ", perm.size(), " entries for ",
              in[0], " channels");
      std::vector<char> seen(perm.size(), 0);
      for (int64_t j : perm) {
        c.check(j >= 0 && j < in[0] && !seen[j], "perm must be a permutation of 0..", in[0] - 1);
        seen[j] = 1;
      }
      return in;
    }
    case Op::kSliceChannels:
      c.check(in.size() == 3, "expects a CxHxW input, got ", shape_str(in));
      c.check(n.attrs.start >= 0 && n.attrs.start < n.attrs.end && n.attrs.end <= in[0],
              "channels [", n.attrs.start, ", ", n.attrs.end, ") are not a non-empty range of ",
              in[0]);
      return {n.attrs.end - n.attrs.start, in[1], in[2]};
    case Op::kLayerNorm2d:
      c.check(in.size() == 3, "expects a CxHxW input, got ", shape_str(in));
      c.check_vec(c.param("weight"), in[0], "weight");
      c.check_vec(c.param("bias"), in[0], "bias");
      c.check(n.attrs.eps > 0, "eps must be > 0");
      return in;
    case Op::kHardSigmoid:
      c.check(std::isfinite(n.attrs.alpha) && std::isfinite(n.attrs.beta),
              "alpha and beta must be finite");
      return in;
    case Op::kMul: {
      const Shape& other = ins[1];
      if (other == in) return in;
      // A per-channel gate: [C,1,1] times [C,H,W], either way round.
      auto gate_of = [](const Shape& g, const Shape& x) {
        return g.size() == 3 && x.size() == 3 && g[0] == x[0] && g[1] == 1 && g[2] == 1;
      };
      c.check(gate_of(in, other) || gate_of(other, in),
              "inputs must have equal shapes or be CxHxW and Cx1x1, got ", shape_str(in), " and ",
              shape_str(other));
      return gate_of(in, other) ? other : in;
    }
    case Op::kDropout:
      c.check(n.attrs.p >= 0 && n.attrs.p < 1, "p must be in [0, 1), got ", n.attrs.p);
      return in;
    case Op::kMaxPool2d:
    case Op::kAvgPool2d:
      return infer_pool(c, in);
    case Op::kGlobalAvgPool:
      c.check(in.size() == 3, "expects a CxHxW input, got ", shape_str(in));
      return {in[0], 1, 1};
    case Op::kFlatten:
      return {bounded_numel(in)};  // the input's shape was bounded when it was inferred
    case Op::kLinear: {
      c.check(in.size() == 1, "expects a flat input (add a flatten node), got ", shape_str(in));
      const auto& w = c.param("weight");
      c.check(w.dim() == 2, "weight must be 2-D [out, in], got ", w.sizes());
      c.check(w.size(1) == in[0], "weight expects ", w.size(1), " inputs, input has ", in[0]);
      if (n.params.count("bias")) c.check_vec(n.params.at("bias"), w.size(0), "bias");
      return {w.size(0)};
    }
    case Op::kAdd:
      for (const auto& s : ins)
        c.check(s == in, "inputs must have equal shapes, got ", shape_str(in), " and ",
                shape_str(s));
      return in;
    case Op::kConcat: {
      Shape out = in;
      c.check(in.size() == 3, "expects CxHxW inputs, got ", shape_str(in));
      for (size_t i = 1; i < ins.size(); ++i) {
        const auto& s = ins[i];
        c.check(s.size() == 3 && s[1] == in[1] && s[2] == in[2], "inputs must agree in HxW, got ",
                shape_str(in), " and ", shape_str(s));
        out[0] += s[0];
      }
      return out;
    }
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled op");
}

}  // namespace

int64_t pool_out(int64_t in, int64_t kernel, int64_t stride, int64_t padding, bool ceil_mode) {
  return window_out(in, kernel, stride, padding, 1, ceil_mode);
}

std::map<int, Shape> infer_shapes(const Graph& graph) {
  TORCH_CHECK(graph.input_shape.size() == 3 || graph.input_shape.size() == 1,
              "graph input shape must be CxHxW, got ", shape_str(graph.input_shape));
  for (auto d : graph.input_shape)
    TORCH_CHECK(d >= 1 && d <= kMaxDimension, "graph input shape ", shape_str(graph.input_shape),
                ": every dimension must be in [1, ", kMaxDimension, "]");
  TORCH_CHECK(bounded_numel(graph.input_shape) > 0, "graph input shape ",
              shape_str(graph.input_shape), " has more than 2^32 entries");
  std::map<int, Shape> shapes{{kGraphInput, graph.input_shape}};
  std::set<std::string> names;
  for (const auto& n : graph.nodes) {
    TORCH_CHECK(n.id > 0, "node '", n.name, "' has invalid id ", n.id);
    TORCH_CHECK(!n.name.empty(), "node ", n.id, " (", op_name(n.op), ") has no name");
    TORCH_CHECK(names.insert(n.name).second, "duplicate node name '", n.name, "'");
    TORCH_CHECK(!shapes.count(n.id), "node '", n.name, "': duplicate id ", n.id);
    std::vector<Shape> ins;
    for (int in : n.inputs) {
      auto it = shapes.find(in);
      TORCH_CHECK(it != shapes.end(), "node '", n.name, "' (", op_name(n.op), "): input ", in,
                  " is not defined before it");
      ins.push_back(it->second);
    }
    Shape out = infer_node(n, ins);
    TORCH_CHECK(bounded_numel(out) > 0, "node '", n.name, "' (", op_name(n.op), "): output ",
                shape_str(out), " is empty or has a dimension above ", kMaxDimension,
                " or more than 2^32 entries");
    shapes[n.id] = std::move(out);
  }
  TORCH_CHECK(shapes.count(graph.output) && graph.output != kGraphInput, "graph output ",
              graph.output, " is not a node of the graph");
  return shapes;
}

}  // namespace nnslim
