#include "nnslim/graph/coupling.h"

#include "nnslim/graph/shape.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

namespace nnslim {

namespace {

// Union-find over provisional group ids.
struct Dsu {
  std::vector<int> parent;
  int make() {
    parent.push_back(static_cast<int>(parent.size()));
    return parent.back();
  }
  int find(int x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  }
  void unite(int a, int b) { parent[find(a)] = find(b); }
};

bool is_depthwise(const Node& n) {
  if (n.op != Op::kConv2d || n.attrs.groups == 1) return false;
  const auto& w = n.params.at("weight");
  return w.size(1) == 1 && w.size(0) == n.attrs.groups;
}

// Layouts that an Add can tie together segment by segment.
bool same_shape(const Layout& a, const Layout& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].len != b[i].len || a[i].mult != b[i].mult || a[i].offset != b[i].offset) return false;
  return true;
}

// One segment of length 1 per position (mult kept), and back to maximal runs.
Layout per_channel(const Layout& l) {
  Layout out;
  for (const auto& s : l)
    for (int64_t i = 0; i < s.len; ++i) out.push_back(Segment{s.group, s.offset + i, 1, s.mult});
  return out;
}
Layout merged(const Layout& l) {
  Layout out;
  for (const auto& s : l) {
    if (!out.empty() && out.back().group == s.group && out.back().mult == s.mult &&
        out.back().offset + out.back().len == s.offset) {
      out.back().len += s.len;
    } else {
      out.push_back(s);
    }
  }
  return out;
}

}  // namespace

std::vector<int> Coupling::prunable() const {
  std::vector<int> out;
  for (const auto& g : groups)
    if (g.prunable) out.push_back(g.id);
  return out;
}

Coupling analyze_coupling(const Graph& graph, const std::set<std::string>& exclude) {
  auto shapes = infer_shapes(graph);
  Dsu dsu;
  std::map<int, int64_t> size;       // provisional group -> channels
  std::map<int, std::string> block;  // provisional group -> reason
  std::map<int, Layout> layouts;
  auto fresh = [&](int64_t channels) {
    int g = dsu.make();
    size[g] = channels;
    return g;
  };
  auto whole = [](int g, int64_t n) { return Layout{Segment{g, 0, n, 1}}; };
  auto block_layout = [&](const Layout& l, const std::string& why) {
    for (const auto& s : l) block.emplace(s.group, why);
  };

  // A grouped conv (G groups, not depthwise) prunes by whole conv groups: unit k is the Cin/G
  // input channels and the Cout/G output channels of its group k, so the conv keeps its widths
  // per group and loses groups (ResNeXt, RegNet). Its input's channel group is re-expressed in
  // units -- G channels of Cin/G positions each -- wherever it is held, which needs every
  // layout holding it to hold it whole; otherwise the conv keeps its channels whole (false).
  // Re-expresses the channel group of `root` (C channels) as C/width units of `width`
  // channels each, wherever a layout holds it -- which needs every layout to hold it whole.
  auto to_units = [&](int root, int64_t width) {
    const int64_t c = size.at(root);
    if (width < 1 || c % width != 0) return false;
    for (const auto& [v, l] : layouts)
      for (const auto& seg : l)
        if (dsu.find(seg.group) == root && (seg.offset != 0 || seg.len != c)) return false;
    for (auto& [v, l] : layouts)
      for (auto& seg : l)
        if (dsu.find(seg.group) == root) {
          seg.len = c / width;
          seg.mult *= width;
        }
    size[root] = c / width;
    return true;
  };
  auto couple_conv_groups = [&](const Node& n, const Layout& in) {
    const int64_t G = n.attrs.groups, cin = G * n.params.at("weight").size(1);
    const int64_t cout = n.params.at("weight").size(0);
    if (in.size() != 1 || in[0].mult != 1 || cout % G != 0) return false;
    const int root = dsu.find(in[0].group);
    if (in[0].offset != 0 || in[0].len != cin || size.at(root) != cin) return false;
    if (!to_units(root, cin / G)) return false;
    layouts[n.id] = Layout{Segment{in[0].group, 0, G, cout / G}};
    return true;
  };
  // An Add or Mul of a value held in units (after a grouped conv) and one held channel by
  // channel (a squeeze-excitation gate, a shortcut): the second is re-expressed in the same
  // units when it can be, so that the two tie (false: they cannot).
  auto match_units = [&](const Layout& a, const Layout& b) {
    if (a.size() != 1 || b.size() != 1 || a[0].offset != 0 || b[0].offset != 0) return false;
    const Layout& units = a[0].mult > b[0].mult ? a : b;
    const Layout& plain = a[0].mult > b[0].mult ? b : a;
    if (plain[0].mult != 1 || units[0].len * units[0].mult != plain[0].len) return false;
    const int root = dsu.find(plain[0].group);
    return size.at(root) == plain[0].len && to_units(root, units[0].mult);
  };

  const Shape& in_shape = graph.input_shape;
  int gin = fresh(in_shape[0]);
  layouts[kGraphInput] = whole(gin, in_shape[0]);
  block[gin] = "the network input";

  // Zeroing a group's channels (zero_channels) makes them exact zeros, which is what makes
  // their removal exact. Sigmoid and HardSigmoid turn a zero into a non-zero (0.5): their
  // output is "live" on zeroed channels until a BatchNorm, a depthwise conv or a Mul by a value
  // that is zero there clears it (x * sigmoid-gate in squeeze-excitation). A conv or linear
  // layer reading a live value would lose a real contribution when the channel is cut, so the
  // groups it reads are not prunable.
  std::map<int, bool> live;
  live[kGraphInput] = false;
  for (const auto& n : graph.nodes) {
    const Layout& in = layouts.at(n.inputs[0]);
    bool any_live = false, all_live = true;
    for (int v : n.inputs) {
      any_live = any_live || live.at(v);
      all_live = all_live && live.at(v);
    }
    switch (n.op) {
      case Op::kSigmoid:
      case Op::kHardSigmoid:
        live[n.id] = true;
        break;
      case Op::kBatchNorm2d:
        live[n.id] = false;
        break;
      case Op::kMul:
        live[n.id] = all_live;
        break;
      case Op::kConv2d:  // a depthwise conv's zeroed filters clear the channels it reads
        live[n.id] = false;
        if (any_live && !is_depthwise(n))
          block_layout(in, "a sigmoid's output read by '" + n.name +
                               "' (zeroed channels are not zero there)");
        break;
      case Op::kLinear:
        live[n.id] = false;
        if (any_live)
          block_layout(in, "a sigmoid's output read by '" + n.name +
                               "' (zeroed channels are not zero there)");
        break;
      default:
        live[n.id] = any_live;
    }
    switch (n.op) {
      case Op::kConv2d: {
        int64_t out = n.params.at("weight").size(0);
        if (n.attrs.groups == 1) {
          layouts[n.id] = whole(fresh(out), out);
        } else if (is_depthwise(n)) {
          layouts[n.id] = in;  // channel k in -> channel k out
        } else if (!couple_conv_groups(n, in)) {
          int g = fresh(out);
          layouts[n.id] = whole(g, out);
          block[g] = "a grouped convolution ('" + n.name + "')";
          block_layout(in, block[g]);
        }
        break;
      }
      case Op::kLinear: {
        int64_t out = n.params.at("weight").size(0);
        layouts[n.id] = whole(fresh(out), out);
        break;
      }
      case Op::kFlatten: {
        const Shape& s = shapes.at(n.inputs[0]);
        int64_t spatial = 1;
        for (size_t i = 1; i < s.size(); ++i) spatial *= s[i];
        Layout l = in;
        for (auto& seg : l) seg.mult *= spatial;
        layouts[n.id] = l;
        break;
      }
      case Op::kAdd:
      case Op::kMul: {  // a Mul's gate [C,1,1] has the same channel layout as its [C,H,W] input
        for (size_t i = 1; i < n.inputs.size(); ++i) {
          const Layout& other = layouts.at(n.inputs[i]);
          if (same_shape(in, other) || (match_units(in, other) && same_shape(in, other))) {
            for (size_t k = 0; k < in.size(); ++k) dsu.unite(other[k].group, in[k].group);
          } else {
            const std::string why = std::string("an ") + op_name(n.op) +
                                    " of differently concatenated inputs ('" + n.name + "')";
            block_layout(in, why);
            block_layout(other, why);
          }
        }
        layouts[n.id] = in;
        break;
      }
      case Op::kChannelShuffle: {  // output channel j is input channel perm[j]
        const Layout ch = per_channel(in);
        Layout l;
        for (int64_t j : n.attrs.perm) l.push_back(ch.at(j));
        layouts[n.id] = merged(l);
        break;
      }
      case Op::kSliceChannels: {
        const Layout ch = per_channel(in);
        layouts[n.id] = merged(Layout(ch.begin() + n.attrs.start, ch.begin() + n.attrs.end));
        break;
      }
      case Op::kLayerNorm2d:  // each output depends on every input channel of its pixel
        block_layout(in, "layernorm over channels ('" + n.name + "')");
        layouts[n.id] = in;
        break;
      case Op::kConcat: {
        Layout l;
        for (int v : n.inputs) {
          const Layout& part = layouts.at(v);
          l.insert(l.end(), part.begin(), part.end());
        }
        layouts[n.id] = l;
        break;
      }
      default:  // BN, activations, pools, dropout, identity: channel k in -> channel k out
        layouts[n.id] = in;
    }
    if (exclude.count(n.name)) block_layout(layouts[n.id], "excluded ('" + n.name + "')");
  }
  block_layout(layouts.at(graph.output), "the network output");

  // Renumber union-find roots as 0..G-1.
  std::map<int, int> final_id;
  Coupling c;
  auto resolve = [&](int g) {
    int root = dsu.find(g);
    auto it = final_id.find(root);
    if (it != final_id.end()) return it->second;
    int id = static_cast<int>(c.groups.size());
    final_id[root] = id;
    ChannelGroup cg;
    cg.id = id;
    cg.channels = size.at(root);
    c.groups.push_back(cg);
    return id;
  };
  for (auto& [v, l] : layouts)
    for (auto& s : l) s.group = resolve(s.group);
  for (const auto& [g, why] : block) {
    auto& cg = c.groups[resolve(g)];
    if (cg.prunable) {
      cg.prunable = false;
      cg.why_not = why;
    }
  }
  c.layouts = std::move(layouts);

  // Attach every channel-indexed tensor dimension to the groups of its layout.
  auto attach = [&](int node, int value, const std::string& key, bool buffer, int64_t dim,
                    bool out_side) {
    std::set<int> seen;
    for (const auto& s : c.layouts.at(value))
      if (seen.insert(s.group).second)
        c.groups[s.group].params.push_back(ParamDim{node, key, buffer, dim, out_side});
  };
  for (const auto& n : graph.nodes) {
    bool has_bias = n.params.count("bias") > 0;
    if (n.op == Op::kConv2d) {  // grouped convs: the output side only (in/groups stays)
      attach(n.id, n.id, "weight", false, 0, true);
      if (has_bias) attach(n.id, n.id, "bias", false, 0, true);
      if (n.attrs.groups == 1) attach(n.id, n.inputs[0], "weight", false, 1, false);
      if (n.attrs.groups == 1) c.groups[c.layouts.at(n.id)[0].group].producers.push_back(n.id);
    } else if (n.op == Op::kLinear) {
      attach(n.id, n.id, "weight", false, 0, true);
      if (has_bias) attach(n.id, n.id, "bias", false, 0, true);
      attach(n.id, n.inputs[0], "weight", false, 1, false);
      c.groups[c.layouts.at(n.id)[0].group].producers.push_back(n.id);
    } else if (n.op == Op::kBatchNorm2d) {
      for (const char* k : {"weight", "bias"}) attach(n.id, n.id, k, false, 0, true);
      for (const char* k : {"running_mean", "running_var"}) attach(n.id, n.id, k, true, 0, true);
      for (const auto& s : c.layouts.at(n.id)) {
        auto& norms = c.groups[s.group].norms;
        if (std::find(norms.begin(), norms.end(), n.id) == norms.end()) norms.push_back(n.id);
      }
    }
  }
  for (auto& g : c.groups) {
    if (g.prunable && g.producers.empty()) {
      g.prunable = false;
      g.why_not = "no convolution or linear layer produces it";
    }
    g.name =
        g.producers.empty() ? "group" + std::to_string(g.id) : graph.node(g.producers.front()).name;
  }
  return c;
}

int layout_value(const Graph& graph, const ParamDim& pd) {
  return pd.out_side ? pd.node : graph.node(pd.node).inputs[0];
}

std::vector<int64_t> layout_positions(const Layout& layout, int group,
                                      const std::vector<int64_t>& channels, bool keep_others) {
  std::vector<int64_t> out;
  int64_t pos = 0;
  for (const auto& s : layout) {
    for (int64_t i = 0; i < s.len; ++i) {
      bool sel = s.group == group
                     ? std::binary_search(channels.begin(), channels.end(), s.offset + i)
                     : keep_others;
      if (sel)
        for (int64_t m = 0; m < s.mult; ++m) out.push_back(pos + i * s.mult + m);
    }
    pos += s.len * s.mult;
  }
  return out;
}

std::vector<int64_t> layout_positions(const Layout& layout,
                                      const std::map<int, std::vector<int64_t>>& keep) {
  std::vector<int64_t> out;
  int64_t pos = 0;
  for (const auto& s : layout) {
    auto it = keep.find(s.group);
    for (int64_t i = 0; i < s.len; ++i) {
      bool sel = it == keep.end() ||
                 std::binary_search(it->second.begin(), it->second.end(), s.offset + i);
      if (sel)
        for (int64_t m = 0; m < s.mult; ++m) out.push_back(pos + i * s.mult + m);
    }
    pos += s.len * s.mult;
  }
  return out;
}

torch::Tensor channel_rows(const Graph& graph, const Coupling& c, const ChannelGroup& g,
                           const ParamDim& pd) {
  const Node& n = graph.node(pd.node);
  const torch::Tensor& t = pd.buffer ? n.buffers.at(pd.param) : n.params.at(pd.param);
  const Layout& layout = c.layouts.at(layout_value(graph, pd));
  // positions[k] = all positions of channel k along the dimension.
  std::vector<std::vector<int64_t>> positions(g.channels);
  int64_t pos = 0;
  for (const auto& s : layout) {
    if (s.group == g.id)
      for (int64_t i = 0; i < s.len; ++i)
        for (int64_t m = 0; m < s.mult; ++m)
          positions[s.offset + i].push_back(pos + i * s.mult + m);
    pos += s.len * s.mult;
  }
  // A value may hold only some of a group's channels (ShuffleNet: a slice passes some on, its
  // other half is read by a conv and ends there): rows are padded with zeros to the longest.
  size_t longest = 0;
  for (const auto& p : positions) longest = std::max(longest, p.size());
  auto moved = t.detach().movedim(pd.dim, 0);
  const int64_t zero_row = moved.size(0);
  std::vector<int64_t> flat;
  bool padded = false;
  for (const auto& p : positions) {
    flat.insert(flat.end(), p.begin(), p.end());
    flat.insert(flat.end(), longest - p.size(), zero_row);
    padded = padded || p.size() < longest;
  }
  if (padded) moved = torch::cat({moved, torch::zeros_like(moved.narrow(0, 0, 1))});
  auto idx = torch::tensor(flat, torch::kLong).to(t.device());
  return moved.index_select(0, idx).reshape({g.channels, -1});
}

torch::Tensor zero_output_channels(const Graph& graph, const Coupling& c, const ChannelGroup& g) {
  torch::NoGradGuard no_grad;
  auto zero = torch::ones({g.channels}, torch::kBool);
  for (const auto& pd : g.params)
    if (pd.out_side && !pd.buffer)
      zero.logical_and_((channel_rows(graph, c, g, pd) == 0).all(1).cpu());
  return zero;
}

std::vector<int64_t> channels_to_keep(const torch::Tensor& zero) {
  std::vector<int64_t> keep;
  auto z = zero.to(torch::kCPU, torch::kBool).contiguous();
  auto a = z.accessor<bool, 1>();
  for (int64_t i = 0; i < z.size(0); ++i)
    if (!a[i]) keep.push_back(i);
  if (keep.empty()) keep.push_back(0);
  return keep;
}

}  // namespace nnslim
