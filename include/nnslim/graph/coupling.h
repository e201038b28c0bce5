// Channel coupling ("dependency groups", DESIGN.md §1): which channel dimensions must be cut
// together. Every channel dimension in the graph belongs to one *group*; pruning channel k of a
// group removes, everywhere at once:
//   - output filter k of every Conv2d/Linear that produces the group (weight dim 0, bias),
//   - entry k of every BatchNorm on it (weight, bias, running stats),
//   - filter k of every depthwise conv on it (its input and output are the same group),
//   - input slice k of every Conv2d/Linear that reads it (weight dim 1; through a Flatten, the
//     k-th block of H*W columns; through a Concat, at the group's offset in the concatenation).
// Add ties all its inputs into one group (a residual stage is one group); so does Mul (in a
// squeeze-excitation block the gate conv's outputs are tied to the channels they scale, while
// the squeeze conv's outputs are a group of their own). Elementwise activations and pools pass
// channels through; a channel shuffle permutes a layout's channels and a channel slice takes a
// range of them (ShuffleNet), so a group may be spread over many positions of a value, and
// surgery rewrites the shuffle's permutation and the slice's range for the kept channels. The
// graph input and the graph output (classifier logits) are never prunable; nor are groups
// touching a grouped (non-depthwise) conv, groups a LayerNorm2d normalises (every channel's
// value depends on all the others: "layernorm over channels"), groups whose Sigmoid /
// HardSigmoid output reaches a conv or linear layer without being multiplied by a value of the
// same channels (a zeroed channel is 0.5 there, so cutting it would change the result), or any
// node the user excludes by name.
#pragma once

#include "nnslim/graph/graph.h"

#include <set>
#include <string>
#include <vector>

namespace nnslim {

// A run of channels of one group inside a value's channel (or feature) dimension: channel
// `offset + i` of the group is at positions [pos + i*mult, pos + (i+1)*mult) of the dimension,
// where pos is the sum of len*mult of the segments before it. mult > 1 after a Flatten (H*W).
struct Segment {
  int group = -1;
  int64_t offset = 0;
  int64_t len = 0;
  int64_t mult = 1;
};
using Layout = std::vector<Segment>;

// One parameter dimension indexed by a layout: tensor `param` (or buffer) of node `node`,
// dimension `dim`, laid out as `layout`.
struct ParamDim {
  int node = -1;
  std::string param;  // "weight", "bias", "running_mean", ...
  bool buffer = false;
  int64_t dim = 0;
  bool out_side = true;  // part of the channel's own output (zeroing it zeroes the channel)
};

struct ChannelGroup {
  int id = -1;
  int64_t channels = 0;
  bool prunable = true;
  std::string why_not;           // reason when not prunable
  std::vector<ParamDim> params;  // every tensor dimension that this group indexes
  std::vector<int> producers;    // Conv2d/Linear nodes whose outputs form this group
  std::vector<int> norms;        // BatchNorm nodes on it
  std::string name;              // a readable name (first producer's name)
};

struct Coupling {
  std::vector<ChannelGroup> groups;
  std::map<int, Layout> layouts;      // value id -> layout of its channel / feature dimension
  std::vector<int> prunable() const;  // ids of prunable groups
};

// Analyses a valid graph. Nodes named in `exclude` make their groups unprunable.
Coupling analyze_coupling(const Graph& graph, const std::set<std::string>& exclude = {});

// Positions along a dimension with this layout that belong to channels of `group` listed in
// `channels` (sorted, unique), or -- if `keep_others` -- all positions except those of the group's
// channels that are *not* listed. Used for slicing.
std::vector<int64_t> layout_positions(const Layout& layout, int group,
                                      const std::vector<int64_t>& channels, bool keep_others);

// Multi-group form for slicing several groups at once: positions whose channel is kept, where a
// channel of a group in `keep` is kept iff listed, and channels of other groups always are.
std::vector<int64_t> layout_positions(const Layout& layout,
                                      const std::map<int, std::vector<int64_t>>& keep);

// Value id whose layout indexes `pd` (the node's output for out-side dims, else its input).
int layout_value(const Graph& graph, const ParamDim& pd);

// Rows = the group's channels: [channels, entries] with every entry of `pd` that belongs to the
// channel (e.g. a producer's filter, or a consumer's input slice). Where the dimension holds only
// some of the group's channels (after a ShuffleNet channel slice), the others' rows are zeros,
// and every row is padded with zeros to the longest.
torch::Tensor channel_rows(const Graph& graph, const Coupling& c, const ChannelGroup& g,
                           const ParamDim& pd);

// The channels of group g that output exact zeros: every out-side parameter entry of the channel
// (producer filters and biases, BN gamma and beta, depthwise filters) is zero. Bool [channels],
// on the CPU. Removing such channels (graph/surgery.h: prune_groups) is exact.
torch::Tensor zero_output_channels(const Graph& graph, const Coupling& c, const ChannelGroup& g);

// The channels to keep when the zero ones go: the indices where `zero` (bool [channels]) is
// false, in order, or {0} when every channel is zero (a group keeps one channel).
std::vector<int64_t> channels_to_keep(const torch::Tensor& zero);

}  // namespace nnslim
