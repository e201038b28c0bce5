// Micro-structured weight unification (METHODS.md §4): the block partition of a weight, the
// compact storage format of a unified layer, the *.nnslim file that carries it, and an inference
// kernel that uses the structure.
//
// Partition (§4.3). A conv weight [n, c, kh, kw] is viewed as T [n, c, K] (K = kh*kw), a linear
// weight [out, in] as [out, in, 1]. A block shape (b_o, b_i, b_k) tiles T; blocks are numbered
// row-major over (block row, block column, block k) and the entries of a block row-major over
// (o, i, k). Edge blocks are smaller: they are zero-padded to b_o*b_i*b_k entries in the
// [blocks, S] view, and `valid` says which entries exist.
//
// A block is in one of three states (§4.3): free (any values), pruned (all zero) or unified
// (every entry = a * s_j with one magnitude a >= 0 and its own sign s_j).
//
// Compact layer encoding (§4.6 "export"; all integers little-endian):
//   "UNF1" | u8 dtype (c10::ScalarType) | u8 ndim | i64 shape[ndim] | i64 b_o, b_i, b_k
//   | u64 blocks | u64 unified blocks U | u64 sign bits | u64 free values F
//   | mask: 2 bits per block, LSB first (0 free, 1 pruned, 2 unified), ceil(blocks/4) bytes
//   | U magnitudes (dtype) | sign bits, one per entry of a unified block (1 = negative), LSB first
//   | F free values (dtype)
// Everything is in block order, so the decoder needs no indices. Round trips are bit-exact.
#pragma once

#include "nnslim/graph/graph.h"

#include <cstdint>
#include <map>
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
  int64_t rows() const { return n_; }        // n (out channels / features)
  int64_t cols() const { return c_; }        // c (in channels per group / in features)
  int64_t kernel() const { return k_; }      // K
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
  std::vector<int64_t> shape;           // weight shape
  BlockShape block;                     // resolved block shape
  torch::ScalarType dtype = torch::kFloat;
  torch::Tensor state;                  // [blocks] uint8 BlockState
  torch::Tensor magnitudes;             // [unified blocks] dtype, a >= 0 (or -0.0 never: a = |w|)
  torch::Tensor signs;                  // [entries of unified blocks] bool, true = negative
  torch::Tensor free_values;            // [entries of free blocks] dtype
  BlockPartition partition() const { return BlockPartition(shape, block); }
  int64_t count(BlockState s) const;    // blocks in state s
};

// Lossless classification of a weight by content: a block is pruned when every entry is +0.0,
// unified when it has >= 2 entries that all have the same |w| (their signs kept bit for bit,
// -0.0 included), free otherwise. unified_to_weight(unified_from_weight(w, b)) == w bit for bit.
UnifiedLayer unified_from_weight(const torch::Tensor& weight, const BlockShape& block);
// Dense reconstruction (CPU, dtype of the layer): pruned -> 0, unified -> +-a, free -> values.
torch::Tensor unified_to_weight(const UnifiedLayer& layer);
std::string encode_unified(const UnifiedLayer& layer);
// Checks every count and size; `what` names the source in errors.
UnifiedLayer decode_unified(const std::string& bytes, const std::string& what);

// Graph metadata key listing the unified layers and their resolved block shapes:
// "name=1x4x9;name2=1x8x1" (written by the unify method's finalize()).
extern const char* const kUnifyBlocksMeta;
std::map<std::string, BlockShape> unified_layer_blocks(const Graph& graph);

// The compact *.nnslim file (magic "NNSLIMU\0", the framing of serialize.h). Its payload is an
// ordinary graph payload in which every layer listed in kUnifyBlocksMeta carries its encoded
// layer as a uint8 buffer "unify.code" and an all-zero placeholder weight (the standard v2
// writer stores it in ~numel/128 bytes). load_graph() refuses this file (other magic), so a
// placeholder can never be mistaken for weights; load_unified() restores the dense weights
// bit for bit.
std::string unified_graph_bytes(const Graph& graph);  // the payload
void save_unified(const Graph& graph, const std::string& path);
Graph load_unified(const std::string& path);
// Bytes save_unified() would write (payload + framing), without writing.
int64_t unified_file_bytes(const Graph& graph);

// Inference kernel for a conv whose weight is a UnifiedLayer (§4.1, §4.7 item 6): per output
// channel and output position, free weights multiply-accumulate as usual; a unified block first
// sums its signed inputs (additions only) and then multiplies once by its magnitude; pruned
// blocks cost nothing. The input is unfolded (im2col) chunk by chunk into a small buffer, and
// the loops are compiled for AVX-512, AVX2 and baseline x86-64 (picked at load time). float and
// double, CPU, any groups/stride/padding/dilation.
class UnifiedConv2d {
 public:
  // attrs: stride, padding, dilation, groups of the conv node; layer.shape = [n, c/g, kh, kw].
  UnifiedConv2d(const UnifiedLayer& layer, const Attrs& attrs);
  // x [N, C, H, W] (dtype of the layer) -> [N, n, Hout, Wout]; bias [n] optional.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bias = {}) const;
  // Multiplies forward() performs per output position (spatial), i.e. per image
  // multiplies = this * Hout * Wout: free weights + sum over unified blocks of their rows.
  int64_t multiplies_per_position() const { return multiplies_; }

 private:
  std::vector<int64_t> shape_;
  Attrs attrs_;
  torch::ScalarType dtype_;
  // Per output channel o, entries [row_begin_[o], row_begin_[o+1]) of free_rows_/free_w_ and
  // groups [group_begin_[o], group_begin_[o+1]) of group_*; a group's rows are
  // unified_rows_[group_rows_[g] .. group_rows_[g+1]), the first group_pos_[g] added, the rest
  // subtracted. Rows index the unfolded input of the channel's conv group.
  // Offsets are int64; row indices int32 (4 bytes per entry: the plan is streamed per tile).
  std::vector<int64_t> row_begin_, group_begin_, group_rows_, group_pos_;
  std::vector<int32_t> free_rows_, unified_rows_;
  std::vector<float> free_w32_, group_a32_;  // the values, in both precisions
  std::vector<double> free_w64_, group_a64_;
  int64_t multiplies_ = 0;
};

// One-shot convenience: UnifiedConv2d(layer, attrs).forward(x, bias).
torch::Tensor unified_conv2d(const torch::Tensor& x, const UnifiedLayer& layer, const Attrs& attrs,
                             const torch::Tensor& bias = {});

}  // namespace nnslim
