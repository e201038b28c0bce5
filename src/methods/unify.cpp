// Micro-structured weight unification and pruning with ADMM (METHODS.md §4; contracts in
// methods/unify.h).
#include "nnslim/methods/unify.h"

#include "nnslim/graph/cost.h"
#include "nnslim/methods/option_table.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace nnslim {

int64_t blocks_for_fraction(double fraction, int64_t blocks) {
  return std::min<int64_t>(blocks, static_cast<int64_t>(std::floor(fraction * blocks + 1e-9)));
}

// ---- the projection (§4.4) ---------------------------------------------------------------------

BlockProjection project_blocks(const torch::Tensor& x, const BlockPartition& part, double prune,
                               double unify) {
  TORCH_CHECK(prune >= 0 && unify >= 0 && prune + unify <= 1 + 1e-12,
              "unify: prune + unify must be <= 1 (each >= 0), got ", prune, " + ", unify);
  torch::NoGradGuard ng;
  auto b = part.to_blocks(x.detach());  // [B, S]
  auto valid = part.valid().to(b.device());
  auto sizes = part.sizes().to(b.device(), b.scalar_type());
  const double inf = std::numeric_limits<double>::infinity();
  auto ab = b.abs();
  // E_p(x) = ||x||^2 (padding entries are 0).
  auto e_p = (b * b).sum(1);
  // a* = mean |x_j|, the minimiser of sum_j (a s_j - x_j)^2 with s_j = sign(x_j). When all |x_j|
  // are equal we take that value itself: the float mean of equal numbers can be off by an ulp,
  // which would make Pi_S(Pi_S(X)) != Pi_S(X).
  auto mx = ab.masked_fill(~valid, -inf).amax(1);
  auto mn = ab.masked_fill(~valid, inf).amin(1);
  auto a = torch::where(mx == mn, mx, ab.sum(1) / sizes);
  // E_u(x) = sum_j (|x_j| - a*)^2 = ||x||^2 - n_b a*^2 <= E_p(x).
  auto e_u = (ab - a.unsqueeze(1)).square().masked_fill(~valid, 0).sum(1);

  // Sequential selection [OUR CHOICE, §4.4]: the cheapest blocks to prune, then, among the
  // others, the cheapest to unify. Stable sorts: ties go to the lower block index.
  const int64_t B = part.blocks();
  const int64_t np = blocks_for_fraction(prune, B);
  const int64_t nu = std::min(blocks_for_fraction(unify, B), B - np);
  auto state = torch::zeros({B}, torch::kUInt8);
  auto pruned = std::get<1>(torch::sort(e_p.cpu(), /*stable=*/true, 0, false)).slice(0, 0, np);
  auto e_u_rest = e_u.cpu().to(torch::kDouble).index_fill(0, pruned, inf);
  auto unified = std::get<1>(torch::sort(e_u_rest, /*stable=*/true, 0, false)).slice(0, 0, nu);
  state.index_fill_(0, pruned, static_cast<uint8_t>(BlockState::kPruned));
  state.index_fill_(0, unified, static_cast<uint8_t>(BlockState::kUnified));

  auto st = state.to(b.device());
  auto is_p = (st == static_cast<uint8_t>(BlockState::kPruned)).unsqueeze(1);
  auto is_u = (st == static_cast<uint8_t>(BlockState::kUnified)).unsqueeze(1);
  auto sign = torch::where(b < 0, -torch::ones_like(b), torch::ones_like(b));  // sign(0) = +1
  auto out = torch::where(is_u, a.unsqueeze(1) * sign, b).masked_fill(is_p, 0);
  BlockProjection r;
  r.weight = part.from_blocks(out);
  r.state = state;
  r.magnitude = a.masked_fill(~is_u.squeeze(1), 0);
  return r;
}

UnifyLayerCost unify_layer_cost(const BlockPartition& part, const torch::Tensor& state,
                                int64_t positions) {
  auto st = state.to(torch::kCPU);
  TORCH_CHECK(st.numel() == part.blocks(), "unify: ", st.numel(), " block states for ",
              part.blocks(), " blocks");
  auto is = [&](BlockState s) { return st == static_cast<uint8_t>(s); };
  auto sum_where = [](const torch::Tensor& v, const torch::Tensor& m) {
    return v.masked_select(m).sum().item<int64_t>();
  };
  UnifyLayerCost c;
  c.weights = part.numel();
  c.blocks = part.blocks();
  c.pruned_blocks = is(BlockState::kPruned).sum().item<int64_t>();
  c.unified_blocks = is(BlockState::kUnified).sum().item<int64_t>();
  c.free_blocks = c.blocks - c.pruned_blocks - c.unified_blocks;
  c.free_weights = sum_where(part.sizes(), is(BlockState::kFree));
  c.unified_weights = sum_where(part.sizes(), is(BlockState::kUnified));
  c.pruned_weights = sum_where(part.sizes(), is(BlockState::kPruned));
  c.unified_rows = sum_where(part.block_rows(), is(BlockState::kUnified));
  c.positions = positions;
  c.macs_dense = c.weights * positions;
  c.macs = (c.free_weights + c.unified_rows) * positions;
  return c;
}

// ---- options -----------------------------------------------------------------------------------

void UnifyOptions::validate() const {
  TORCH_CHECK(prune >= 0 && prune <= 1, "unify: prune must be in [0, 1], got ", prune);
  TORCH_CHECK(unify >= 0 && unify <= 1, "unify: unify must be in [0, 1], got ", unify);
  TORCH_CHECK(prune + unify <= 1 + 1e-12, "unify: prune + unify must be <= 1, got ", prune + unify);
  TORCH_CHECK(rho >= 0, "unify: rho must be >= 0, got ", rho);
  TORCH_CHECK(rho_growth >= 1, "unify: rho-growth must be >= 1, got ", rho_growth);
  TORCH_CHECK(rho_max >= rho, "unify: rho-max must be >= rho (", rho, "), got ", rho_max);
  TORCH_CHECK(round_batches >= 0, "unify: round-batches must be >= 0, got ", round_batches);
  for (const BlockShape& b : {conv_block, linear_block})
    TORCH_CHECK(b.out >= 1 && b.in >= 1 && b.k >= 0, "unify: bad block shape ", b.str());
  // A linear weight has no kernel: its blocks are OxIx1 (K, the whole kernel, is the same).
  TORCH_CHECK(linear_block.k <= 1,
              "unify: linear-block must be OxIx1 (a linear layer has no "
              "kernel), got ",
              linear_block.str());
}

namespace {
const OptionTable<UnifyOptions>& unify_options() {
  static const auto table =
      OptionTable<UnifyOptions>("unify")
          .number("prune", NNSLIM_FIELD(prune), "p: fraction of each layer's blocks set to zero")
          .number("unify", NNSLIM_FIELD(unify),
                  "u: fraction of each layer's blocks unified (one magnitude, signs kept); "
                  "p + u <= 1")
          .custom(
              "block", UnifyOptions{}.conv_block.str(),
              "conv block shape OxIxK (out ch x in ch x kernel entries; K = whole kernel), e.g. "
              "1x4xK, 4x4x1, 1x1xK",
              [](const MethodConfig& c, UnifyOptions& o) {
                o.conv_block = parse_block_shape(c.str("block"), "unify: --block");
              },
              [](const UnifyOptions& o) { return Json(o.conv_block.str()); })
          .custom(
              "linear-block", UnifyOptions{}.linear_block.str(),
              "linear block shape (out x in x 1)",
              [](const MethodConfig& c, UnifyOptions& o) {
                o.linear_block = parse_block_shape(c.str("linear-block"), "unify: --linear-block");
              },
              [](const UnifyOptions& o) { return Json(o.linear_block.str()); })
          .number("rho", NNSLIM_FIELD(rho),
                  "ADMM penalty rho0 (0 = no penalty). One ADMM round per epoch: --epochs is the "
                  "number of ADMM rounds, --finetune-epochs the masked retraining")
          .number("rho-growth", NNSLIM_FIELD(rho_growth),
                  "rho is multiplied by this after every ADMM round")
          .number("rho-max", NNSLIM_FIELD(rho_max), "upper bound of rho")
          .integer("round-batches", NNSLIM_FIELD(round_batches),
                   "0 = one ADMM round (Z/U update) per epoch; N = every N batches")
          .names("exclude", NNSLIM_FIELD(exclude),
                 "comma-separated node names kept dense (the first conv and the classifier "
                 "always are)");
  return table;
}
}  // namespace

std::vector<MethodOption> Unify::option_list() { return unify_options().options(); }

std::shared_ptr<Method> Unify::create(const MethodConfig& c) {
  return std::make_shared<Unify>(unify_options().read(c));
}

MethodInfo unify_method_info() {
  MethodInfo m;
  m.name = "unify";
  m.summary =
      "micro-structured weight unification + pruning (ADMM, masked retraining; "
      "docs/methods/unify.md)";
  m.options = Unify::option_list();
  m.create = Unify::create;
  return m;
}

// ---- the method --------------------------------------------------------------------------------

Unify::Unify(UnifyOptions options) : opt_(std::move(options)) {
  opt_.validate();
  frozen_ = std::make_shared<std::vector<UnifyFrozenLayer>>();
}

BlockShape Unify::block_for(const Node& node) const {
  return node.op == Op::kLinear ? opt_.linear_block : opt_.conv_block;
}

void Unify::check_applicable(const Graph& g) const { check_nodes_exist(g, opt_.exclude, "unify"); }

void Unify::select(const Graph& g) {
  check_nodes_exist(g, opt_.exclude, "unify");
  // §4.3 [OUR CHOICE]: the first conv and the classifier stay dense.
  int first_conv = -1, classifier = -1;
  for (const auto& n : g.nodes) {
    if (n.op == Op::kConv2d && first_conv < 0) first_conv = n.id;
    if (n.op == Op::kLinear) classifier = n.id;
  }
  state_.clear();
  for (const auto& n : g.nodes) {
    if (n.op != Op::kConv2d && n.op != Op::kLinear) continue;
    if (n.id == first_conv || n.id == classifier || opt_.exclude.count(n.name)) continue;
    State s;
    s.name = n.name;
    s.partition = BlockPartition(n.params.at("weight").sizes().vec(), block_for(n));
    const int64_t B = s.partition.blocks();
    s.trivial = blocks_for_fraction(opt_.prune, B) == 0 && blocks_for_fraction(opt_.unify, B) == 0;
    state_.push_back(std::move(s));
  }
}

std::vector<std::string> Unify::selected() const {
  std::vector<std::string> out;
  for (const auto& s : state_) out.push_back(s.name);
  return out;
}

torch::Tensor Unify::z(const std::string& name) const {
  for (const auto& s : state_)
    if (s.name == name) return s.z;
  return {};
}

torch::Tensor Unify::u(const std::string& name) const {
  for (const auto& s : state_)
    if (s.name == name) return s.u;
  return {};
}

std::vector<double> Unify::residuals() const {
  std::vector<double> r;
  for (const auto& s : state_) r.push_back(s.residual);
  return r;
}

void Unify::begin(Context& ctx) {
  // §4.5 init: Z = Pi_S(W), U = 0, rho = rho0.
  torch::NoGradGuard ng;
  select(ctx.graph);
  for (auto& s : state_) {
    auto w = ctx.graph.find(s.name)->params.at("weight").detach();
    s.z = project_blocks(w, s.partition, opt_.prune, opt_.unify).weight;
    s.u = torch::zeros_like(w);
    s.residual = -1;
  }
  rho_ = opt_.rho;
  rounds_ = 0;
}

void Unify::after_backward(Context& ctx) {
  // W-step (§4.5): the gradient of rho/2 ||W - Z + U||^2 is rho (W - Z + U). A layer whose
  // constraint set is the whole space (no block pruned or unified) needs no splitting: with a
  // penalty it would train as a proximal-point method pulled towards last round's weights, not
  // as plain SGD (§4.7 item 7).
  torch::NoGradGuard ng;
  for (auto& s : state_) {
    auto& w = ctx.graph.find(s.name)->params.at("weight");
    auto g = w.grad();
    if (!g.defined() || !s.z.defined() || s.trivial || rho_ == 0) continue;
    g.add_(w.detach() - s.z + s.u, rho_);
  }
}

void Unify::after_step(Context& ctx) {
  // The global step, not the batch within the epoch: a round every N batches across epoch ends.
  if (opt_.round_batches > 0 && (ctx.step + 1) % opt_.round_batches == 0) admm_round(ctx);
}

void Unify::end_epoch(Context& ctx) {
  if (opt_.round_batches == 0) admm_round(ctx);
}

void Unify::admm_round(Context& ctx) {
  // Z-, U- and rho-updates of §4.5, then the primal residual ||W - Z|| / ||W||.
  torch::NoGradGuard ng;
  double max_r = 0, sum_r = 0;
  for (auto& s : state_) {
    TORCH_CHECK(s.z.defined(), "unify: an ADMM round needs begin() first");
    auto w = ctx.graph.find(s.name)->params.at("weight").detach();
    s.z = project_blocks(w + s.u, s.partition, opt_.prune, opt_.unify).weight;
    s.u = s.u + (w - s.z);
    double wn = w.norm().item<double>();
    s.residual = (w - s.z).norm().item<double>() / std::max(wn, 1e-30);
    max_r = std::max(max_r, s.residual);
    sum_r += s.residual;
  }
  if (ctx.log) {
    (*ctx.log)["unify_rho"] = rho_;  // the rho this round's W-step used
    (*ctx.log)["unify_residual"] = max_r;
    (*ctx.log)["unify_residual_mean"] = state_.empty() ? 0.0 : sum_r / state_.size();
  }
  rho_ = std::min(opt_.rho_max, opt_.rho_growth * rho_);
  ++rounds_;
}

void Unify::finalize(FinalizeContext& ctx) {
  // §4.5 end / §4.6: hard projection W = Pi_S(W), then freeze the structure.
  torch::NoGradGuard ng;
  Graph& g = ctx.graph;
  if (state_.empty()) select(g);
  std::map<std::string, int64_t> node_macs;
  auto cost = count_cost(g);
  for (const auto& nc : cost.nodes) node_macs[nc.name] = nc.macs;

  frozen_->clear();
  std::string meta;
  Json layers = Json::array();
  int64_t weights = 0, macs_dense = 0, macs = 0;
  double stored = 0, stored_bits = 0;
  for (auto& s : state_) {
    auto& w = g.find(s.name)->params.at("weight");
    auto p = project_blocks(w.detach(), s.partition, opt_.prune, opt_.unify);
    w.detach().copy_(p.weight);
    auto fixed =
        s.partition.expand(p.state != static_cast<uint8_t>(BlockState::kFree)).to(w.device());
    frozen_->push_back({s.name, fixed, p.weight.masked_fill(~fixed, 0)});
    meta += (meta.empty() ? "" : ";") + s.name + "=" + s.partition.block().str();

    const int64_t positions = std::max<int64_t>(1, node_macs[s.name] / w.numel());
    auto c = unify_layer_cost(s.partition, p.state, positions);
    weights += c.weights;
    macs_dense += c.macs_dense;
    macs += c.macs;
    stored += c.stored_values();
    stored_bits += c.stored_values_bits();
    Json j = Json::object();
    j.set("name", s.name);
    j.set("shape", Json::array_of(w.sizes().vec()));
    j.set("block", s.partition.block().str());
    j.set("blocks", c.blocks);
    j.set("pruned_blocks", c.pruned_blocks);
    j.set("unified_blocks", c.unified_blocks);
    j.set("free_blocks", c.free_blocks);
    j.set("weights", c.weights);
    j.set("free_weights", c.free_weights);
    j.set("unified_weights", c.unified_weights);
    j.set("storage_ratio", c.weights / c.stored_values());
    j.set("storage_ratio_bits", c.weights / c.stored_values_bits());
    j.set("macs_dense", c.macs_dense);
    j.set("macs", c.macs);
    j.set("compute_ratio", c.macs > 0 ? double(c.macs_dense) / c.macs : 0.0);
    if (s.residual >= 0) j.set("admm_residual", s.residual);
    layers.push(j);
  }
  g.meta[kUnifyBlocksMeta] = meta;
  if (meta.empty()) g.meta.erase(kUnifyBlocksMeta);

  // §4.6 accounting. "layers_total": the constrained layers only; the top-level ratios are for
  // the whole network (every trainable parameter; MACs of every conv and linear), with the
  // unconstrained parts counted dense.
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  const double model_params = double(cost.params), model_macs = double(cost.macs);
  const double rest = model_params - weights;
  details_ = Json::object();
  unify_options().describe(opt_, details_);
  details_.set("storage_ratio", ratio(model_params, rest + stored));
  details_.set("storage_ratio_bits", ratio(model_params, rest + stored_bits));
  details_.set("compute_ratio", ratio(model_macs, model_macs - macs_dense + macs));
  Json total = Json::object();
  total.set("layers", int64_t(state_.size()));
  total.set("weights", weights);
  total.set("stored_values", stored);
  total.set("storage_ratio", ratio(weights, stored));
  total.set("storage_ratio_bits", ratio(weights, stored_bits));
  total.set("macs_dense", macs_dense);
  total.set("macs", macs);
  total.set("compute_ratio", ratio(double(macs_dense), double(macs)));
  details_.set("layers_total", total);
  Json admm = Json::object();
  admm.set("rounds", rounds_);
  admm.set("rho_final", rho_);
  double max_r = -1;
  for (const auto& s : state_) max_r = std::max(max_r, s.residual);
  if (max_r >= 0) admm.set("residual_max", max_r);
  details_.set("admm", admm);
  // Sizes of the model file: the standard *.nnslim (pruned zeros already stored sparse) and
  // the compact one of save_unified() (framing: magic, version, size, checksum = 28 bytes).
  details_.set("file_bytes_standard", int64_t(graph_to_bytes(g).size()) + 28);
  details_.set("file_bytes_unified", unified_file_bytes(g));
  details_.set("layers", layers);
}

std::shared_ptr<Method> Unify::finetune_method() { return std::make_shared<UnifyRetrain>(frozen_); }

void Unify::describe(Json& out) const {
  if (details_.size() > 0) {
    out = details_;
    return;
  }
  out = Json::object();
  unify_options().describe(opt_, out);
}

// The constraint set S(p, u, blocks) the saved Z and U belong to: a resume with other values
// would mix the old projections with the new constraint, so load() refuses it.
std::string Unify::constraint() const {
  std::ostringstream s;
  s << "prune " << opt_.prune << ", unify " << opt_.unify << ", conv blocks "
    << opt_.conv_block.str() << ", linear blocks " << opt_.linear_block.str();
  return s.str();
}

void Unify::save(Writer& w) const {
  w.str(constraint());
  w.f64(rho_);
  w.i64(rounds_);
  w.u64(state_.size());
  for (const auto& s : state_) {
    w.str(s.name);
    w.tensor(s.z.defined() ? s.z.cpu() : s.z);
    w.tensor(s.u.defined() ? s.u.cpu() : s.u);
    w.f64(s.residual);
  }
}

void Unify::load(Reader& r) {
  const std::string saved = r.str();
  TORCH_CHECK(saved == constraint(), "unify: --resume: the checkpoint was trained for ", saved,
              "; this command asks for ", constraint(),
              ". Resume with the same --prune/--unify/--block, or start a new --out");
  rho_ = r.f64();
  rounds_ = r.i64();
  uint64_t n = r.u64();
  TORCH_CHECK(n == state_.size(), "unify: checkpoint holds ", n, " layers, the model has ",
              state_.size());
  for (auto& s : state_) {
    std::string name = r.str();
    TORCH_CHECK(name == s.name, "unify: checkpoint layer '", name, "' where '", s.name,
                "' was expected");
    auto z = r.tensor(), u = r.tensor();
    const auto& shape = s.partition.weight_shape();
    TORCH_CHECK((!z.defined() || z.sizes() == shape) && (!u.defined() || u.sizes() == shape),
                "unify: checkpoint state of layer '", name, "' has ADMM variables of shape ",
                z.defined() ? z.sizes() : c10::IntArrayRef{}, " / ",
                u.defined() ? u.sizes() : c10::IntArrayRef{}, ", the weight is ",
                c10::IntArrayRef(shape), " (corrupt or foreign checkpoint?)");
    TORCH_CHECK(z.defined() == u.defined() && (!z.defined() || z.is_floating_point()),
                "unify: checkpoint state of layer '", name,
                "' has inconsistent ADMM variables (corrupt checkpoint?)");
    auto device = s.z.defined() ? s.z.device() : torch::Device(torch::kCPU);
    s.z = z.defined() ? z.to(device) : z;
    s.u = u.defined() ? u.to(device) : u;
    s.residual = r.f64();
  }
}

// ---- masked retraining (§4.6) ------------------------------------------------------------------

UnifyRetrain::UnifyRetrain(std::shared_ptr<std::vector<UnifyFrozenLayer>> frozen)
    : frozen_(std::move(frozen)) {
  TORCH_CHECK(frozen_, "unify: masked retraining needs the frozen structure");
}

void UnifyRetrain::apply(Graph& graph) const {
  torch::NoGradGuard ng;
  for (auto& f : *frozen_) {
    Node* n = graph.find(f.name);
    TORCH_CHECK(n, "unify: masked retraining: the graph has no layer '", f.name, "'");
    auto w = n->params.at("weight").detach();
    TORCH_CHECK(f.fixed.sizes() == w.sizes() && f.values.sizes() == w.sizes(),
                "unify: masked retraining: the masks of layer '", f.name, "' have shape ",
                f.fixed.sizes(), ", the weight ", w.sizes());
    if (f.fixed.device() != w.device()) {
      f.fixed = f.fixed.to(w.device());
      f.values = f.values.to(w.device());
    }
    // Exact write-back: pruned entries 0, unified entries a*s (patent-style freezing, §4.2).
    w.copy_(torch::where(f.fixed, f.values, w));
  }
}

void UnifyRetrain::begin(Context& ctx) {
  graph_ = &ctx.graph;
  apply(ctx.graph);
}

void UnifyRetrain::after_backward(Context& ctx) {
  // grad <- grad ⊙ (1 - M_p - M_u) (§4.6), as a masked fill: free entries are untouched.
  torch::NoGradGuard ng;
  for (auto& f : *frozen_) {
    auto g = ctx.graph.find(f.name)->params.at("weight").grad();
    if (g.defined()) g.masked_fill_(f.fixed.to(g.device()), 0);
  }
}

// Weight decay and momentum move frozen entries inside optimizer.step(); write them back.
void UnifyRetrain::after_step(Context& ctx) { apply(ctx.graph); }

void UnifyRetrain::save(Writer& w) const {
  w.u64(frozen_->size());
  for (const auto& f : *frozen_) {
    w.str(f.name);
    w.tensor(f.fixed.to(torch::kCPU, torch::kUInt8));
    w.tensor(f.values.cpu());
  }
}

void UnifyRetrain::load(Reader& r) {
  uint64_t n = r.u64();
  TORCH_CHECK(n <= 100000, "unify: implausible layer count in checkpoint");
  std::vector<UnifyFrozenLayer> v;
  for (uint64_t i = 0; i < n; ++i) {
    UnifyFrozenLayer f;
    f.name = r.str();
    auto fixed = r.tensor(), values = r.tensor();
    TORCH_CHECK(fixed.defined() && values.defined() && values.is_floating_point(),
                "unify: checkpoint masks of layer '", f.name, "' are missing or not numeric");
    // The masks must fit the weight they freeze: a smaller one would broadcast over it.
    const Node* n = graph_ ? graph_->find(f.name) : nullptr;
    TORCH_CHECK(!graph_ || (n && n->params.count("weight")),
                "unify: the checkpoint has masks for '", f.name,
                "', which the model does not have (corrupt or foreign checkpoint?)");
    const auto shape = n ? n->params.at("weight").sizes() : values.sizes();
    TORCH_CHECK(fixed.sizes() == shape && values.sizes() == shape,
                "unify: checkpoint masks of layer '", f.name, "' have shapes ", fixed.sizes(),
                " / ", values.sizes(), ", the weight is ", shape,
                " (corrupt or foreign checkpoint?)");
    f.fixed = fixed.to(torch::kBool);
    f.values = values;
    v.push_back(std::move(f));
  }
  *frozen_ = std::move(v);
}

}  // namespace nnslim
