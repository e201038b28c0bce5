#include "nnslim/graph/lowering.h"

#include "nnslim/graph/unified_file.h"

#include <torch/torch.h>

#include <algorithm>

namespace nnslim {

WeightStamp WeightStamp::of(const torch::Tensor& w) {
  return {w.data_ptr(), static_cast<int64_t>(w._version()), w.sizes().vec()};
}

bool WeightStamp::matches(const torch::Tensor& w) const {
  return w.defined() && w.data_ptr() == data && static_cast<int64_t>(w._version()) == version &&
         w.sizes().vec() == sizes;
}

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
  if (second.inputs.size() != 1 || second.inputs[0] != first.id || g.output == first.id)
    return false;
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
  n.kernel = ConvKernel::kDense;  // whatever second ran by, the new node starts dense
  n.kernel_data.reset();
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
              g.node(p.second).name,
              "' cannot be fused (needs a stride-1 undilated kxk conv read only by a 1x1 conv)");
  Node f = pair_as_one_node(g, p);
  auto data = std::make_shared<ConvKernelData>();
  data->first_weight = g.node(p.first).params.at("weight").detach();
  f.kernel = ConvKernel::kFusedPair;
  f.kernel_data = std::move(data);
  return f;
}

void fuse_conv_pair(Graph& g, const ConvPair& p) { replace_pair(g, p, fused_conv_pair(g, p)); }

bool can_sparsify_conv(const Node& n) {
  if (n.op != Op::kConv2d || n.attrs.groups != 1 || n.kernel == ConvKernel::kFusedPair)
    return false;
  const auto& w = n.params.at("weight");
  return w.dim() == 4 && w.scalar_type() == torch::kFloat && w.device().is_cpu();
}

void sparsify_conv(Node& n, SparseConvKernel kernel) {
  TORCH_CHECK(can_sparsify_conv(n), "node '", n.name, "' is not an ungrouped float32 CPU conv");
  const auto& w = n.params.at("weight");
  auto data = std::make_shared<ConvKernelData>();
  data->source = WeightStamp::of(w);
  data->sparse = to_sparse_conv_weight(w);
  data->sparse_kernel = kernel;
  n.kernel = ConvKernel::kSparse;
  n.kernel_data = std::move(data);
}

namespace {
// The kernel data of `n` if its kernel is `kernel` and the data is still current.
const ConvKernelData* current_data(const Node& n, ConvKernel kernel) {
  if (n.op != Op::kConv2d || n.kernel != kernel || !n.kernel_data) return nullptr;
  const auto& w = n.params.at("weight");
  if (w.dim() != 4 || !w.device().is_cpu() || !n.kernel_data->source.matches(w)) return nullptr;
  return n.kernel_data.get();
}
}  // namespace

std::optional<SparseConvOf> sparse_conv_of(const Node& n) {
  const ConvKernelData* d = current_data(n, ConvKernel::kSparse);
  if (!d) return std::nullopt;
  return SparseConvOf{d->sparse, d->sparse_kernel};
}

void use_unified_kernel(Node& n, const UnifiedLayer& layer) {
  TORCH_CHECK(n.op == Op::kConv2d, "node '", n.name, "' is not a conv");
  const auto& w = n.params.at("weight");
  TORCH_CHECK(w.dim() == 4 && w.device().is_cpu() &&
                  (w.scalar_type() == torch::kFloat || w.scalar_type() == torch::kDouble),
              "node '", n.name, "': the unified kernel needs a float or double CPU conv weight");
  TORCH_CHECK(layer.shape == w.sizes().vec() && layer.dtype == w.scalar_type() &&
                  unified_to_weight(layer).equal(w.detach()),
              "node '", n.name, "': the unified layer is not this conv's weight");
  auto data = std::make_shared<ConvKernelData>();
  data->source = WeightStamp::of(w);
  data->unified_layer = layer;
  data->unified = std::make_shared<UnifiedConv2d>(layer, n.attrs);
  n.kernel = ConvKernel::kUnified;
  n.kernel_data = std::move(data);
}

int64_t use_unified_kernels(Graph& g) {
  int64_t count = 0;
  for (const auto& [name, block] : unified_layer_blocks(g)) {
    Node* n = g.find(name);
    TORCH_CHECK(n, "graph metadata names unified layer '", name,
                "', which the graph does not have");
    if (n->op != Op::kConv2d) continue;  // linear layers have no unified kernel
    use_unified_kernel(*n, unified_from_weight(n->params.at("weight"), block));
    ++count;
  }
  return count;
}

const UnifiedConv2d* unified_conv_of(const Node& n) {
  const ConvKernelData* d = current_data(n, ConvKernel::kUnified);
  return d ? d->unified.get() : nullptr;
}

}  // namespace nnslim
