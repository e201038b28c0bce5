// Micro-structured weight unification (METHODS.md §4), the data: the block partition of a
// weight and one layer in unified form. Its byte encoding is graph/unified_codec.h, the file
// that carries it graph/unified_file.h, the inference kernel graph/kernels/unified_conv.h; the
// training method that produces it is methods/unify.h.
//
// Partition (§4.3). A conv weight [n, c, kh, kw] is viewed as T [n, c, K] (K = kh*kw), a linear
// weight [out, in] as [out, in, 1]. A block shape (b_o, b_i, b_k) tiles T; blocks are numbered
// row-major over (block row, block column, block k) and the entries of a block row-major over
// (o, i, k). Edge blocks are smaller: they are zero-padded to b_o*b_i*b_k entries in the
// [blocks, S] view, and `valid` says which entries exist.
//
// A block is in one of three states (§4.3): free (any values), pruned (all zero) or unified
// (every entry = a * s_j with one magnitude a >= 0 and its own sign s_j).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nnslim {

// Block shape (b_o, b_i, b_k). k = 0 means "the whole kernel" (K), written "K" in text.
struct BlockShape {
  int64_t out = 1, in = 4, k = 0;
  std::string str() const;  // "1x4xK", "4x4x1"
  bool operator==(const BlockShape& o) const { return out == o.out && in == o.in && k == o.k; }
};
// Parses "OxIxK" where each part is a positive integer and the last may be "K" (whole kernel).
// `what` names the option in errors ("unify: --block expects OxIxK ..., got '1x4'").
BlockShape parse_block_shape(const std::string& text, const std::string& what);

enum class BlockState : uint8_t { kFree = 0, kPruned = 1, kUnified = 2 };

// The partition of one weight tensor into blocks.
class BlockPartition {
 public:
  BlockPartition() = default;
  // weight_shape: [n, c, kh, kw] or [out, in]. Block dimensions larger than the tensor are
  // clamped to it; k = 0 becomes K.
  BlockPartition(std::vector<int64_t> weight_shape, BlockShape shape);

  const std::vector<int64_t>& weight_shape() const { return weight_shape_; }
  BlockShape block() const { return {bo_, bi_, bk_}; }  // resolved: no k = 0
  int64_t rows() const { return n_; }                   // n (out channels / features)
  int64_t cols() const { return c_; }                   // c (in channels per group / in features)
  int64_t kernel() const { return k_; }                 // K
  int64_t blocks() const { return nbo_ * nbi_ * nbk_; }
  int64_t block_size() const { return bo_ * bi_ * bk_; }  // S, entries of a full block
  int64_t numel() const { return n_ * c_ * k_; }

  // w (weight_shape) -> [blocks, S], zero-padded at the edges. Exact (a permutation).
  torch::Tensor to_blocks(const torch::Tensor& w) const;
  // [blocks, S] -> weight_shape (padding dropped); any dtype. Inverse of to_blocks.
  torch::Tensor from_blocks(const torch::Tensor& b) const;
  // [blocks] per-block values -> weight_shape, every entry takes its block's value.
  torch::Tensor expand(const torch::Tensor& per_block) const;
  // [blocks, S] bool: the entry exists (false only in padding of edge blocks). CPU.
  const torch::Tensor& valid() const { return valid_; }
  // [blocks] int64: entries per block. CPU.
  const torch::Tensor& sizes() const { return sizes_; }
  // [blocks] int64: output rows a block spans (the multiplies a unified block costs per
  // output position, §4.6). CPU.
  const torch::Tensor& block_rows() const { return block_rows_; }

 private:
  std::vector<int64_t> weight_shape_;
  int64_t n_ = 0, c_ = 0, k_ = 0, bo_ = 1, bi_ = 1, bk_ = 1, nbo_ = 0, nbi_ = 0, nbk_ = 0;
  torch::Tensor valid_, sizes_, block_rows_;
};

// One layer in compact form (decoded). Tensors are CPU, 1-D.
struct UnifiedLayer {
  std::vector<int64_t> shape;  // weight shape
  BlockShape block;            // resolved block shape
  torch::ScalarType dtype = torch::kFloat;
  torch::Tensor state;        // [blocks] uint8 BlockState
  torch::Tensor magnitudes;   // [unified blocks] dtype, a >= 0 (or -0.0 never: a = |w|)
  torch::Tensor signs;        // [entries of unified blocks] bool, true = negative
  torch::Tensor free_values;  // [entries of free blocks] dtype
  BlockPartition partition() const { return BlockPartition(shape, block); }
  int64_t count(BlockState s) const;  // blocks in state s
};

// Lossless classification of a weight by content: a block is pruned when every entry is +0.0,
// unified when it has >= 2 entries that all have the same |w| (their signs kept bit for bit,
// -0.0 included), free otherwise. unified_to_weight(unified_from_weight(w, b)) == w bit for bit.
UnifiedLayer unified_from_weight(const torch::Tensor& weight, const BlockShape& block);
// Dense reconstruction (CPU, dtype of the layer): pruned -> 0, unified -> +-a, free -> values.
torch::Tensor unified_to_weight(const UnifiedLayer& layer);

}  // namespace nnslim
