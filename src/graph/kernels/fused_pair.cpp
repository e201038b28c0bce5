#include "nnslim/graph/kernels/fused_pair.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NNSLIM_HAVE_AVX2_PATH 1
#endif

namespace nnslim {

namespace {

constexpr int kRBlock = 4;  // first-factor outputs computed together (one x load feeds 4 FMAs)
constexpr int kWBlock = 8;  // output pixels per vector

struct Shape {
  int C, H, W, R, KH, KW, PH, PW, N;
  int Hp() const { return H + 2 * PH; }
  int Wp() const { return W + 2 * PW; }
  int Ho() const { return Hp() - KH + 1; }
  int Wo() const { return Wp() - KW + 1; }
  // Padded row length: room for a full vector read past the last output pixel.
  int row() const { return Wp() + 2 * kWBlock; }
  int Rp() const { return (R + kRBlock - 1) / kRBlock * kRBlock; }
};

// W1 [R, C, KH, KW] -> [Rp/4][C][KH][KW][4], zero rows past R.
std::vector<float> pack_first(const float* w1, const Shape& s) {
  const int taps = s.C * s.KH * s.KW;
  std::vector<float> p(static_cast<size_t>(s.Rp()) * taps, 0.f);
  for (int r = 0; r < s.R; ++r)
    for (int t = 0; t < taps; ++t)
      p[(static_cast<size_t>(r / kRBlock) * taps + t) * kRBlock + r % kRBlock] = w1[r * taps + t];
  return p;
}

// xp: [C][Hp][row] with the input at (PH, PW); only the border and slack are zeroed.
void pad_input(const float* x, const Shape& s, float* xp) {
  const int Hp = s.Hp(), row = s.row();
  for (int c = 0; c < s.C; ++c) {
    float* pc = xp + static_cast<size_t>(c) * Hp * row;
    std::fill(pc, pc + static_cast<size_t>(s.PH) * row, 0.f);
    std::fill(pc + static_cast<size_t>(s.PH + s.H) * row, pc + static_cast<size_t>(Hp) * row, 0.f);
    for (int h = 0; h < s.H; ++h) {
      float* pr = pc + static_cast<size_t>(h + s.PH) * row;
      const float* xr = x + (static_cast<size_t>(c) * s.H + h) * s.W;
      std::fill(pr, pr + s.PW, 0.f);
      std::copy(xr, xr + s.W, pr + s.PW);
      std::fill(pr + s.PW + s.W, pr + row, 0.f);
    }
  }
}

// z[r][wo] for output row ho, r in [r0, r0+4): the first factor, portable version.
void first_rows_generic(const float* xp, const float* pk, const Shape& s, int ho, int rb,
                        float* z) {
  const int taps = s.C * s.KH * s.KW, Wo = s.Wo();
  const float* w = pk + static_cast<size_t>(rb) * taps * kRBlock;
  for (int j = 0; j < kRBlock; ++j) std::fill(z + j * Wo, z + (j + 1) * Wo, 0.f);
  for (int c = 0; c < s.C; ++c)
    for (int ky = 0; ky < s.KH; ++ky) {
      const float* xr = xp + (static_cast<size_t>(c) * s.Hp() + ho + ky) * s.row();
      for (int kx = 0; kx < s.KW; ++kx, w += kRBlock)
        for (int j = 0; j < kRBlock; ++j)
          for (int wo = 0; wo < Wo; ++wo) z[j * Wo + wo] += w[j] * xr[wo + kx];
    }
}

#ifdef NNSLIM_HAVE_AVX2_PATH
// Same with AVX2/FMA: 4 outputs x 16 (or 8) pixels in registers across all C*KH*KW taps; one
// input load feeds 4 FMAs. z rows have stride Wo + kWBlock*2 (slack for full-vector stores).
template <int RB, int V>  // RB first-factor outputs (<= kRBlock) x V vectors of 8 pixels
__attribute__((target("avx2,fma"))) inline void first_block_avx2(const float* xp, const float* w,
                                                                 const Shape& s, int ho, int wo,
                                                                 float* z, int zrow) {
  __m256 acc[RB][V];
  for (int j = 0; j < RB; ++j)
    for (int v = 0; v < V; ++v) acc[j][v] = _mm256_setzero_ps();
  for (int c = 0; c < s.C; ++c)
    for (int ky = 0; ky < s.KH; ++ky) {
      const float* xr = xp + (static_cast<size_t>(c) * s.Hp() + ho + ky) * s.row() + wo;
      for (int kx = 0; kx < s.KW; ++kx, w += kRBlock) {
        __m256 xv[V];
        for (int v = 0; v < V; ++v) xv[v] = _mm256_loadu_ps(xr + kx + 8 * v);
        for (int j = 0; j < RB; ++j) {
          __m256 wv = _mm256_broadcast_ss(w + j);
          for (int v = 0; v < V; ++v) acc[j][v] = _mm256_fmadd_ps(wv, xv[v], acc[j][v]);
        }
      }
    }
  for (int j = 0; j < RB; ++j)
    for (int v = 0; v < V; ++v) _mm256_storeu_ps(z + j * zrow + wo + 8 * v, acc[j][v]);
}

template <int RB>
__attribute__((target("avx2,fma"))) void first_rows_rb(const float* xp, const float* wb,
                                                       const Shape& s, int ho, float* z, int zrow) {
  const int Wo = s.Wo();
  int wo = 0;
  for (; wo + 8 < Wo; wo += 16) first_block_avx2<RB, 2>(xp, wb, s, ho, wo, z, zrow);
  for (; wo < Wo; wo += 8) first_block_avx2<RB, 1>(xp, wb, s, ho, wo, z, zrow);
}

// Rows of the first factor for outputs [4*rb, 4*rb + 4) -- fewer in the last block, so a rank
// that is not a multiple of 4 costs only what it computes.
__attribute__((target("avx2,fma"))) void first_rows_avx2(const float* xp, const float* pk,
                                                         const Shape& s, int ho, int rb, float* z,
                                                         int zrow) {
  const int taps = s.C * s.KH * s.KW;
  const float* wb = pk + static_cast<size_t>(rb) * taps * kRBlock;
  switch (std::min(kRBlock, s.R - rb * kRBlock)) {
    case 1:
      first_rows_rb<1>(xp, wb, s, ho, z, zrow);
      break;
    case 2:
      first_rows_rb<2>(xp, wb, s, ho, z, zrow);
      break;
    case 3:
      first_rows_rb<3>(xp, wb, s, ho, z, zrow);
      break;
    default:
      first_rows_rb<4>(xp, wb, s, ho, z, zrow);
      break;
  }
}

// y row (n, ho) = b[n] + sum_r W2[n, r] z[r], 8 pixels per vector.
__attribute__((target("avx2,fma"))) void second_rows_avx2(const float* w2, const float* b,
                                                          const Shape& s, const float* z, int zrow,
                                                          int ho, float* y) {
  const int Ho = s.Ho(), Wo = s.Wo();
  for (int n = 0; n < s.N; ++n) {
    float* yr = y + (static_cast<size_t>(n) * Ho + ho) * Wo;
    const float* wn = w2 + n * s.R;
    int wo = 0;
    for (; wo + 8 <= Wo; wo += 8) {
      __m256 acc = _mm256_set1_ps(b ? b[n] : 0.f);
      for (int r = 0; r < s.R; ++r)
        acc = _mm256_fmadd_ps(_mm256_broadcast_ss(wn + r), _mm256_loadu_ps(z + r * zrow + wo), acc);
      _mm256_storeu_ps(yr + wo, acc);
    }
    for (; wo < Wo; ++wo) {
      float v = b ? b[n] : 0.f;
      for (int r = 0; r < s.R; ++r) v += wn[r] * z[r * zrow + wo];
      yr[wo] = v;
    }
  }
}

// NNSLIM_FUSED_PORTABLE=1 forces the portable loops (read per call, so a test can switch).
bool have_avx2() {
  static const bool cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const char* portable = std::getenv("NNSLIM_FUSED_PORTABLE");
  return cpu && !(portable && std::string(portable) == "1");
}
#endif

// Output rows [ho_begin, ho_end) of one image: y[N, Ho, Wo] = W2 . conv(x, W1) + b, row by row
// (the r x Wo intermediate of a row stays in L1 and never goes to memory). xp: the padded image.
void image_rows(const float* xp, const float* pk, const float* w2, const float* b, const Shape& s,
                float* y, float* z, int ho_begin, int ho_end) {
  const int Ho = s.Ho(), Wo = s.Wo();
  bool avx2 = false;
#ifdef NNSLIM_HAVE_AVX2_PATH
  avx2 = have_avx2();
#endif
  const int zrow = avx2 ? Wo + 2 * kWBlock : Wo;  // z row stride (slack for vector stores)
  for (int ho = ho_begin; ho < ho_end; ++ho) {
#ifdef NNSLIM_HAVE_AVX2_PATH
    if (avx2) {
      for (int rb = 0; rb < s.Rp() / kRBlock; ++rb)
        first_rows_avx2(xp, pk, s, ho, rb, z + static_cast<size_t>(rb) * kRBlock * zrow, zrow);
      second_rows_avx2(w2, b, s, z, zrow, ho, y);
      continue;
    }
#endif
    for (int rb = 0; rb < s.Rp() / kRBlock; ++rb)
      first_rows_generic(xp, pk, s, ho, rb, z + static_cast<size_t>(rb) * kRBlock * zrow);
    for (int n = 0; n < s.N; ++n) {
      float* yr = y + (static_cast<size_t>(n) * Ho + ho) * Wo;
      const float bn = b ? b[n] : 0.f;
      for (int wo = 0; wo < Wo; ++wo) yr[wo] = bn;
      for (int r = 0; r < s.R; ++r) {
        const float wv = w2[n * s.R + r];
        const float* zr = z + static_cast<size_t>(r) * zrow;
        for (int wo = 0; wo < Wo; ++wo) yr[wo] += wv * zr[wo];
      }
    }
  }
}

}  // namespace

bool fused_pair_supports(const torch::Tensor& x, const torch::Tensor& w1, const torch::Tensor& w2,
                         at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                         int64_t groups) {
  auto ones = [](at::IntArrayRef v) {
    return std::all_of(v.begin(), v.end(), [](int64_t e) { return e == 1; });
  };
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.dim() == 4 && w1.dim() == 4 &&
         w2.dim() >= 2 && w1.scalar_type() == torch::kFloat && w2.scalar_type() == torch::kFloat &&
         groups == 1 && ones(stride) && ones(dilation) && padding.size() == 2 && padding[0] >= 0 &&
         padding[1] >= 0 && padding[0] < w1.size(2) && padding[1] < w1.size(3) &&
         x.size(1) == w1.size(1) && w2.size(1) == w1.size(0) && !x.requires_grad();
}

torch::Tensor fused_pair(const torch::Tensor& x_in, const torch::Tensor& w1_in,
                         const torch::Tensor& w2_in, const torch::Tensor& bias,
                         at::IntArrayRef padding) {
  TORCH_CHECK(
      fused_pair_supports(x_in, w1_in, w2_in, {1, 1}, padding, {1, 1}, 1),
      "fused_pair: needs float32 CPU tensors, a stride-1 undilated ungrouped first conv and "
      "matching channels; got x ",
      x_in.sizes(), ", first ", w1_in.sizes(), ", second ", w2_in.sizes());
  auto x = x_in.contiguous();
  auto w1 = w1_in.contiguous();
  auto w2 = w2_in.reshape({w2_in.size(0), w2_in.size(1)}).contiguous();
  Shape s{static_cast<int>(x.size(1)),  static_cast<int>(x.size(2)),  static_cast<int>(x.size(3)),
          static_cast<int>(w1.size(0)), static_cast<int>(w1.size(2)), static_cast<int>(w1.size(3)),
          static_cast<int>(padding[0]), static_cast<int>(padding[1]), static_cast<int>(w2.size(0))};
  TORCH_CHECK(s.Ho() > 0 && s.Wo() > 0, "fused_pair: kernel larger than the padded input");
  auto pk = pack_first(w1.data_ptr<float>(), s);
  auto y = torch::empty({x.size(0), s.N, s.Ho(), s.Wo()}, x.options());
  auto bias_c = bias.defined() ? bias.contiguous() : bias;
  const float* b = bias_c.defined() ? bias_c.data_ptr<float>() : nullptr;
  const size_t per_image = static_cast<size_t>(s.C) * s.H * s.W,
               out_image = static_cast<size_t>(s.N) * s.Ho() * s.Wo();
  const float* xd = x.data_ptr<float>();
  float* yd = y.data_ptr<float>();
  const float* w2d = w2.data_ptr<float>();
  // Pad every image once, then split the output rows of all images between the threads (so a
  // single image also runs on all of them).
  const size_t padded = static_cast<size_t>(s.C) * s.Hp() * s.row();
  std::unique_ptr<float[]> xp(new float[padded * x.size(0)]);  // pad_input writes every value
  at::parallel_for(0, x.size(0), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) pad_input(xd + i * per_image, s, xp.get() + i * padded);
  });
  const int64_t Ho = s.Ho();
  at::parallel_for(0, x.size(0) * Ho, 4, [&](int64_t begin, int64_t end) {
    std::unique_ptr<float[]> z(new float[static_cast<size_t>(s.Rp()) * (s.Wo() + 2 * kWBlock)]);
    for (int64_t t = begin; t < end;) {
      const int64_t i = t / Ho, ho = t % Ho, stop = std::min<int64_t>(Ho, ho + (end - t));
      image_rows(xp.get() + i * padded, pk.data(), w2d, b, s, yd + i * out_image, z.get(),
                 static_cast<int>(ho), static_cast<int>(stop));
      t += stop - ho;
    }
  });
  return y;
}

}  // namespace nnslim
