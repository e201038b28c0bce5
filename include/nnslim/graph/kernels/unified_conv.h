// Inference kernel for a conv whose weight is a UnifiedLayer (graph/unified_layer.h; METHODS.md
// §4.1, §4.7 item 6): per output channel and output position, free weights multiply-accumulate
// as usual; a unified block first sums its signed inputs (additions only) and then multiplies
// once by its magnitude; pruned blocks cost nothing. The input is unfolded (im2col) chunk by
// chunk into a small buffer, and the loops are compiled for AVX-512, AVX2 and baseline x86-64
// (picked at load time). float and double, CPU, any groups/stride/padding/dilation.
// The executor runs it for a conv node whose kernel is ConvKernel::kUnified (graph/lowering.h).
#pragma once

#include "nnslim/graph/graph.h"
#include "nnslim/graph/unified_layer.h"

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace nnslim {

class UnifiedConv2d {
 public:
  // attrs: stride, padding, dilation, groups of the conv node; layer.shape = [n, c/g, kh, kw].
  UnifiedConv2d(const UnifiedLayer& layer, const Attrs& attrs);
  // x [N, C, H, W] (dtype of the layer) -> [N, n, Hout, Wout]; bias [n] optional.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& bias = {}) const;
  // Multiplies forward() performs per output position (spatial), i.e. per image
  // multiplies = this * Hout * Wout: free weights + sum over unified blocks of their rows.
  int64_t multiplies_per_position() const { return multiplies_; }
  torch::ScalarType dtype() const { return dtype_; }  // of the layer; forward() takes only it

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
