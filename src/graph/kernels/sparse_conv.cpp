#include "nnslim/graph/kernels/sparse_conv.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NNSLIM_HAVE_AVX2_PATH 1
#endif

namespace nnslim {

const char* to_string(SparseConvKernel kernel) {
  return kernel == SparseConvKernel::kDirect ? "direct" : "im2col-csr";
}

SparseConvWeight to_sparse_conv_weight(const torch::Tensor& weight) {
  TORCH_CHECK(
      weight.dim() == 4 && weight.scalar_type() == torch::kFloat && weight.device().is_cpu(),
      "sparse conv: the weight must be a float32 CPU tensor [N, C, kh, kw], got ", weight.sizes(),
      " ", weight.scalar_type());
  auto w = weight.detach().contiguous();
  SparseConvWeight s;
  s.out_channels = w.size(0);
  s.in_channels = w.size(1);
  s.kh = w.size(2);
  s.kw = w.size(3);
  const int64_t row = s.in_channels * s.kh * s.kw;
  TORCH_CHECK(row <= INT32_MAX, "sparse conv: a filter of ", row, " weights is too large");
  const float* p = w.data_ptr<float>();
  std::vector<int64_t> ptr{0};
  std::vector<int32_t> cols;
  std::vector<float> vals;
  for (int64_t n = 0; n < s.out_channels; ++n) {
    for (int64_t j = 0; j < row; ++j)
      if (p[n * row + j] != 0.f) {
        cols.push_back(static_cast<int32_t>(j));
        vals.push_back(p[n * row + j]);
      }
    ptr.push_back(static_cast<int64_t>(vals.size()));
  }
  s.row_ptr = torch::tensor(ptr, torch::kLong);
  s.cols = torch::from_blob(cols.data(), {static_cast<int64_t>(cols.size())}, torch::kInt).clone();
  s.values =
      torch::from_blob(vals.data(), {static_cast<int64_t>(vals.size())}, torch::kFloat).clone();
  return s;
}

double zero_fraction(const torch::Tensor& t) {
  if (t.numel() == 0) return 0;
  return (t == 0).sum().item<double>() / static_cast<double>(t.numel());
}

bool sparse_conv_supports(const torch::Tensor& x, const torch::Tensor& weight, int64_t groups) {
  return groups == 1 && x.dim() == 4 && weight.dim() == 4 && x.scalar_type() == torch::kFloat &&
         weight.scalar_type() == torch::kFloat && x.device().is_cpu() && weight.device().is_cpu() &&
         x.is_contiguous() && x.size(1) == weight.size(1);
}

namespace {

struct Geometry {
  int64_t B, C, H, W, N, Ho, Wo, sh, sw, ph, pw, dh, dw;
};

Geometry geometry_of(const torch::Tensor& x, const SparseConvWeight& w, at::IntArrayRef stride,
                     at::IntArrayRef padding, at::IntArrayRef dilation) {
  for (auto a : {stride, padding, dilation})
    TORCH_CHECK(a.size() == 1 || a.size() == 2,
                "sparse conv: stride, padding and dilation need 1 or 2 values");
  auto pick = [](at::IntArrayRef a, size_t i) { return a.size() == 1 ? a[0] : a[i]; };
  Geometry g{x.size(0),
             x.size(1),
             x.size(2),
             x.size(3),
             w.out_channels,
             0,
             0,
             pick(stride, 0),
             pick(stride, 1),
             pick(padding, 0),
             pick(padding, 1),
             pick(dilation, 0),
             pick(dilation, 1)};
  TORCH_CHECK(g.sh >= 1 && g.sw >= 1 && g.dh >= 1 && g.dw >= 1 && g.ph >= 0 && g.pw >= 0,
              "sparse conv: stride and dilation must be >= 1 and padding >= 0");
  // The padded input must hold one dilated kernel (integer division alone would round a
  // negative span up to one output row).
  const int64_t span_h = g.dh * (w.kh - 1) + 1, span_w = g.dw * (w.kw - 1) + 1;
  TORCH_CHECK(g.H + 2 * g.ph >= span_h && g.W + 2 * g.pw >= span_w, "sparse conv: input ",
              x.sizes(), " (padded by ", g.ph, ",", g.pw, ") is smaller than the ", span_h, "x",
              span_w, " kernel");
  g.Ho = (g.H + 2 * g.ph - span_h) / g.sh + 1;
  g.Wo = (g.W + 2 * g.pw - span_w) / g.sw + 1;
  return g;
}

// Output planes start at the bias (or zero); the kernels add the products.
torch::Tensor output_with_bias(const Geometry& g, const torch::Tensor& bias) {
  if (!bias.defined()) return torch::zeros({g.B, g.N, g.Ho, g.Wo}, torch::kFloat);
  return bias.detach()
      .to(torch::kFloat)
      .reshape({1, g.N, 1, 1})
      .expand({g.B, g.N, g.Ho, g.Wo})
      .contiguous();
}

// One output row of one output channel: acc(x) = orow(x) + sum_k val[k] * src_k[x * sw], with
// src_k = input + offset[k] + row. The accumulators stay in registers across all nonzeros of
// the channel (the loop over nonzeros is innermost), so each nonzero costs one load and one FMA
// per 8 outputs, and the output row is written once.
void direct_row_portable(const float* in, const int64_t* offset, const float* val, int64_t nnz,
                         int64_t Wo, int64_t sw, float* orow) {
  for (int64_t k = 0; k < nnz; ++k) {
    const float v = val[k];
    const float* src = in + offset[k];
    if (sw == 1)
      for (int64_t x = 0; x < Wo; ++x) orow[x] += v * src[x];
    else
      for (int64_t x = 0; x < Wo; ++x) orow[x] += v * src[x * sw];
  }
}

#ifdef NNSLIM_HAVE_AVX2_PATH
__attribute__((target("avx2,fma"))) void direct_row_avx2(const float* in, const int64_t* offset,
                                                         const float* val, int64_t nnz, int64_t Wo,
                                                         float* orow) {
  int64_t x0 = 0;
  for (; x0 + 32 <= Wo; x0 += 32) {
    __m256 a0 = _mm256_loadu_ps(orow + x0), a1 = _mm256_loadu_ps(orow + x0 + 8);
    __m256 a2 = _mm256_loadu_ps(orow + x0 + 16), a3 = _mm256_loadu_ps(orow + x0 + 24);
    for (int64_t k = 0; k < nnz; ++k) {
      const __m256 v = _mm256_set1_ps(val[k]);
      const float* src = in + offset[k] + x0;
      a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(src), a0);
      a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(src + 8), a1);
      a2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(src + 16), a2);
      a3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(src + 24), a3);
    }
    _mm256_storeu_ps(orow + x0, a0);
    _mm256_storeu_ps(orow + x0 + 8, a1);
    _mm256_storeu_ps(orow + x0 + 16, a2);
    _mm256_storeu_ps(orow + x0 + 24, a3);
  }
  for (; x0 + 8 <= Wo; x0 += 8) {
    __m256 a = _mm256_loadu_ps(orow + x0);
    for (int64_t k = 0; k < nnz; ++k)
      a = _mm256_fmadd_ps(_mm256_set1_ps(val[k]), _mm256_loadu_ps(in + offset[k] + x0), a);
    _mm256_storeu_ps(orow + x0, a);
  }
  if (x0 < Wo) {  // the last 1..7 outputs: masked loads (masked-out lanes are never read)
    alignas(32) int32_t lanes[8];
    for (int i = 0; i < 8; ++i) lanes[i] = i < Wo - x0 ? -1 : 0;
    const __m256i mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
    __m256 a = _mm256_maskload_ps(orow + x0, mask);
    for (int64_t k = 0; k < nnz; ++k)
      a = _mm256_fmadd_ps(_mm256_set1_ps(val[k]), _mm256_maskload_ps(in + offset[k] + x0, mask), a);
    _mm256_maskstore_ps(orow + x0, mask, a);
  }
}
#endif

bool use_avx2() {
#ifdef NNSLIM_HAVE_AVX2_PATH
  static const bool cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const char* portable = std::getenv("NNSLIM_SPARSE_PORTABLE");  // read per call: tests switch it
  return cpu && !(portable && std::string(portable) == "1");
#else
  return false;
#endif
}

torch::Tensor direct(const torch::Tensor& x, const SparseConvWeight& w, const Geometry& g,
                     const torch::Tensor& bias) {
  auto xp = (g.ph || g.pw) ? torch::constant_pad_nd(x, {g.pw, g.pw, g.ph, g.ph}, 0) : x;
  xp = xp.contiguous();
  const int64_t Hp = xp.size(2), Wp = xp.size(3);
  // Each nonzero's offset into one padded image: (c * Hp + dy * dh) * Wp + dx * dw.
  const int64_t nnz = w.values.numel();
  const int32_t* cols = w.cols.data_ptr<int32_t>();
  std::vector<int64_t> offset(nnz);
  for (int64_t k = 0; k < nnz; ++k) {
    const int64_t j = cols[k], c = j / (w.kh * w.kw), t = j % (w.kh * w.kw);
    offset[k] = (c * Hp + (t / w.kw) * g.dh) * Wp + (t % w.kw) * g.dw;
  }
  auto out = output_with_bias(g, bias);
  const float* xin = xp.data_ptr<float>();
  const float* val = w.values.data_ptr<float>();
  const int64_t* ptr = w.row_ptr.data_ptr<int64_t>();
  float* o = out.data_ptr<float>();
  const int64_t Ho = g.Ho, Wo = g.Wo, sh = g.sh, sw = g.sw, plane = g.C * Hp * Wp;
  const bool avx2 = use_avx2() && sw == 1;
  (void)avx2;  // unused where there is no AVX2 path
  at::parallel_for(0, g.B * g.N, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / g.N, n = i % g.N, k0 = ptr[n], count = ptr[n + 1] - k0;
      for (int64_t y = 0; y < Ho; ++y) {
        const float* in = xin + b * plane + y * sh * Wp;
        float* orow = o + (i * Ho + y) * Wo;
#ifdef NNSLIM_HAVE_AVX2_PATH
        if (avx2) {
          direct_row_avx2(in, offset.data() + k0, val + k0, count, Wo, orow);
          continue;
        }
#endif
        direct_row_portable(in, offset.data() + k0, val + k0, count, Wo, sw, orow);
      }
    }
  });
  return out;
}

// A row of output channel n is the row-vector product of its CSR row with the patch matrix:
// the same accumulate-in-registers loop as the direct kernel, with patch rows as the inputs.
torch::Tensor im2col_csr(const torch::Tensor& x, const SparseConvWeight& w, const Geometry& g,
                         const torch::Tensor& bias) {
  auto out = output_with_bias(g, bias);
  const int64_t L = g.Ho * g.Wo, nnz = w.values.numel();
  const int32_t* cols = w.cols.data_ptr<int32_t>();
  std::vector<int64_t> offset(nnz);
  for (int64_t k = 0; k < nnz; ++k) offset[k] = static_cast<int64_t>(cols[k]) * L;
  const float* val = w.values.data_ptr<float>();
  const int64_t* ptr = w.row_ptr.data_ptr<int64_t>();
  const bool avx2 = use_avx2();
  (void)avx2;
  for (int64_t b = 0; b < g.B; ++b) {
    // [C * kh * kw, L]: one image's patches stay in cache while every row reads them.
    auto patches =
        torch::im2col(x.narrow(0, b, 1), {w.kh, w.kw}, {g.dh, g.dw}, {g.ph, g.pw}, {g.sh, g.sw})[0]
            .contiguous();
    const float* P = patches.data_ptr<float>();
    float* ob = out.data_ptr<float>() + b * g.N * L;
    at::parallel_for(0, g.N, 1, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        const int64_t k0 = ptr[n], count = ptr[n + 1] - k0;
#ifdef NNSLIM_HAVE_AVX2_PATH
        if (avx2) {
          direct_row_avx2(P, offset.data() + k0, val + k0, count, L, ob + n * L);
          continue;
        }
#endif
        direct_row_portable(P, offset.data() + k0, val + k0, count, L, 1, ob + n * L);
      }
    });
  }
  return out;
}

}  // namespace

torch::Tensor sparse_conv2d(const torch::Tensor& x, const SparseConvWeight& weight,
                            const torch::Tensor& bias, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef dilation,
                            SparseConvKernel kernel) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kFloat && x.device().is_cpu(),
              "sparse conv: the input must be a float32 CPU tensor [B, C, H, W], got ", x.sizes());
  TORCH_CHECK(x.size(1) == weight.in_channels, "sparse conv: input has ", x.size(1),
              " channels, the weight expects ", weight.in_channels);
  TORCH_CHECK(!bias.defined() || bias.numel() == weight.out_channels, "sparse conv: bias of ",
              bias.numel(), " values for ", weight.out_channels, " outputs");
  auto xc = x.detach().contiguous();
  Geometry g = geometry_of(xc, weight, stride, padding, dilation);
  return kernel == SparseConvKernel::kDirect ? direct(xc, weight, g, bias)
                                             : im2col_csr(xc, weight, g, bias);
}

}  // namespace nnslim
