#include "nnslim/methods/pruning_plan.h"

#include "nnslim/graph/cost.h"
#include "nnslim/graph/shape.h"
#include "nnslim/graph/surgery.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>

namespace nnslim {

namespace {

int64_t min_keep(int64_t channels, const PlanOptions& o) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(channels * (1.0 - o.max_ratio))));
}

}  // namespace

std::vector<int64_t> top_channels(const torch::Tensor& score, int64_t n) {
  auto s = score.to(torch::kCPU, torch::kDouble).contiguous();
  std::vector<int64_t> idx(s.size(0));
  std::iota(idx.begin(), idx.end(), 0);
  const double* v = s.data_ptr<double>();
  // Stable: ties keep the lower index, so plans are deterministic.
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
  idx.resize(n);
  std::sort(idx.begin(), idx.end());
  return idx;
}

KeepPlan plan_by_ratio(const Coupling& coupling, const std::map<int, torch::Tensor>& scores,
                       double ratio, const PlanOptions& o) {
  TORCH_CHECK(ratio >= 0 && ratio < 1, "pruning ratio must be in [0, 1), got ", ratio);
  TORCH_CHECK(o.max_ratio > 0 && o.max_ratio < 1, "max ratio must be in (0, 1)");
  std::map<int, int64_t> keep_n;
  if (!o.global) {
    for (const auto& [id, s] : scores) {
      int64_t c = coupling.groups[id].channels;
      keep_n[id] = std::max(min_keep(c, o), c - static_cast<int64_t>(std::floor(c * ratio)));
    }
  } else {
    // Normalise by the group mean so that groups with different weight scales compete fairly.
    std::vector<std::tuple<double, int, int64_t>> all;
    for (const auto& [id, s] : scores) {
      auto d = s.to(torch::kCPU, torch::kDouble);
      double mean = d.mean().item<double>();
      auto n = mean > 0 ? d / mean : torch::ones_like(d);
      for (int64_t k = 0; k < n.size(0); ++k) all.emplace_back(n[k].item<double>(), id, k);
      keep_n[id] = coupling.groups[id].channels;
    }
    std::stable_sort(all.begin(), all.end());
    int64_t to_remove = static_cast<int64_t>(std::floor(all.size() * ratio));
    for (const auto& [score, id, k] : all) {
      if (to_remove == 0) break;
      if (keep_n[id] > min_keep(coupling.groups[id].channels, o)) {
        --keep_n[id];
        --to_remove;
      }
    }
  }
  KeepPlan plan;
  for (const auto& [id, n] : keep_n) {
    int64_t c = coupling.groups[id].channels;
    int64_t r = round_channels(n, o.round_to, c);
    if (r < c) plan[id] = top_channels(scores.at(id), r);
  }
  return plan;
}

int64_t macs_after(const Graph& graph, const Coupling& coupling, const KeepPlan& plan) {
  // Analytic: pruning changes channel counts, never spatial sizes, so each conv/linear costs
  // (kept output rows) x (kept input columns per group) x kernel x output positions.
  auto shapes = infer_shapes(graph);
  auto kept = [&](int value) {
    return static_cast<int64_t>(layout_positions(coupling.layouts.at(value), plan).size());
  };
  int64_t total = 0;
  for (const auto& n : graph.nodes) {
    if (n.op != Op::kConv2d && n.op != Op::kLinear) continue;
    const auto& w = n.params.at("weight");
    int64_t out = kept(n.id);
    if (n.op == Op::kLinear) {
      total += out * kept(n.inputs[0]);
      continue;
    }
    bool depthwise = n.attrs.groups > 1 && w.size(1) == 1 && w.size(0) == n.attrs.groups;
    int64_t in_per_group = depthwise || n.attrs.groups > 1 ? w.size(1) : kept(n.inputs[0]);
    const auto& s = shapes.at(n.id);
    total += out * in_per_group * w.size(2) * w.size(3) * s[1] * s[2];
  }
  return total;
}

KeepPlan plan_for_macs(const Graph& graph, const Coupling& coupling,
                       const std::map<int, torch::Tensor>& scores, double target,
                       const PlanOptions& o, double tolerance, double* ratio_out) {
  TORCH_CHECK(target > 0 && target <= 1, "target MACs must be a fraction in (0, 1], got ", target);
  int64_t base = count_cost(graph).macs;
  double goal = target * static_cast<double>(base);
  if (ratio_out) *ratio_out = 0;
  if (target >= 1) return {};
  KeepPlan best = plan_by_ratio(coupling, scores, o.max_ratio - 1e-9, o);
  int64_t floor_macs = macs_after(graph, coupling, best);
  TORCH_CHECK(floor_macs <= goal, "cannot reach ", target, "x of the MACs: removing up to ",
              o.max_ratio * 100, "% of every prunable group still leaves ", floor_macs, " of ",
              base, " MACs (", static_cast<double>(floor_macs) / base,
              "x); choose a larger target");
  // MACs fall monotonically (in steps) as the ratio grows: find the smallest ratio that fits.
  double lo = 0, hi = o.max_ratio - 1e-9;
  int64_t best_macs = floor_macs;
  for (int it = 0; it < 40 && hi - lo > 1e-6 && best_macs < goal * (1 - tolerance * 0.5); ++it) {
    double mid = 0.5 * (lo + hi);
    KeepPlan p = plan_by_ratio(coupling, scores, mid, o);
    int64_t m = macs_after(graph, coupling, p);
    if (m <= goal) {
      hi = mid;
      best = std::move(p);
      best_macs = m;
    } else {
      lo = mid;
    }
  }
  // Ratios move whole steps of channels at once; hand back single channels, best first, while
  // the budget allows, so the plan lands as close under the target as the widths permit.
  std::vector<std::tuple<double, int, int64_t>> candidates;  // (-normalised score, group, channel)
  for (const auto& [id, k] : best) {
    auto d = scores.at(id).to(torch::kCPU, torch::kDouble);
    double mean = std::max(1e-30, d.mean().item<double>());
    for (int64_t ch = 0; ch < d.size(0); ++ch)
      if (!std::binary_search(k.begin(), k.end(), ch))
        candidates.emplace_back(-d[ch].item<double>() / mean, id, ch);
  }
  std::sort(candidates.begin(), candidates.end());
  if (o.round_to <= 1) {
    for (const auto& [neg, id, ch] : candidates) {
      if (best_macs >= goal * (1 - tolerance * 0.25)) break;
      KeepPlan trial = best;
      auto& k = trial[id];
      k.insert(std::upper_bound(k.begin(), k.end(), ch), ch);
      if (static_cast<int64_t>(k.size()) == coupling.groups[id].channels) trial.erase(id);
      int64_t m = macs_after(graph, coupling, trial);
      if (m <= goal) {
        best = std::move(trial);
        best_macs = m;
      }
    }
  }
  if (o.round_to > 1) {
    // Same refill in whole multiples: give a group back its best `round_to` removed channels
    // at a time (groups with the most important removed channels first) while the budget allows.
    for (bool grew = true; grew && best_macs < goal * (1 - tolerance * 0.25);) {
      grew = false;
      std::vector<int> order;
      for (const auto& [neg, id, ch] : candidates)
        if (std::find(order.begin(), order.end(), id) == order.end()) order.push_back(id);
      for (int id : order) {
        auto it = best.find(id);
        if (it == best.end()) continue;  // already whole
        KeepPlan trial = best;
        auto& k = trial[id];
        int64_t added = 0;
        for (const auto& [neg, gid, ch] : candidates) {
          if (gid != id || added == o.round_to) continue;
          if (std::binary_search(k.begin(), k.end(), ch)) continue;
          k.insert(std::upper_bound(k.begin(), k.end(), ch), ch);
          ++added;
        }
        if (added == 0) continue;
        if (static_cast<int64_t>(k.size()) >= coupling.groups[id].channels) trial.erase(id);
        int64_t m = macs_after(graph, coupling, trial);
        if (m <= goal) {
          best = std::move(trial);
          best_macs = m;
          grew = true;
          break;
        }
      }
    }
  }
  if (ratio_out) *ratio_out = hi;
  return best;
}

// ---- ChannelMacs --------------------------------------------------------------------------------

ChannelMacs::ChannelMacs(const Graph& graph, const Coupling& coupling, std::vector<int> groups) {
  for (int id : groups) {
    TORCH_CHECK(id >= 0 && id < static_cast<int>(coupling.groups.size()) && !index_.count(id),
                "ChannelMacs: bad or repeated group id ", id);
    const int pos = static_cast<int>(offset_.size());
    index_[id] = pos;
    offset_.push_back(static_cast<int64_t>(flag_group_.size()));
    size_.push_back(coupling.groups[id].channels);
    flag_group_.insert(flag_group_.end(), coupling.groups[id].channels, pos);
  }
  touches_.resize(offset_.size());
  // The same terms as macs_after(): pruning changes channel counts, never spatial sizes.
  auto shapes = infer_shapes(graph);
  for (const auto& n : graph.nodes) {
    if (n.op != Op::kConv2d && n.op != Op::kLinear) continue;
    const auto& w = n.params.at("weight");
    Term t;
    t.out = coupling.layouts.at(n.id);
    if (n.op == Op::kConv2d) {
      const auto& s = shapes.at(n.id);
      t.coef = w.size(2) * w.size(3) * s[1] * s[2];
      if (n.attrs.groups > 1) t.fixed_in = w.size(1);
    }
    if (t.fixed_in == 0) t.in = coupling.layouts.at(n.inputs[0]);
    const int k = static_cast<int>(terms_.size());
    for (const Layout* l : {&t.out, &t.in})
      for (const auto& seg : *l) {
        auto it = index_.find(seg.group);
        if (it != index_.end() &&
            (touches_[it->second].empty() || touches_[it->second].back() != k))
          touches_[it->second].push_back(k);
      }
    terms_.push_back(std::move(t));
  }
}

std::vector<int64_t> ChannelMacs::live_channels(const std::vector<uint8_t>& off) const {
  TORCH_CHECK(static_cast<int64_t>(off.size()) == flags(), "ChannelMacs: ", off.size(),
              " flags for ", flags(), " channels");
  std::vector<int64_t> live(size_);
  for (size_t k = 0; k < off.size(); ++k) live[flag_group_[k]] -= off[k] != 0;
  return live;
}

int64_t ChannelMacs::count(const Layout& layout, const std::vector<uint8_t>& off,
                           const std::vector<int64_t>& live) const {
  int64_t n = 0;
  for (const auto& seg : layout) {
    auto it = index_.find(seg.group);
    int64_t kept = seg.len;
    if (it != index_.end()) {
      const int pos = it->second;
      if (seg.offset == 0 && seg.len == size_[pos]) {
        kept = std::max<int64_t>(1, live[pos]);  // an all-off group keeps its first channel
      } else {
        kept = 0;
        for (int64_t c = seg.offset; c < seg.offset + seg.len; ++c) kept += !off[offset_[pos] + c];
        if (live[pos] == 0 && seg.offset == 0) kept = 1;
      }
    }
    n += kept * seg.mult;
  }
  return n;
}

int64_t ChannelMacs::term(const Term& t, const std::vector<uint8_t>& off,
                          const std::vector<int64_t>& live) const {
  return t.coef * count(t.out, off, live) * (t.fixed_in > 0 ? t.fixed_in : count(t.in, off, live));
}

int64_t ChannelMacs::macs(const std::vector<uint8_t>& off) const {
  auto live = live_channels(off);
  int64_t total = 0;
  for (const auto& t : terms_) total += term(t, off, live);
  return total;
}

std::vector<int64_t> ChannelMacs::switch_off_while_above(std::vector<uint8_t>& off,
                                                         const std::vector<int64_t>& candidates,
                                                         int64_t floor) const {
  auto live = live_channels(off);
  std::vector<int64_t> value(terms_.size());
  int64_t total = 0;
  for (size_t t = 0; t < terms_.size(); ++t) total += value[t] = term(terms_[t], off, live);
  std::vector<int64_t> accepted, trial;
  for (int64_t k : candidates) {
    TORCH_CHECK(k >= 0 && k < flags(), "ChannelMacs: flag ", k, " out of range ", flags());
    if (off[k]) continue;
    const int pos = flag_group_[k];
    off[k] = 1;
    --live[pos];
    int64_t next = total;
    trial.clear();
    for (int t : touches_[pos]) {
      trial.push_back(term(terms_[t], off, live));
      next += trial.back() - value[t];
    }
    if (next >= floor) {
      for (size_t j = 0; j < trial.size(); ++j) value[touches_[pos][j]] = trial[j];
      total = next;
      accepted.push_back(k);
    } else {
      off[k] = 0;
      ++live[pos];
    }
  }
  return accepted;
}

}  // namespace nnslim
