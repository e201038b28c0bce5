// Sparse convolution for inference: what element-wise sparsity (gRDA, OBProx-SG, magnitude
// pruning of single weights) buys on a CPU. Dense kernels do the same work whatever the zeros;
// these do work per nonzero weight. Measured (bench/sparse_inference.cpp, docs/methods/grda.md):
// at batch 1 they beat oneDNN's dense conv from ~90% zeros; at large batches only from ~95-98%.
// So they are never the default blindly: the inference plan (graph/inference_plan.h) times each
// sparse conv layer dense and sparse on its real input and keeps the faster. Never in training.
#pragma once

#include <torch/types.h>

namespace nnslim {

enum class SparseConvKernel : int64_t {
  // Each nonzero w[n, c, dy, dx] adds w * (input plane c shifted by dy, dx) to output plane n;
  // no im2col. Best on large feature maps.
  kDirect = 0,
  // im2col per image, then a CSR x dense product. Best on small feature maps (rows too short for
  // the direct kernel's inner loop).
  kIm2colCsr = 1,
};
const char* to_string(SparseConvKernel kernel);

// A conv weight [N, C, kh, kw] as CSR over output channels; the column of w[n, c, dy, dx] is
// (c * kh + dy) * kw + dx, which is also its row in im2col's output.
struct SparseConvWeight {
  torch::Tensor row_ptr;  // int64 [N + 1]
  torch::Tensor cols;     // int32 [nnz]
  torch::Tensor values;   // float32 [nnz]
  int64_t out_channels = 0, in_channels = 0, kh = 0, kw = 0;
};
SparseConvWeight to_sparse_conv_weight(const torch::Tensor& weight);

// Fraction of exact zeros in t (0 for an empty tensor).
double zero_fraction(const torch::Tensor& t);

// Whether sparse_conv2d can compute conv2d(x, weight; stride, padding, dilation, groups): float32
// CPU tensors, 4-d contiguous (NCHW) input, groups 1.
bool sparse_conv_supports(const torch::Tensor& x, const torch::Tensor& weight, int64_t groups);

// conv2d(x, weight, bias; stride, padding, dilation) from the CSR form. bias [N] or undefined.
// Both kernels keep a row of outputs in registers while they run over a channel's nonzeros;
// AVX2/FMA where the CPU has it, portable loops otherwise (or when the environment sets
// NNSLIM_SPARSE_PORTABLE=1, for tests and comparisons). Zero weights are skipped, so a NaN or
// Inf input meets no 0 * Inf product: where dense conv would give NaN, this gives the sum of the
// nonzero products.
torch::Tensor sparse_conv2d(const torch::Tensor& x, const SparseConvWeight& weight,
                            const torch::Tensor& bias, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef dilation,
                            SparseConvKernel kernel);

}  // namespace nnslim
