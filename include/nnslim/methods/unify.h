// Micro-structured weight unification and pruning with ADMM (Lin et al., arXiv 2106.08301),
// METHODS.md §4.
//
// Every selected conv / linear weight is partitioned into blocks (methods/unify_format.h); the
// constraint set S(p, u) of a layer says: floor(p*|B|) blocks are all zero (pruned),
// floor(u*|B|) further blocks are unified (one magnitude, signs kept), the rest are free.
//
// Training (§4.5, one ADMM round per epoch, or every `round_batches` batches):
//   begin:   Z = Pi_S(W), U = 0, rho = rho0
//   W-step:  every batch, after backward, W.grad += rho * (W - Z + U)   (the gradient of
//            rho/2 ||W - Z + U||^2; the trainer's SGD does the rest)
//   round:   Z = Pi_S(W + U); U += W - Z; rho = min(rho_max, rho_growth * rho);
//            logged: unify_residual (max over layers of ||W - Z|| / ||W||), unify_residual_mean,
//            unify_rho
// finalize (§4.6): W = Pi_S(W) (hard projection); the block states, magnitudes and signs are
//   frozen; graph.meta[kUnifyBlocksMeta] lists the layers and their block shapes.
// finetune_method() (§4.6, masked retraining): gradients of pruned and unified entries are
//   zeroed after backward, and after every optimizer step the frozen entries are written back
//   exactly (pruned = 0, unified = a * s), so the structure holds bit for bit after each step.
//
// With p = u = 0 every block is free and S is the whole space: such layers get no penalty (an
// ADMM penalty would pull W towards the previous round's weights, a proximal-point method, not
// plain SGD), the projections are identities and the masks keep everything, so training and
// fine-tuning equal plain SGD bit for bit (a tested property). rho = 0 likewise leaves the
// W-step plain SGD for any p, u.
//
// Layers (§4.3, our choice): every Conv2d and Linear except the first conv (graph order) and the
// classifier (the last Linear in graph order), minus `exclude`.
//
// CLI: `nnslim compress --method unify --prune P --unify U [--block 1x4xK] --epochs R
// --finetune-epochs N`: R = ADMM rounds (the issue's --admm-rounds), N = masked-retraining
// epochs (the issue's --retrain-epochs).
#pragma once

#include "nnslim/methods/method.h"
#include "nnslim/methods/registry.h"
#include "nnslim/methods/unify_format.h"

#include <memory>
#include <set>
#include <string>
#include <vector>

namespace nnslim {

// Number of blocks a fraction selects: floor(fraction * blocks), robust to the rounding of
// e.g. 0.29 * 100 = 28.999... (a 1e-9 slack).
int64_t blocks_for_fraction(double fraction, int64_t blocks);

// Pi_S(X) of §4.4 for one layer.
struct BlockProjection {
  torch::Tensor weight;     // shape of X: pruned blocks 0, unified blocks a* sign(x), free = x
  torch::Tensor state;      // [blocks] uint8 BlockState (CPU)
  torch::Tensor magnitude;  // [blocks] a* of unified blocks, 0 elsewhere (dtype/device of X)
};
// Per block: E_p = ||x||^2, a* = mean|x| (exactly |x_j| when all |x_j| are equal, so that the
// projection is idempotent bit for bit), E_u = sum (|x_j| - a*)^2, sign(0) = +1.
// P = the floor(p|B|) blocks of smallest E_p; U = the floor(u|B|) blocks of smallest E_u among
// the rest; ties go to the lower block index. Requires 0 <= p, u and p + u <= 1.
BlockProjection project_blocks(const torch::Tensor& x, const BlockPartition& partition,
                               double prune, double unify);

// Storage and compute of one constrained layer (§4.6).
struct UnifyLayerCost {
  int64_t weights = 0;  // dense entries
  int64_t blocks = 0, pruned_blocks = 0, unified_blocks = 0, free_blocks = 0;
  int64_t free_weights = 0, unified_weights = 0, pruned_weights = 0;
  int64_t unified_rows = 0;  // sum over unified blocks of the output rows they span
  int64_t positions = 1;     // output positions per weight (Hout*Wout; 1 for linear)
  int64_t macs_dense = 0;    // weights * positions
  int64_t macs = 0;          // (free_weights + unified_rows) * positions
  double stored_values() const { return double(free_weights + unified_blocks); }
  // free values + magnitudes + sign bits/32 + mask bits/32 (2 bits per block)
  double stored_values_bits() const {
    return stored_values() + (unified_weights + 2.0 * blocks) / 32.0;
  }
};
// state: [blocks] BlockState; positions: output positions of the layer (Hout*Wout; 1 = linear).
// [OUR CHOICE] a unified block costs one multiply per output row it spans per position (= §4.6's
// "one MAC per unified block per output position" for b_o = 1).
UnifyLayerCost unify_layer_cost(const BlockPartition& partition, const torch::Tensor& state,
                                int64_t positions);

struct UnifyOptions {
  double prune = 0.5;              // p: fraction of blocks pruned per layer
  double unify = 0.25;             // u: fraction of blocks unified per layer
  BlockShape conv_block{1, 4, 0};  // (1, 4, K)
  BlockShape linear_block{1, 8, 1};
  double rho = 1e-4;        // rho0
  double rho_growth = 1.3;  // kappa, per ADMM round
  double rho_max = 0.1;
  int64_t round_batches = 0;      // 0: one ADMM round per epoch; N: every N batches
  std::set<std::string> exclude;  // node names kept dense (besides first conv, classifier)
  // Throws c10::Error naming the option ("unify: prune + unify must be <= 1, got 1.2").
  void validate() const;
};

// Frozen structure of one layer after finalize(), shared with the masked-retraining method.
struct UnifyFrozenLayer {
  std::string name;
  torch::Tensor fixed;   // weight shape, bool: entry is pruned or unified (not trainable)
  torch::Tensor values;  // weight shape: 0 for pruned, a*s for unified, 0 for free entries
};

class Unify : public Method {
 public:
  explicit Unify(UnifyOptions options);
  static std::vector<MethodOption> option_list();
  static std::shared_ptr<Method> create(const MethodConfig& c);
  std::string name() const override { return "unify"; }
  void check_applicable(const Graph& g) const override;
  void begin(Context& ctx) override;
  void after_backward(Context& ctx) override;
  void after_step(Context& ctx) override;
  void end_epoch(Context& ctx) override;
  void finalize(FinalizeContext& ctx) override;
  std::shared_ptr<Method> finetune_method() override;
  void describe(Json& out) const override;
  void save(Writer& w) const override;
  void load(Reader& r) override;

  const UnifyOptions& options() const { return opt_; }
  // Selected layer names in graph order (after begin() or finalize()).
  std::vector<std::string> selected() const;
  // One ADMM round (Z-, U- and rho-update), exposed for tests; end_epoch() calls it.
  void admm_round(Context& ctx);
  // ADMM state of layer `name` (undefined tensors before begin()).
  torch::Tensor z(const std::string& name) const;
  torch::Tensor u(const std::string& name) const;
  double rho() const { return rho_; }
  int64_t rounds() const { return rounds_; }
  // "prune P, unify U, conv blocks B, linear blocks B": the constraint the ADMM state is for.
  std::string constraint() const;
  // Primal residuals ||W - Z|| / ||W|| of the last round, per selected layer.
  std::vector<double> residuals() const;
  // The frozen structure (after finalize()).
  const std::vector<UnifyFrozenLayer>& frozen() const { return *frozen_; }

 private:
  struct State {
    std::string name;
    BlockPartition partition;
    torch::Tensor z, u;
    double residual = -1;
    bool trivial = false;  // floor(p|B|) = floor(u|B|) = 0: S is the whole space, no penalty
  };
  void select(const Graph& graph);
  BlockShape block_for(const Node& node) const;

  UnifyOptions opt_;
  std::vector<State> state_;
  double rho_ = 0;
  int64_t rounds_ = 0;
  std::shared_ptr<std::vector<UnifyFrozenLayer>> frozen_;
  Json details_ = Json::object();
};

// Masked retraining (§4.6): the fine-tune phase's hooks. Frozen entries get zero gradient and
// are rewritten exactly after every step.
class UnifyRetrain : public Method {
 public:
  explicit UnifyRetrain(std::shared_ptr<std::vector<UnifyFrozenLayer>> frozen);
  std::string name() const override { return "unify-retrain"; }
  void begin(Context& ctx) override;
  void after_backward(Context& ctx) override;
  void after_step(Context& ctx) override;
  void save(Writer& w) const override;
  void load(Reader& r) override;
  // Writes the frozen entries into the graph (what after_step does).
  void apply(Graph& graph) const;

 private:
  std::shared_ptr<std::vector<UnifyFrozenLayer>> frozen_;
  const Graph* graph_ = nullptr;  // the graph being trained, from begin() (for load's checks)
};

// Registry entry (`nnslim compress --method unify`): options prune, unify, block, linear-block,
// rho, rho-growth, rho-max, round-batches, exclude.
MethodInfo unify_method_info();

}  // namespace nnslim
