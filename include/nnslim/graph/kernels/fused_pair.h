// A fused CPU kernel for TRP's channel-scheme factor pair at inference: y = W2 . conv_kxk(x, W1) +
// b in one pass, row by row, so the r-channel intermediate never leaves L1 and the input is read
// once, directly (no im2col). Eager kernels run a thin kxk conv C -> r at batch 1 in about the
// time of the full C -> N conv (their cost is set by the input side), and the 1x1 comes on top;
// this kernel's cost follows r. Used by the executor when an inference plan
// (graph/inference_plan.h) has chosen it for a node by measured time; never in training (no
// autograd).
#pragma once

#include <torch/types.h>

namespace nnslim {

// Whether fused_pair can compute conv(x, w1; stride, padding, dilation, groups) then the 1x1 w2:
// float32 CPU tensors without grad, stride 1, dilation 1, groups 1, padding < kernel per axis.
bool fused_pair_supports(const torch::Tensor& x, const torch::Tensor& w1, const torch::Tensor& w2,
                         at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                         int64_t groups);

// x [B, C, H, W]; w1 [r, C, kh, kw]; w2 [N, r] or [N, r, 1, 1]; bias [N] or undefined.
// Returns [B, N, Ho, Wo] (NCHW). AVX2/FMA where the CPU has it, portable loops otherwise (or when
// the environment sets NNSLIM_FUSED_PORTABLE=1, for tests and comparisons).
torch::Tensor fused_pair(const torch::Tensor& x, const torch::Tensor& w1, const torch::Tensor& w2,
                         const torch::Tensor& bias, at::IntArrayRef padding);

}  // namespace nnslim
