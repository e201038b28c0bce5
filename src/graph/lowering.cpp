#include "nnslim/graph/lowering.h"

#include <torch/torch.h>

#include <algorithm>

namespace nnslim {

namespace {
bool is_pointwise(const Node& n) {
  const auto& a = n.attrs;
  auto all = [](const std::vector<int64_t>& v, int64_t x) {
    return std::all_of(v.begin(), v.end(), [&](int64_t e) { return e == x; });
  };
  return n.op == Op::kConv2d && a.groups == 1 && all(a.kernel, 1) && all(a.stride, 1) &&
         all(a.padding, 0) && all(a.dilation, 1);
}

bool mergeable(const Graph& g, const Node& first, const Node& second) {
  if (first.op != Op::kConv2d || first.attrs.groups != 1 || !is_pointwise(second)) return false;
  if (second.inputs.size() != 1 || second.inputs[0] != first.id || g.output == first.id) return false;
  auto readers = g.consumers(first.id);
  return readers.size() == 1 && readers[0] == second.id;
}
}  // namespace

std::vector<ConvPair> mergeable_conv_pairs(const Graph& g) {
  std::vector<ConvPair> pairs;
  for (const auto& n : g.nodes) {
    if (n.op != Op::kConv2d || n.inputs.size() != 1 || n.inputs[0] == kGraphInput) continue;
    const Node& first = g.node(n.inputs[0]);
    if (mergeable(g, first, n)) pairs.push_back({first.id, n.id});
  }
  return pairs;
}

namespace {
// The node both rewrites start from: `second` (id, name, weight) reading first's input with
// first's attributes, with first's bias carried through the 1x1: bias W2 . b1 + b2.
Node pair_as_one_node(const Graph& g, const ConvPair& p) {
  const Node& first = g.node(p.first);
  Node n = g.node(p.second);
  n.inputs = first.inputs;
  n.attrs = first.attrs;
  auto b1 = first.params.find("bias");
  if (b1 != first.params.end()) {
    torch::NoGradGuard ng;
    auto w2 = n.params.at("weight").flatten(1);  // [n, r]
    auto b2 = n.params.find("bias");
    auto b = b2 != n.params.end() ? b2->second.clone() : torch::zeros({w2.size(0)}, w2.options());
    n.params["bias"] = b + torch::matmul(w2, b1->second);
  }
  return n;
}
}  // namespace

Node merged_conv(const Graph& g, const ConvPair& p) {
  const Node& first = g.node(p.first);
  const Node& second = g.node(p.second);
  TORCH_CHECK(mergeable(g, first, second), "conv '", first.name, "' and '", second.name,
              "' are not a kxk conv read only by a 1x1 conv");
  torch::NoGradGuard ng;
  const auto& w1 = first.params.at("weight");       // [r, c, kh, kw]
  auto w2 = second.params.at("weight").flatten(1);  // [n, r]
  Node m = pair_as_one_node(g, p);
  m.params["weight"] = torch::matmul(w2, w1.flatten(1))
                           .view({w2.size(0), w1.size(1), w1.size(2), w1.size(3)})
                           .contiguous(w1.suggest_memory_format());
  return m;
}

namespace {
// Puts `replacement` where `second` was and removes `first`.
void replace_pair(Graph& g, const ConvPair& p, Node replacement) {
  g.node(p.second) = std::move(replacement);
  g.nodes.erase(g.nodes.begin() + static_cast<std::ptrdiff_t>(g.index_of(p.first)));
}
}  // namespace

void merge_conv_pair(Graph& g, const ConvPair& p) { replace_pair(g, p, merged_conv(g, p)); }

bool can_fuse_conv_pair(const Graph& g, const ConvPair& p) {
  const Node& first = g.node(p.first);
  const Node& second = g.node(p.second);
  if (!mergeable(g, first, second)) return false;
  const auto& a = first.attrs;
  if (a.kernel.size() != 2 || a.padding.size() != 2) return false;
  for (size_t i = 0; i < 2; ++i)
    if (a.stride[i] != 1 || a.dilation[i] != 1 || a.padding[i] < 0 || a.padding[i] >= a.kernel[i])
      return false;
  return true;
}

Node fused_conv_pair(const Graph& g, const ConvPair& p) {
  TORCH_CHECK(can_fuse_conv_pair(g, p), "conv '", g.node(p.first).name, "' and '",
              g.node(p.second).name, "' cannot be fused (needs a stride-1 undilated kxk conv read only by a 1x1 conv)");
  Node f = pair_as_one_node(g, p);
  f.buffers[kFusedFirstWeight] = g.node(p.first).params.at("weight").detach();
  return f;
}

void fuse_conv_pair(Graph& g, const ConvPair& p) { replace_pair(g, p, fused_conv_pair(g, p)); }

bool can_sparsify_conv(const Node& n) {
  if (n.op != Op::kConv2d || n.attrs.groups != 1 || n.buffers.count(kFusedFirstWeight)) return false;
  const auto& w = n.params.at("weight");
  return w.dim() == 4 && w.scalar_type() == torch::kFloat && w.device().is_cpu();
}

namespace {
// [kernel, data pointer, version counter, N, C, kh, kw] of a conv weight.
std::vector<int64_t> sparse_source(const torch::Tensor& w, SparseConvKernel kernel) {
  return {static_cast<int64_t>(kernel), reinterpret_cast<int64_t>(w.data_ptr()),
          static_cast<int64_t>(w._version()), w.size(0), w.size(1), w.size(2), w.size(3)};
}
}  // namespace

void sparsify_conv(Node& n, SparseConvKernel kernel) {
  TORCH_CHECK(can_sparsify_conv(n), "node '", n.name, "' is not an ungrouped float32 CPU conv");
  const auto& w = n.params.at("weight");
  auto s = to_sparse_conv_weight(w);
  n.buffers[kSparseRowPtr] = s.row_ptr;
  n.buffers[kSparseCols] = s.cols;
  n.buffers[kSparseValues] = s.values;
  n.buffers[kSparseSource] = torch::tensor(sparse_source(w, kernel), torch::kLong);
}

std::optional<SparseConvOf> sparse_conv_of(const Node& n) {
  auto values = n.buffers.find(kSparseValues);
  if (values == n.buffers.end() || n.op != Op::kConv2d) return std::nullopt;
  const auto& w = n.params.at("weight");
  const auto& source = n.buffers.at(kSparseSource);
  if (w.dim() != 4 || !w.device().is_cpu() || !source.device().is_cpu() || source.numel() != 7)
    return std::nullopt;
  const int64_t* src = source.data_ptr<int64_t>();
  const auto now = sparse_source(w, static_cast<SparseConvKernel>(src[0]));
  if (!std::equal(now.begin() + 1, now.end(), src + 1)) return std::nullopt;  // a changed weight
  TORCH_CHECK(src[0] == static_cast<int64_t>(SparseConvKernel::kDirect) ||
                  src[0] == static_cast<int64_t>(SparseConvKernel::kIm2colCsr),
              "node '", n.name, "': unknown sparse kernel ", src[0]);
  SparseConvOf s;
  s.weight.row_ptr = n.buffers.at(kSparseRowPtr);
  s.weight.cols = n.buffers.at(kSparseCols);
  s.weight.values = values->second;
  s.weight.out_channels = w.size(0);
  s.weight.in_channels = w.size(1);
  s.weight.kh = w.size(2);
  s.weight.kw = w.size(3);
  s.kernel = static_cast<SparseConvKernel>(src[0]);
  return s;
}

}  // namespace nnslim
