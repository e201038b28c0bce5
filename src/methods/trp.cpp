#include "nnslim/methods/trp.h"

#include "nnslim/methods/option_table.h"

#include "nnslim/graph/cost.h"
#include "nnslim/methods/lowrank.h"

#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

namespace nnslim {

namespace {

const OptionTable<TrpOptions>& trp_options();  // the method's options, below

using Clock = std::chrono::steady_clock;

// Adds lambda * g to w.grad (creating it if a layer got no gradient this step).
void add_to_grad(torch::Tensor& w, const torch::Tensor& g, double lambda) {
  auto& grad = w.mutable_grad();
  if (!grad.defined()) grad = torch::zeros_like(w);
  grad.add_(g.to(grad.scalar_type()), lambda);
}

}  // namespace

// ---- options ------------------------------------------------------------------------------------

RankRule TrpOptions::resolved_rank_rule() const {
  if (rank_rule != RankRule::kAuto) return rank_rule;
  return scheme == Scheme::kDecouple ? RankRule::kEnergy : RankRule::kValue;
}

void TrpOptions::validate() const {
  TORCH_CHECK(period >= 1, "trp: period must be >= 1, got ", period);
  TORCH_CHECK(energy > 0 && energy <= 1, "trp: energy must be in (0, 1], got ", energy);
  TORCH_CHECK(std::isfinite(nuclear) && nuclear >= 0, "trp: nuclear must be >= 0, got ", nuclear);
  TORCH_CHECK(std::isfinite(tau) && tau >= 0, "trp: tau must be >= 0, got ", tau);
  TORCH_CHECK(final_energy > 0 && final_energy <= 1, "trp: final-energy must be in (0, 1], got ",
              final_energy);
  TORCH_CHECK(!target_macs || (*target_macs > 0 && *target_macs <= 1),
              "trp: target-macs must be in (0, 1], got ", target_macs.value_or(0));
  TORCH_CHECK(rank_multiple >= 1, "trp: rank-multiple must be >= 1, got ", rank_multiple);
}

namespace {
const OptionTable<TrpOptions>& trp_options() {
  using S = std::pair<std::string, Scheme>;
  using N = std::pair<std::string, NuclearMode>;
  using R = std::pair<std::string, RankRule>;
  static const auto table =
      OptionTable<TrpOptions>("trp")
          .choice("scheme", NNSLIM_FIELD(scheme),
                  std::vector<S>{{"channel", Scheme::kChannel},
                                 {"spatial", Scheme::kSpatial},
                                 {"decouple", Scheme::kDecouple},
                                 {"channel-in", Scheme::kChannelIn}},
                  "channel (kxk->r, 1x1), spatial (kx1->r, 1xk), decouple (ND) or channel-in "
                  "(1x1->r, kxk)")
          .integer("period", NNSLIM_FIELD(period),
                   "a TRP step (SVD projection) every this many batches")
          .number("energy", NNSLIM_FIELD(energy),
                  "training energy threshold e in (0, 1]: rank keeps this much sum(s^2)")
          .number("nuclear", NNSLIM_FIELD(nuclear), "nuclear-norm weight lambda (0 = off)")
          .choice("nuclear-mode", NNSLIM_FIELD(nuclear_mode),
                  std::vector<N>{{"trp_steps_truncated", NuclearMode::kTrpStepsTruncated},
                                 {"every_step_full", NuclearMode::kEveryStepFull}},
                  "trp_steps_truncated (lambda*U_r V_r^T on TRP steps) or every_step_full "
                  "(lambda*U V^T every step)")
          .flag("trp", NNSLIM_FIELD(trp),
                "the hard low-rank substitution on TRP steps (false = nuclear norm only)")
          .choice("rank-rule", NNSLIM_FIELD(rank_rule),
                  std::vector<R>{{"auto", RankRule::kAuto},
                                 {"value", RankRule::kValue},
                                 {"energy", RankRule::kEnergy}},
                  "final rank: value (#s >= tau), energy (final-energy) or auto (energy for "
                  "decouple, value otherwise, as the paper's code)")
          .number("tau", NNSLIM_FIELD(tau), "final value threshold (rank-rule value)")
          .number("final-energy", NNSLIM_FIELD(final_energy),
                  "final energy threshold (rank-rule energy)")
          .optional_number(
              "target-macs", NNSLIM_FIELD(target_macs),
              "network MACs budget as a fraction of the input model's (bisects the final "
              "threshold)")
          .integer("rank-multiple", NNSLIM_FIELD(rank_multiple),
                   "round final ranks up to a multiple of this (faster thin convs)")
          .names("layers", NNSLIM_FIELD(layers),
                 "comma-separated conv names to decompose (default: all non-1x1 but the first)")
          .names("exclude", NNSLIM_FIELD(exclude), "comma-separated conv names never to decompose");
  return table;
}
}  // namespace

MethodInfo trp_method_info() {
  MethodInfo m;
  m.name = "trp";
  m.summary =
      "Trained Rank Pruning: low-rank projection + nuclear norm, conv factorisation "
      "(docs/methods/trp.md)";
  m.options = trp_options().options();
  m.create = [](const MethodConfig& cfg) -> std::shared_ptr<Method> {
    return std::make_shared<Trp>(trp_options().read(cfg));
  };
  return m;
}

// ---- the method ---------------------------------------------------------------------------------

Trp::Trp(TrpOptions options) : opt_(std::move(options)) { opt_.validate(); }

std::vector<std::string> Trp::selected() const {
  std::vector<std::string> out;
  for (const auto& s : state_) out.push_back(s.name);
  return out;
}

void Trp::select(const Graph& graph) {
  std::vector<const Node*> picked;
  if (!opt_.layers.empty()) {
    for (const auto& name : opt_.layers) {
      const Node* n = graph.find(name);
      TORCH_CHECK(n, "trp: layers: the model has no node named '", name, "'");
      TORCH_CHECK(can_factorize(*n), "trp: layers: '", name, "' (", op_name(n->op),
                  ") is not an ungrouped conv");
      picked.push_back(n);
    }
  } else {
    // METHODS.md §1.3: every conv with a kernel other than 1x1, except the network's first conv
    // (the stem reads the image: few channels, little to gain, much to lose).
    bool first = true;
    for (const auto& n : graph.nodes) {
      if (n.op != Op::kConv2d) continue;
      if (first) {
        first = false;
        continue;
      }
      const auto& w = n.params.at("weight");
      if (can_factorize(n) && !(w.size(2) == 1 && w.size(3) == 1)) picked.push_back(&n);
    }
  }
  std::set<std::string> excluded;
  for (const auto& name : opt_.exclude) {
    TORCH_CHECK(graph.find(name), "trp: exclude: the model has no node named '", name, "'");
    excluded.insert(name);
  }
  state_.clear();
  std::set<int> seen;
  for (const Node* n : picked) {
    if (excluded.count(n->name) || !seen.insert(n->id).second) continue;
    State s;
    s.id = n->id;
    s.name = n->name;
    state_.push_back(s);
  }
}

bool Trp::is_trp_step(const Context& ctx) const { return ctx.batch % opt_.period == 0; }

namespace {

// A selected layer's data for the final rank choice.
struct Candidate {
  int id;
  int64_t full_rank, break_even, dense_macs, macs_per_rank;
  std::vector<std::vector<double>> s;  // singular values, descending (one row per filter for
                                       // decouple, else one row)
};

}  // namespace

void Trp::check_applicable(const Graph& g) const {
  for (const auto& name : opt_.exclude)
    TORCH_CHECK(g.find(name), "trp: exclude: the model has no node named '", name, "'");
}

void Trp::begin(Context& ctx) {
  select(ctx.graph);
  if (input_macs_ == 0) {
    auto cost = count_cost(ctx.graph);
    input_macs_ = cost.macs;
    for (const auto& c : cost.nodes)
      if (c.op == Op::kConv2d) input_conv_macs_ += c.macs;
  }
  if (opt_.target_macs) {
    // Fail before training if even rank 1 everywhere cannot meet the budget.
    auto shapes = infer_shapes(ctx.graph);
    int64_t best = input_macs_;
    for (const auto& st : state_) {
      const Node& n = ctx.graph.node(st.id);
      const Shape& in = shapes.at(n.inputs[0]);
      if (break_even_rank(n, in, opt_.scheme) >= 1)
        best -= conv_macs(n, in) - factorized_conv_macs(n, in, opt_.scheme, 1);
    }
    TORCH_CHECK(
        best <= *opt_.target_macs * static_cast<double>(input_macs_), "trp: target-macs ",
        *opt_.target_macs, " cannot be met: factorising every selected layer at rank 1 leaves ",
        static_cast<double>(best) / static_cast<double>(input_macs_), " of the input model's MACs");
  }
}

void Trp::before_step(Context& ctx) {
  const bool nuclear_here =
      opt_.nuclear > 0 && opt_.nuclear_mode == NuclearMode::kTrpStepsTruncated;
  if (!is_trp_step(ctx) || !(opt_.trp || nuclear_here)) return;
  auto t0 = Clock::now();
  torch::NoGradGuard no_grad;
  double rank_fraction = 0;
  for (auto& st : state_) {
    st.g = torch::Tensor();
    auto& w = ctx.graph.node(st.id).params.at("weight");
    try {
      // METHODS.md §1.5: T = D(W) with the energy rank; the sub-gradient U_r V_r^T is kept for
      // after_backward on this same step.
      // (decouple: one SVD and one energy rank per filter, batched)
      Svd svd = thin_svd(matricize(w, opt_.scheme));
      const std::vector<int64_t> r = energy_ranks(svd.s, opt_.energy);
      if (opt_.trp) w.copy_(unmatricize(low_rank(svd, r), opt_.scheme, w.sizes()));
      if (nuclear_here)
        st.g = unmatricize(nuclear_subgradient(svd, r), opt_.scheme, w.sizes()).to(w.scalar_type());
      st.train_rank = *std::max_element(r.begin(), r.end());
      rank_fraction += static_cast<double>(st.train_rank) / static_cast<double>(svd.s.size(-1));
    } catch (const c10::Error&) {
      ++svd_failures_;  // the layer is left unchanged for this step
    }
  }
  ++trp_steps_;
  double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  svd_seconds_ += dt;
  if (ctx.log) {
    (*ctx.log)["trp_seconds"] += dt;
    if (!state_.empty()) (*ctx.log)["trp_rank_fraction"] = rank_fraction / state_.size();
  }
}

void Trp::after_backward(Context& ctx) {
  if (opt_.nuclear <= 0) return;
  auto t0 = Clock::now();
  torch::NoGradGuard no_grad;
  if (opt_.nuclear_mode == NuclearMode::kTrpStepsTruncated) {
    if (!is_trp_step(ctx)) return;
    for (auto& st : state_) {
      if (!st.g.defined()) continue;
      add_to_grad(ctx.graph.node(st.id).params.at("weight"), st.g, opt_.nuclear);
      st.g = torch::Tensor();
    }
  } else {
    // The nuclear-only script: lambda * U V^T of the full thin SVD at every step.
    for (auto& st : state_) {
      auto& w = ctx.graph.node(st.id).params.at("weight");
      try {
        Svd svd = thin_svd(matricize(w, opt_.scheme));
        add_to_grad(w, unmatricize(nuclear_subgradient(svd), opt_.scheme, w.sizes()), opt_.nuclear);
      } catch (const c10::Error&) {
        ++svd_failures_;
      }
    }
  }
  double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  svd_seconds_ += dt;
  if (ctx.log) (*ctx.log)["trp_seconds"] += dt;
}

void Trp::finalize(FinalizeContext& ctx) {
  Graph& graph = ctx.graph;
  const RankRule rule = opt_.resolved_rank_rule();
  if (state_.empty()) select(graph);
  {
    auto cost = count_cost(graph);
    if (input_macs_ == 0) {
      input_macs_ = cost.macs;
      for (const auto& c : cost.nodes)
        if (c.op == Op::kConv2d) input_conv_macs_ += c.macs;
    }
  }
  const int64_t current_macs = count_cost(graph).macs;
  auto shapes = infer_shapes(graph);
  std::vector<Candidate> cands;
  for (const auto& st : state_) {
    const Node& n = graph.node(st.id);
    const Shape& in = shapes.at(n.inputs[0]);
    const auto& w = n.params.at("weight");
    Candidate c;
    c.id = n.id;
    c.full_rank = max_rank(w.sizes(), opt_.scheme);
    c.break_even = break_even_rank(n, in, opt_.scheme);
    c.dense_macs = conv_macs(n, in);
    c.macs_per_rank = factorized_conv_macs(n, in, opt_.scheme, 1);
    auto sv = singular_values(matricize(w, opt_.scheme));
    if (sv.dim() == 1) sv = sv.unsqueeze(0);
    sv = sv.contiguous();
    for (int64_t i = 0; i < sv.size(0); ++i) {
      const double* p = sv.data_ptr<double>() + i * sv.size(1);
      c.s.emplace_back(p, p + sv.size(1));
    }
    cands.push_back(std::move(c));
  }

  // Final rank of a layer for a threshold (METHODS.md §1.4/§1.6), >= 1, rounded up to the
  // multiple (never beyond the full rank). Decouple shares the largest filter rank (§1.2).
  auto rank_of = [&](const Candidate& c, double threshold) {
    int64_t r = 1;
    for (const auto& s : c.s)
      r = std::max(r,
                   rule == RankRule::kValue ? value_rank(s, threshold) : energy_rank(s, threshold));
    const int64_t m = opt_.rank_multiple;
    r = std::min(c.full_rank, (r + m - 1) / m * m);
    return r;
  };
  // Whole-network MACs after surgery at a threshold; a layer is factorised only if it saves.
  auto macs_at = [&](double threshold) {
    int64_t total = current_macs;
    for (const auto& c : cands) {
      int64_t r = rank_of(c, threshold);
      if (r <= c.break_even) total -= c.dense_macs - r * c.macs_per_rank;
    }
    return total;
  };

  double threshold = rule == RankRule::kValue ? opt_.tau : opt_.final_energy;
  if (opt_.target_macs && !cands.empty()) {
    const double budget = *opt_.target_macs * static_cast<double>(input_macs_);
    auto fits = [&](double t) { return static_cast<double>(macs_at(t)) <= budget; };
    if (rule == RankRule::kValue) {
      // MACs fall as tau grows: find the smallest tau that fits.
      double hi = 0;
      for (const auto& c : cands)
        for (const auto& s : c.s) hi = std::max(hi, s.empty() ? 0.0 : s[0]);
      hi = hi * 1.001 + 1e-12;  // every value rank 0 -> clamped to 1: the fewest MACs
      TORCH_CHECK(fits(hi), "trp: target-macs ", *opt_.target_macs,
                  " cannot be met: rank 1 everywhere leaves ",
                  static_cast<double>(macs_at(hi)) / static_cast<double>(input_macs_),
                  " of the input model's MACs");
      double lo = 0;
      if (fits(lo)) {
        hi = lo;
      } else {
        for (int it = 0; it < 200 && hi - lo > 1e-12 * std::max(1.0, hi); ++it) {
          double mid = 0.5 * (lo + hi);
          (fits(mid) ? hi : lo) = mid;
        }
      }
      threshold = hi;
    } else {
      // MACs grow with the energy: find the largest energy that fits.
      double lo = 1e-9, hi = 1.0;
      TORCH_CHECK(fits(lo), "trp: target-macs ", *opt_.target_macs,
                  " cannot be met: rank 1 everywhere leaves ",
                  static_cast<double>(macs_at(lo)) / static_cast<double>(input_macs_),
                  " of the input model's MACs");
      if (fits(hi)) {
        lo = hi;
      } else {
        for (int it = 0; it < 200 && hi - lo > 1e-12; ++it) {
          double mid = 0.5 * (lo + hi);
          (fits(mid) ? lo : hi) = mid;
        }
      }
      threshold = lo;
    }
  }
  final_threshold_ = threshold;

  // Surgery (METHODS.md §1.6): layers in graph order; ids of other nodes are stable.
  layers_.clear();
  for (size_t i = 0; i < cands.size(); ++i) {
    const Candidate& c = cands[i];
    TrpLayer l;
    l.name = state_[i].name;
    l.weight_shape = graph.node(c.id).params.at("weight").sizes().vec();
    l.full_rank = c.full_rank;
    l.train_rank = state_[i].train_rank;
    l.rank = rank_of(c, threshold);
    l.macs_before = c.dense_macs;
    l.factorized = l.rank <= c.break_even;
    l.macs_after = l.factorized ? l.rank * c.macs_per_rank : c.dense_macs;
    if (l.factorized) factorize_conv(graph, c.id, opt_.scheme, l.rank);
    layers_.push_back(l);
  }
  state_.clear();  // the factorised layers are gone; training hooks must not run again
  auto cost = count_cost(graph);
  output_macs_ = cost.macs;
  output_conv_macs_ = 0;
  for (const auto& c : cost.nodes)
    if (c.op == Op::kConv2d) output_conv_macs_ += c.macs;
}

void Trp::describe(Json& out) const {
  trp_options().describe(opt_, out);
  out.set("threshold", final_threshold_);
  out.set("input_macs", input_macs_);
  out.set("output_macs", output_macs_);
  // TRP's own convention (METHODS.md §1.6): the speed-up counts conv MACs only.
  out.set("conv_macs_before", input_conv_macs_);
  out.set("conv_macs_after", output_conv_macs_);
  out.set("conv_macs_ratio",
          output_conv_macs_ > 0 ? static_cast<double>(input_conv_macs_) / output_conv_macs_ : 0.0);
  out.set("trp_steps", trp_steps_);
  out.set("svd_seconds", svd_seconds_);
  out.set("svd_failures", svd_failures_);
  Json layers = Json::array();
  int64_t factorized = 0;
  for (const auto& l : layers_) {
    Json j = Json::object();
    j.set("name", l.name);
    j.set("shape", Json::array_of(l.weight_shape));
    j.set("full_rank", l.full_rank);
    j.set("train_rank", l.train_rank);
    j.set("rank", l.rank);
    j.set("factorized", l.factorized);
    j.set("macs_before", l.macs_before);
    j.set("macs_after", l.macs_after);
    layers.push(j);
    factorized += l.factorized;
  }
  out.set("factorized_layers", factorized);
  out.set("layers", layers);
}

// State: enough to resume a run exactly (the sub-gradients live only within one step) and to
// keep reporting against the model the run started from.
void Trp::save(Writer& w) const {
  w.u32(1);  // state version
  w.i64(input_macs_);
  w.i64(input_conv_macs_);
  w.i64(trp_steps_);
  w.f64(svd_seconds_);
  w.i64(svd_failures_);
  w.u64(state_.size());
  for (const auto& s : state_) {
    w.str(s.name);
    w.i64(s.train_rank);
  }
}

void Trp::load(Reader& r) {
  uint32_t version = r.u32();
  TORCH_CHECK(version == 1, "trp: unsupported state version ", version);
  input_macs_ = r.i64();
  input_conv_macs_ = r.i64();
  trp_steps_ = r.i64();
  svd_seconds_ = r.f64();
  svd_failures_ = r.i64();
  uint64_t n = r.u64();
  for (uint64_t i = 0; i < n; ++i) {
    std::string name = r.str();
    int64_t rank = r.i64();
    for (auto& s : state_)
      if (s.name == name) s.train_rank = rank;
  }
}

}  // namespace nnslim
