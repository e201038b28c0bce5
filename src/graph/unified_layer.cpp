// Block partition, lossless classification and dense reconstruction of unified layers
// (METHODS.md §4.3; contracts in graph/unified_layer.h).
#include "nnslim/graph/unified_layer.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <sstream>

namespace nnslim {

// ---- block shapes ------------------------------------------------------------------------------

std::string BlockShape::str() const {
  return std::to_string(out) + "x" + std::to_string(in) + "x" + (k == 0 ? "K" : std::to_string(k));
}

BlockShape parse_block_shape(const std::string& text, const std::string& what) {
  std::vector<std::string> parts;
  std::stringstream ss(text);
  for (std::string p; std::getline(ss, p, 'x');) parts.push_back(p);
  auto bad = [&]() {
    TORCH_CHECK(false, what,
                " expects OxIxK with positive integers (K may be the letter K = whole "
                "kernel), e.g. 1x4xK, 4x4x1, 1x1xK; got '",
                text, "'");
  };
  if (parts.size() != 3 || text.back() == 'x') bad();
  int64_t v[3] = {0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    if (i == 2 && (parts[i] == "K" || parts[i] == "k")) continue;  // whole kernel
    char* end = nullptr;
    long long x = std::strtoll(parts[i].c_str(), &end, 10);
    if (parts[i].empty() || *end != '\0' || x < 1 || x > (1 << 20)) bad();
    v[i] = x;
  }
  return {v[0], v[1], v[2]};
}

// ---- partition ---------------------------------------------------------------------------------

BlockPartition::BlockPartition(std::vector<int64_t> weight_shape, BlockShape shape)
    : weight_shape_(std::move(weight_shape)) {
  const auto& s = weight_shape_;
  TORCH_CHECK(s.size() == 4 || s.size() == 2,
              "unify: a block partition needs a [n, c, kh, kw] or [out, in] weight, got ", s.size(),
              " dimensions");
  for (auto d : s) TORCH_CHECK(d >= 1, "unify: cannot partition a weight with an empty dimension");
  TORCH_CHECK(shape.out >= 1 && shape.in >= 1 && shape.k >= 0, "unify: bad block shape ",
              shape.str());
  n_ = s[0];
  c_ = s[1];
  k_ = s.size() == 4 ? s[2] * s[3] : 1;
  bo_ = std::min(shape.out, n_);
  bi_ = std::min(shape.in, c_);
  bk_ = shape.k == 0 ? k_ : std::min(shape.k, k_);
  nbo_ = (n_ + bo_ - 1) / bo_;
  nbi_ = (c_ + bi_ - 1) / bi_;
  nbk_ = (k_ + bk_ - 1) / bk_;
  valid_ = to_blocks(torch::ones(weight_shape_, torch::kUInt8)).to(torch::kBool);
  sizes_ = valid_.sum(1).to(torch::kLong);
  block_rows_ = valid_.view({blocks(), bo_, bi_ * bk_}).any(2).sum(1).to(torch::kLong);
}

torch::Tensor BlockPartition::to_blocks(const torch::Tensor& w) const {
  TORCH_CHECK(w.numel() == numel(), "unify: weight has ", w.numel(), " entries, the partition ",
              numel());
  auto t = w.reshape({n_, c_, k_});
  t = torch::constant_pad_nd(t, {0, nbk_ * bk_ - k_, 0, nbi_ * bi_ - c_, 0, nbo_ * bo_ - n_}, 0);
  return t.view({nbo_, bo_, nbi_, bi_, nbk_, bk_})
      .permute({0, 2, 4, 1, 3, 5})
      .reshape({blocks(), block_size()});
}

torch::Tensor BlockPartition::from_blocks(const torch::Tensor& b) const {
  TORCH_CHECK(b.dim() == 2 && b.size(0) == blocks() && b.size(1) == block_size(),
              "unify: expected [", blocks(), ", ", block_size(), "] blocks");
  return b.reshape({nbo_, nbi_, nbk_, bo_, bi_, bk_})
      .permute({0, 3, 1, 4, 2, 5})
      .reshape({nbo_ * bo_, nbi_ * bi_, nbk_ * bk_})
      .slice(0, 0, n_)
      .slice(1, 0, c_)
      .slice(2, 0, k_)
      .reshape(weight_shape_)
      .contiguous();
}

torch::Tensor BlockPartition::expand(const torch::Tensor& per_block) const {
  TORCH_CHECK(per_block.numel() == blocks(), "unify: expected ", blocks(), " per-block values");
  return from_blocks(per_block.reshape({blocks(), 1}).expand({blocks(), block_size()}));
}

int64_t UnifiedLayer::count(BlockState s) const {
  return (state == static_cast<uint8_t>(s)).sum().item<int64_t>();
}

// ---- lossless classification and reconstruction --------------------------------------------

UnifiedLayer unified_from_weight(const torch::Tensor& weight, const BlockShape& block) {
  torch::NoGradGuard ng;
  TORCH_CHECK(weight.is_floating_point(), "unify: can only encode floating weights");
  auto w = weight.detach().to(torch::kCPU).contiguous();
  UnifiedLayer L;
  L.shape = w.sizes().vec();
  L.dtype = w.scalar_type();
  BlockPartition part(L.shape, block);
  L.block = part.block();
  auto b = part.to_blocks(w);
  const auto& valid = part.valid();
  auto neg = torch::signbit(b);
  // Pruned: every entry +0.0 (padding is +0.0 too), so -0.0 never turns into +0.0.
  auto pruned = ((b == 0) & ~neg).all(1);
  auto ab = b.abs();
  auto inf = std::numeric_limits<double>::infinity();
  auto mx = ab.masked_fill(~valid, -inf).amax(1);
  auto mn = ab.masked_fill(~valid, inf).amin(1);
  auto unified = (mx == mn) & (part.sizes() >= 2) & ~pruned;
  auto free = ~(pruned | unified);
  L.state = torch::zeros({part.blocks()}, torch::kUInt8)
                .masked_fill(pruned, static_cast<uint8_t>(BlockState::kPruned))
                .masked_fill(unified, static_cast<uint8_t>(BlockState::kUnified));
  L.magnitudes = mx.masked_select(unified).contiguous();
  L.signs = neg.index({unified}).masked_select(valid.index({unified})).contiguous();
  L.free_values = b.index({free}).masked_select(valid.index({free})).contiguous();
  return L;
}

torch::Tensor unified_to_weight(const UnifiedLayer& L) {
  torch::NoGradGuard ng;
  BlockPartition part(L.shape, L.block);
  const auto& valid = part.valid();
  auto opts = torch::TensorOptions().dtype(L.dtype);
  auto out = torch::zeros({part.blocks(), part.block_size()}, opts);
  auto unified = L.state == static_cast<uint8_t>(BlockState::kUnified);
  auto free = L.state == static_cast<uint8_t>(BlockState::kFree);
  if (L.magnitudes.numel() > 0) {
    auto vu = valid.index({unified});
    auto neg = torch::zeros(vu.sizes(), torch::kBool).masked_scatter_(vu, L.signs);
    auto a = L.magnitudes.to(L.dtype).unsqueeze(1).expand(vu.sizes());
    // -a is exact, and -(+0.0) = -0.0 restores negative zeros.
    out.index_put_({unified}, torch::where(neg, -a, a).masked_fill(~vu, 0));
  }
  if (L.free_values.numel() > 0) {
    auto vf = valid.index({free});
    out.index_put_({free}, torch::zeros(vf.sizes(), opts).masked_scatter_(vf, L.free_values));
  }
  return part.from_blocks(out);
}

}  // namespace nnslim
