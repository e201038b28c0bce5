#include "nnslim/graph/surgery.h"

#include "nnslim/graph/shape.h"

#include <torch/torch.h>

#include <algorithm>
#include <set>
#include <tuple>

namespace nnslim {

namespace {

const ChannelGroup& group_of(const Coupling& c, int id) {
  TORCH_CHECK(id >= 0 && id < static_cast<int>(c.groups.size()), "no channel group ", id);
  return c.groups[id];
}

torch::Tensor& tensor_of(Node& n, const ParamDim& pd) {
  return pd.buffer ? n.buffers.at(pd.param) : n.params.at(pd.param);
}

}  // namespace

Graph prune_groups(const Graph& graph, const Coupling& coupling,
                   const std::map<int, std::vector<int64_t>>& keep) {
  for (const auto& [id, k] : keep) {
    const ChannelGroup& g = group_of(coupling, id);
    TORCH_CHECK(g.prunable, "channel group '", g.name, "' cannot be pruned: it touches ",
                g.why_not);
    TORCH_CHECK(!k.empty(), "prune_channels: group '", g.name, "' must keep at least one channel");
    TORCH_CHECK(
        std::is_sorted(k.begin(), k.end()) && std::adjacent_find(k.begin(), k.end()) == k.end(),
        "prune_channels: keep indices must be sorted and unique");
    TORCH_CHECK(k.front() >= 0 && k.back() < g.channels,
                "prune_channels: keep index out of "
                "range [0, ",
                g.channels, ") for group '", g.name, "'");
  }
  // Every tensor dimension touched by any of the groups, sliced once with the positions of all
  // of them (a BatchNorm after a Concat is indexed by several groups along the same dimension).
  std::set<std::tuple<int, std::string, bool, int64_t>> done;
  Graph out = graph.clone();
  torch::NoGradGuard no_grad;
  for (const auto& [id, k] : keep) {
    for (const auto& pd : coupling.groups[id].params) {
      if (!done.insert({pd.node, pd.param, pd.buffer, pd.dim}).second) continue;
      torch::Tensor& t = tensor_of(out.node(pd.node), pd);
      auto pos = layout_positions(coupling.layouts.at(layout_value(graph, pd)), keep);
      auto sliced = t.index_select(pd.dim, torch::tensor(pos, torch::kLong).to(t.device()));
      t = pd.buffer ? sliced.contiguous() : sliced.contiguous().requires_grad_(true);
    }
  }
  // A grouped conv (depthwise ones too) keeps its output channels per group and loses groups
  // (graph/coupling.h prunes it by whole conv groups).
  for (auto& n : out.nodes) {
    if (n.op != Op::kConv2d || n.attrs.groups == 1) continue;
    const Node& before = graph.node(n.id);
    const int64_t per_group = before.params.at("weight").size(0) / before.attrs.groups;
    n.attrs.groups = n.params.at("weight").size(0) / per_group;
  }
  // Channel shuffles and slices index positions of their input: renumber them for the kept
  // positions (a kept output position reads a kept input position; the layouts say which).
  for (auto& n : out.nodes) {
    if (n.op != Op::kChannelShuffle && n.op != Op::kSliceChannels) continue;
    const auto kept_in = layout_positions(coupling.layouts.at(n.inputs[0]), keep);
    auto rank = [&](int64_t pos) {  // new index of a kept input position
      auto it = std::lower_bound(kept_in.begin(), kept_in.end(), pos);
      return static_cast<int64_t>(it - kept_in.begin());
    };
    if (n.op == Op::kSliceChannels) {
      n.attrs.start = rank(n.attrs.start);
      n.attrs.end = rank(n.attrs.end);
      TORCH_CHECK(n.attrs.start < n.attrs.end, "pruning would leave the channel slice '", n.name,
                  "' empty (every channel it takes is cut); keep at least one of them");
    } else {
      std::vector<int64_t> perm;
      for (int64_t j : layout_positions(coupling.layouts.at(n.id), keep))
        perm.push_back(rank(n.attrs.perm.at(j)));
      n.attrs.perm = std::move(perm);
    }
  }
  validate(out);
  return out;
}

Graph prune_channels(const Graph& graph, const Coupling& coupling, int group_id,
                     const std::vector<int64_t>& keep) {
  return prune_groups(graph, coupling, {{group_id, keep}});
}

void zero_channels(Graph& graph, const Coupling& coupling, int group_id,
                   const std::vector<int64_t>& channels) {
  const ChannelGroup& g = group_of(coupling, group_id);
  std::vector<int64_t> sorted = channels;
  std::sort(sorted.begin(), sorted.end());
  torch::NoGradGuard no_grad;
  for (const auto& pd : g.params) {
    if (!pd.out_side || pd.buffer) continue;
    torch::Tensor& t = tensor_of(graph.node(pd.node), pd);
    auto pos =
        layout_positions(coupling.layouts.at(layout_value(graph, pd)), group_id, sorted, false);
    t.index_fill_(pd.dim, torch::tensor(pos, torch::kLong).to(t.device()), 0.0);
  }
}

int64_t round_channels(int64_t count, int64_t multiple, int64_t total) {
  count = std::max<int64_t>(1, std::min(count, total));
  if (multiple <= 1) return count;
  int64_t r = (count + multiple - 1) / multiple * multiple;
  return std::min(r, total);
}

}  // namespace nnslim
