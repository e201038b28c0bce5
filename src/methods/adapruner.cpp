#include "nnslim/methods/adapruner.h"

#include "nnslim/data/loader.h"
#include "nnslim/eval/evaluate.h"
#include "nnslim/eval/recalibrate.h"
#include "nnslim/graph/builder.h"
#include "nnslim/graph/cost.h"
#include "nnslim/graph/execute.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/graph/surgery.h"
#include "nnslim/methods/importance.h"
#include "nnslim/methods/option_table.h"
#include "nnslim/methods/pruning_plan.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <ostream>
#include <sstream>

namespace nnslim {

namespace {
const std::vector<std::string> kCandidates = {"l1", "l2", "bn", "fpgm", "random", "scratch"};

// Any n channels: widths alone decide MACs.
KeepPlan plan_of_widths(const Coupling& c, const std::map<int, int64_t>& widths) {
  KeepPlan p;
  for (const auto& [id, n] : widths)
    if (n < c.groups[id].channels) {
      std::vector<int64_t> k(n);
      for (int64_t i = 0; i < n; ++i) k[i] = i;
      p[id] = k;
    }
  return p;
}

// round_to(width, divisor) of METHODS §3.3, from the real-valued width: rounding it to an integer
// first would round twice (11.6 -> 12 -> 16 where round_to(11.6, 8) = 8).
int64_t round_width(double width, int64_t divisor, int64_t total) {
  if (divisor <= 1) return std::min(total, std::max<int64_t>(1, std::llround(width)));
  int64_t r = static_cast<int64_t>(std::llround(width / divisor)) * divisor;
  return std::min(total, std::max(divisor, r));
}
}  // namespace

void AdaPrunerOptions::validate() const {
  TORCH_CHECK(target_macs > 0 && target_macs <= 1,
              "adapruner: target-macs must be a fraction in (0, 1], got ", target_macs);
  TORCH_CHECK(sparsity_l1 >= 0, "adapruner: sparsity-l1 must be >= 0, got ", sparsity_l1);
  bool known = inherit == "auto";
  for (const auto& c : kCandidates) known |= inherit == c;
  TORCH_CHECK(known, "adapruner: inherit must be auto, l1, l2, bn, fpgm, random or scratch, got '",
              inherit, "'");
  TORCH_CHECK(divisor >= 1, "adapruner: divisor must be >= 1");
  TORCH_CHECK(min_channels >= 1, "adapruner: min-channels must be >= 1");
  TORCH_CHECK(min_keep > 0 && min_keep <= 1, "adapruner: min-keep must be in (0, 1]");
  TORCH_CHECK(heldout >= 1, "adapruner: heldout must be >= 1");
  TORCH_CHECK(recal_batches >= 1 && candidate_steps >= 0,
              "adapruner: recal-batches >= 1, "
              "candidate-steps >= 0");
  TORCH_CHECK(candidate_lr > 0, "adapruner: candidate-lr must be > 0");
  TORCH_CHECK(scratch_lr > 0, "adapruner: scratch-lr must be > 0");
}

std::vector<int> adapruner_blocks(const Coupling& c, bool prune_stages) {
  std::vector<int> out;
  for (int id : c.prunable()) {
    const auto& g = c.groups[id];
    if (g.norms.empty()) continue;
    if (g.producers.size() > 1 && !prune_stages) continue;  // residual stage: tied by adds
    out.push_back(id);
  }
  return out;
}

std::map<int, double> block_importance(const Graph& g, const Coupling& c,
                                       const std::vector<int>& blocks) {
  std::map<int, double> imp;
  for (int id : blocks) {
    const auto& grp = c.groups[id];
    double sum = 0;
    int64_t count = 0;
    for (const auto& pd : grp.params) {
      if (pd.buffer || pd.param != "weight" || g.node(pd.node).op != Op::kBatchNorm2d) continue;
      auto rows = channel_rows(g, c, grp, pd).to(torch::kDouble);
      sum += rows.abs().sum().item<double>();
      count += rows.numel();
    }
    imp[id] = count ? sum / count : 0.0;
  }
  return imp;
}

std::map<int, int64_t> widths_for_alpha(const Coupling& c, const std::map<int, double>& norm,
                                        double alpha, const AdaPrunerOptions& o) {
  std::map<int, int64_t> w;
  for (const auto& [id, ib] : norm) {
    int64_t total = c.groups[id].channels;
    double keep = std::min(1.0, std::max(o.min_keep, alpha * ib));
    int64_t n = round_width(keep * static_cast<double>(total), o.divisor, total);
    w[id] = std::min(total, std::max(std::min(o.min_channels, total), n));
  }
  return w;
}

WidthSearch search_widths(const Graph& g, const Coupling& c, const std::vector<int>& blocks,
                          const AdaPrunerOptions& o) {
  TORCH_CHECK(!blocks.empty(), "adapruner: the model has no prunable block with BatchNorm");
  auto imp = block_importance(g, c, blocks);
  double mean = 0;
  for (const auto& [id, v] : imp) mean += v / imp.size();
  std::map<int, double> norm;
  double min_norm = 1e30;
  for (const auto& [id, v] : imp) {
    norm[id] = mean > 0 ? v / mean : 1.0;
    if (norm[id] > 0) min_norm = std::min(min_norm, norm[id]);
  }
  WidthSearch r;
  int64_t base = count_cost(g).macs;
  r.budget = static_cast<int64_t>(std::floor(o.target_macs * base));
  auto macs_of = [&](const std::map<int, int64_t>& w) {
    return macs_after(g, c, plan_of_widths(c, w));
  };
  double lo = 0, hi = 1.0 / std::max(min_norm, 1e-12);
  r.widths = widths_for_alpha(c, norm, lo, o);
  r.macs = macs_of(r.widths);
  TORCH_CHECK(r.macs <= r.budget, "adapruner: even the minimum widths need ", r.macs, " of ", base,
              " MACs (", double(r.macs) / base,
              "x); choose a larger --target-macs or a "
              "smaller --min-keep");
  for (r.iterations = 0; r.iterations < 40 && hi - lo > 1e-6; ++r.iterations) {
    if (double(r.budget - r.macs) / r.budget < 0.002) break;
    double mid = 0.5 * (lo + hi);
    auto w = widths_for_alpha(c, norm, mid, o);
    int64_t m = macs_of(w);
    if (m > r.budget) {
      hi = mid;
    } else {
      lo = mid;
      r.widths = w;
      r.macs = m;
    }
  }
  r.alpha = lo;
  // Greedy fill: one knob moves widths in coarse steps; grow the most important blocks one step
  // at a time while the budget allows.
  for (bool grew = true; grew;) {
    grew = false;
    int best = -1;
    int64_t best_macs = 0;
    for (const auto& [id, n] : r.widths) {
      int64_t total = c.groups[id].channels;
      if (n >= total) continue;
      auto w = r.widths;
      w[id] = std::min(total, n + o.divisor);
      int64_t m = macs_of(w);
      if (m <= r.budget && (best < 0 || norm[id] > norm[best])) {
        best = id;
        best_macs = m;
      }
    }
    if (best >= 0) {
      r.widths[best] = std::min(c.groups[best].channels, r.widths[best] + o.divisor);
      r.macs = best_macs;
      grew = true;
    }
  }
  return r;
}

AdaPruner::AdaPruner(AdaPrunerOptions o) : opt_(std::move(o)) { opt_.validate(); }

namespace {
const OptionTable<AdaPrunerOptions>& adapruner_options() {
  static const auto table =
      OptionTable<AdaPrunerOptions>("adapruner")
          .number("target-macs", NNSLIM_FIELD(target_macs),
                  "keep at most this fraction of the input model's MACs")
          .number("sparsity-l1", NNSLIM_FIELD(sparsity_l1),
                  "BN-gamma L1 weight during the sparse training (--epochs)")
          .text("inherit", NNSLIM_FIELD(inherit),
                "weights to inherit: auto (try all, keep the best), l1, l2, bn, fpgm, random, "
                "scratch")
          .integer("divisor", NNSLIM_FIELD(divisor),
                   "channel counts are multiples of this (e.g. 8)")
          .integer("min-channels", NNSLIM_FIELD(min_channels), "minimum channels per block")
          .number("min-keep", NNSLIM_FIELD(min_keep), "minimum fraction of a block's channels kept")
          .flag("prune-stages", NNSLIM_FIELD(prune_stages),
                "also prune residual stage widths (tied by adds)")
          .integer("heldout", NNSLIM_FIELD(heldout),
                   "held-out training images used to score candidates")
          .integer("recal-batches", NNSLIM_FIELD(recal_batches),
                   "BN recalibration batches per candidate")
          .integer("candidate-steps", NNSLIM_FIELD(candidate_steps),
                   "fine-tune steps per candidate before scoring (0 = none)")
          .number("candidate-lr", NNSLIM_FIELD(candidate_lr),
                  "learning rate of the candidates' short fine-tune")
          .number("scratch-lr", NNSLIM_FIELD(scratch_lr),
                  "fine-tuning learning rate when 'scratch' wins (fresh weights need the full "
                  "rate; inherited ones use --finetune-lr)")
          .names("exclude", NNSLIM_FIELD(exclude),
                 "comma-separated node names whose groups are kept whole");
  return table;
}
}  // namespace

std::vector<MethodOption> AdaPruner::option_list() { return adapruner_options().options(); }

std::shared_ptr<Method> AdaPruner::create(const MethodConfig& c) {
  return std::make_shared<AdaPruner>(adapruner_options().read(c));
}

void AdaPruner::after_backward(Context& ctx) {
  if (opt_.sparsity_l1 <= 0) return;
  if (gammas_.empty()) {
    check_nodes_exist(ctx.graph, opt_.exclude, "adapruner");
    Coupling c = analyze_coupling(ctx.graph, opt_.exclude);
    // Every prunable group's BNs, stages included whatever --prune-stages says (METHODS §3.3
    // step 1: the sum runs over all prunable BNs; the stages' gammas then rank like the blocks').
    for (int id : adapruner_blocks(c, /*prune_stages=*/true))
      for (int bn : c.groups[id].norms) gammas_.push_back(ctx.graph.node(bn).params.at("weight"));
  }
  // Network slimming: the L1 sub-gradient s * sign(gamma) (METHODS §3.3 step 1).
  torch::NoGradGuard ng;
  for (auto& g : gammas_)
    if (g.grad().defined()) g.mutable_grad().add_(torch::sign(g.detach()), opt_.sparsity_l1);
}

double AdaPruner::score_candidate(Graph& g, const Dataset& fit, const Dataset& heldout) const {
  recalibrate_bn(g, fit, opt_.recal_batches, 128, opt_.seed);
  if (opt_.candidate_steps > 0) {
    torch::optim::SGD sgd(
        g.parameters(),
        torch::optim::SGDOptions(opt_.candidate_lr).momentum(0.9).weight_decay(5e-4));
    LoaderOptions lo;
    lo.batch_size = 128;
    lo.augment = true;
    lo.seed = opt_.seed + 1;
    auto params = g.parameters();
    auto device = params[0].device();
    auto dtype = params[0].scalar_type();
    int64_t steps = 0;
    for (int64_t epoch = 0; steps < opt_.candidate_steps; ++epoch) {
      EpochLoader loader(fit, lo, epoch);
      while (auto b = loader.next()) {
        sgd.zero_grad();
        torch::cross_entropy_loss(forward(g, b->x.to(device, dtype), Mode::kTrain), b->y.to(device))
            .backward();
        sgd.step();
        if (++steps >= opt_.candidate_steps) break;
      }
    }
  }
  auto params = g.parameters();
  return evaluate(g, heldout, 256, params[0].device()).top1;
}

namespace {

// The candidates' scores, kept in ctx.finalize_dir as they are computed, so a run interrupted
// while scoring or fine-tuning does not score them again when resumed (scoring is
// deterministic: the same widths, data and seed give the same scores). The file names what it
// was computed for; a mismatch (other widths, options or data) is ignored and overwritten.
class ScoreCache {
 public:
  ScoreCache(const FinalizeContext& ctx, const WidthSearch& ws,
             const std::vector<std::string>& candidates, int64_t heldout,
             const AdaPrunerOptions& o) {
    if (ctx.finalize_dir.empty() || candidates.size() < 2) return;
    path_ = ctx.finalize_dir + "/adapruner_scores.json";
    Json widths = Json::array();
    for (const auto& [id, n] : ws.widths) widths.push(Json::array_of(std::vector<int64_t>{id, n}));
    key_ = Json::object();
    key_.set("widths", widths);
    key_.set("candidates", Json::array_of(candidates));
    key_.set("heldout", heldout);
    key_.set("train_images", ctx.train ? ctx.train->size() : int64_t(0));
    key_.set("candidate_steps", o.candidate_steps);
    key_.set("recal_batches", o.recal_batches);
    key_.set("seed", static_cast<int64_t>(o.seed));
    scores_ = Json::object();
    if (!ctx.resuming) return;
    try {
      std::ifstream f(path_, std::ios::binary);
      if (!f) return;
      std::stringstream text;
      text << f.rdbuf();
      Json j = Json::parse(text.str());
      if (j.get("key").dump() == key_.dump()) scores_ = j.get("scores");
    } catch (const c10::Error&) {  // unreadable: score again
    }
  }
  std::optional<double> score(const std::string& crit) const {
    if (const Json* s = scores_.is_object() ? scores_.find(crit) : nullptr; s && s->is_number())
      return s->num();
    return std::nullopt;
  }
  void add(const std::string& crit, double s) {
    if (path_.empty()) return;
    scores_.set(crit, s);
    Json j = Json::object();
    j.set("key", key_);
    j.set("scores", scores_);
    write_file_atomic(path_, j.dump(2) + "\n");
  }

 private:
  std::string path_;
  Json key_, scores_;
};

}  // namespace

void AdaPruner::check_applicable(const Graph& g) const {
  check_nodes_exist(g, opt_.exclude, "adapruner");
  TORCH_CHECK(!adapruner_blocks(analyze_coupling(g, opt_.exclude), opt_.prune_stages).empty(),
              "adapruner: the model has no prunable block with BatchNorm (AdaPruner ranks "
              "channels by BatchNorm scales; use --method magnitude for this model)");
}

void AdaPruner::finalize(FinalizeContext& ctx) {
  Graph& g = ctx.graph;
  check_nodes_exist(g, opt_.exclude, "adapruner");
  Coupling c = analyze_coupling(g, opt_.exclude);
  auto blocks = adapruner_blocks(c, opt_.prune_stages);
  WidthSearch ws = search_widths(g, c, blocks, opt_);
  int64_t base = count_cost(g).macs;

  std::vector<std::string> candidates =
      opt_.inherit == "auto" ? kCandidates : std::vector<std::string>{opt_.inherit};
  // Held-out images: the run's validation split (--val-split: no phase trained on it), at most
  // `heldout` of them; without one, the last `heldout` training images, which the training phase
  // did see (said in the log and in summary.json) [OUR CHOICE]. The candidates' short fine-tune
  // and BN recalibration use the training images.
  Dataset fit, heldout;
  bool need_data = candidates.size() > 1 && !evaluator;
  const bool on_val = ctx.val && ctx.val->size() > 0;
  if (need_data && on_val) {
    TORCH_CHECK(ctx.train && ctx.train->size() > 0,
                "adapruner: choosing weights needs training data");
    fit = *ctx.train;
    heldout = take_first(*ctx.val, opt_.heldout);
  } else if (need_data) {
    TORCH_CHECK(ctx.train && ctx.train->size() > 1,
                "adapruner: choosing weights needs training data");
    int64_t n = std::min(opt_.heldout, ctx.train->size() / 5);
    TORCH_CHECK(n >= 1, "adapruner: too few training images to hold out any");
    std::tie(fit, heldout) = split_validation(*ctx.train, n);
    if (ctx.progress)
      *ctx.progress << "note: adapruner scores its candidates on the last " << n
                    << " training images, which training saw; give --val-split N to score on "
                       "images no phase trains on"
                    << std::endl;
  }
  Json scores = Json::object();
  std::string best_name;
  double best_score = -1e300;
  Graph best;
  // The sub-network with the widths found and the channels a criterion picks (or fresh weights).
  auto build = [&](const std::string& crit) {
    KeepPlan plan;
    if (crit == "scratch") {
      plan = plan_of_widths(c, ws.widths);
    } else {
      ImportanceData d;
      d.seed = opt_.seed;
      auto imp = channel_importance(g, c, criterion_from_name(crit), d);
      for (const auto& [id, n] : ws.widths)
        if (n < c.groups[id].channels) plan[id] = top_channels(imp.at(id), n);
    }
    Graph sub = plan.empty() ? g.clone() : prune_groups(g, c, plan);
    if (crit == "scratch") {
      torch::manual_seed(opt_.seed);
      reinitialize(sub);
    }
    return sub;
  };
  if (ctx.progress) {
    char line[160];
    std::snprintf(line, sizeof line,
                  "== widths for %.2f%% of the MACs (alpha %.4g after %lld bisection steps)",
                  100.0 * ws.macs / base, ws.alpha, (long long)ws.iterations);
    *ctx.progress << line << std::endl;
  }
  if (ctx.progress && candidates.size() > 1)
    *ctx.progress << "== scoring " << candidates.size() << " weight-inheritance candidates on "
                  << heldout.size() << (on_val ? " validation" : " held-out training")
                  << " images (" << opt_.candidate_steps << " fine-tune steps each)" << std::endl;
  ScoreCache cache(ctx, ws, candidates, heldout.size(), opt_);
  for (const auto& crit : candidates) {
    if (candidates.size() == 1) {  // nothing to choose
      best = build(crit);
      best_name = crit;
      break;
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::optional<double> cached = cache.score(crit);
    Graph sub = cached ? Graph() : build(crit);
    double s = cached      ? *cached
               : evaluator ? evaluator(sub, crit)
                           : score_candidate(sub, fit, heldout);
    if (!cached) cache.add(crit, s);
    if (ctx.progress) {
      char line[160];
      if (cached)
        std::snprintf(line, sizeof line,
                      "   %-7s held-out top-1 %6.2f%%  (scored before the interruption)",
                      crit.c_str(), s);
      else
        std::snprintf(line, sizeof line, "   %-7s held-out top-1 %6.2f%%  (%.0f s)", crit.c_str(),
                      s,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      *ctx.progress << line << std::endl;
    }
    scores.set(crit, s);
    if (s > best_score) {  // ties: the earlier candidate
      best_score = s;
      best_name = crit;
    }
  }
  // The chosen candidate is rebuilt from its inherited weights: the short fine-tune was only
  // for scoring, the real fine-tune follows in the pipeline.
  if (candidates.size() > 1) best = build(best_name);
  if (ctx.progress) *ctx.progress << "== inheriting " << best_name << "'s channels" << std::endl;
  if (ctx.train) recalibrate_bn(best, *ctx.train, opt_.recal_batches, 128, opt_.seed);
  g = std::move(best);
  inherited_ = best_name;

  details_ = Json::object();
  adapruner_options().describe(opt_, details_);
  details_.set("alpha", ws.alpha);
  details_.set("bisection_iterations", ws.iterations);
  details_.set("budget_macs", ws.budget);
  details_.set("macs", ws.macs);
  details_.set("macs_fraction", double(ws.macs) / base);
  details_.set("inherit", best_name);
  details_.set("candidate_scores", scores);
  if (candidates.size() > 1 && heldout.size() > 0) {
    // How far apart the candidates are against the noise of a top-1 on n images: the binomial
    // standard error at the best score, in points, next to the gap to the runner-up.
    const double n = static_cast<double>(heldout.size()), p = best_score / 100.0;
    double second = -1e300;
    for (const auto& crit : candidates)
      if (crit != best_name) second = std::max(second, scores.get(crit).num());
    details_.set("scored_on", on_val ? "validation split" : "last training images");
    details_.set("scored_images", static_cast<int64_t>(heldout.size()));
    details_.set("score_stderr_points", 100.0 * std::sqrt(std::max(0.0, p * (1 - p)) / n));
    details_.set("score_gap_points", best_score - second);
  }
  Json widths = Json::array();
  for (int id : blocks) {
    Json j = Json::object();
    j.set("block", c.groups[id].name);
    j.set("channels", c.groups[id].channels);
    j.set("kept", ws.widths.at(id));
    widths.push(j);
  }
  details_.set("blocks", widths);
}

}  // namespace nnslim
