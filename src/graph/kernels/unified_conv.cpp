// The sign-sum inference kernel of unified conv layers (METHODS.md §4.1, §4.7 item 6; contract
// in graph/kernels/unified_conv.h).
#include "nnslim/graph/kernels/unified_conv.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>

namespace nnslim {

UnifiedConv2d::UnifiedConv2d(const UnifiedLayer& L, const Attrs& attrs)
    : shape_(L.shape), attrs_(attrs), dtype_(L.dtype) {
  TORCH_CHECK(L.shape.size() == 4, "unified_conv2d: needs a conv weight [n, c, kh, kw]");
  TORCH_CHECK(dtype_ == torch::kFloat || dtype_ == torch::kDouble,
              "unified_conv2d: float or double weights only");
  const int64_t n = L.shape[0], c = L.shape[1], K = L.shape[2] * L.shape[3];
  TORCH_CHECK(attrs.groups >= 1 && n % attrs.groups == 0, "unified_conv2d: groups ", attrs.groups,
              " do not divide ", n, " output channels");
  BlockPartition part(L.shape, L.block);
  const auto blk = part.block();
  const int64_t nbi = (c + blk.in - 1) / blk.in, nbk = (K + blk.k - 1) / blk.k;
  auto state = L.state.contiguous();
  auto mags = L.magnitudes.to(torch::kDouble).contiguous();
  auto fvals = L.free_values.to(torch::kDouble).contiguous();
  auto signs = L.signs.contiguous();
  const uint8_t* st = state.data_ptr<uint8_t>();
  const double* mp = mags.data_ptr<double>();
  const double* fp = fvals.data_ptr<double>();
  const bool* sp = signs.data_ptr<bool>();

  // Per output channel: its free (row, weight) pairs and its unified groups.
  struct Group {
    double a;
    std::vector<int64_t> pos, neg;
  };
  std::vector<std::vector<std::pair<int64_t, double>>> free(n);
  std::vector<std::vector<Group>> groups(n);
  int64_t mi = 0, fi = 0, si = 0;
  for (int64_t b = 0; b < part.blocks(); ++b) {
    const int64_t ob = b / (nbi * nbk), ib = b / nbk % nbi, kb = b % nbk;
    const auto s = static_cast<BlockState>(st[b]);
    if (s == BlockState::kUnified) {
      // One group per output row the block spans (§4.6: one multiply per row and position).
      std::vector<Group> rows;
      for (int64_t o = ob * blk.out; o < std::min(n, (ob + 1) * blk.out); ++o)
        rows.push_back({mp[mi], {}, {}});
      ++mi;
      for (int64_t o = ob * blk.out; o < std::min(n, (ob + 1) * blk.out); ++o)
        for (int64_t i = ib * blk.in; i < std::min(c, (ib + 1) * blk.in); ++i)
          for (int64_t k = kb * blk.k; k < std::min(K, (kb + 1) * blk.k); ++k) {
            auto& g = rows[o - ob * blk.out];
            (sp[si++] ? g.neg : g.pos).push_back(i * K + k);
          }
      for (int64_t o = ob * blk.out; o < std::min(n, (ob + 1) * blk.out); ++o)
        groups[o].push_back(std::move(rows[o - ob * blk.out]));
    } else if (s == BlockState::kFree) {
      for (int64_t o = ob * blk.out; o < std::min(n, (ob + 1) * blk.out); ++o)
        for (int64_t i = ib * blk.in; i < std::min(c, (ib + 1) * blk.in); ++i)
          for (int64_t k = kb * blk.k; k < std::min(K, (kb + 1) * blk.k); ++k)
            free[o].push_back({i * K + k, fp[fi++]});
    }
  }
  TORCH_INTERNAL_ASSERT(mi == mags.numel() && fi == fvals.numel() && si == signs.numel());
  TORCH_CHECK(c * K < (int64_t(1) << 31), "unified_conv2d: layer too large");
  row_begin_.push_back(0);
  group_begin_.push_back(0);
  group_rows_.push_back(0);
  for (int64_t o = 0; o < n; ++o) {
    for (auto& [r, w] : free[o]) {
      free_rows_.push_back(static_cast<int32_t>(r));
      free_w64_.push_back(w);
    }
    row_begin_.push_back(free_rows_.size());
    for (auto& g : groups[o]) {
      group_a64_.push_back(g.a);
      group_pos_.push_back(g.pos.size());
      unified_rows_.insert(unified_rows_.end(), g.pos.begin(), g.pos.end());
      unified_rows_.insert(unified_rows_.end(), g.neg.begin(), g.neg.end());
      group_rows_.push_back(unified_rows_.size());
    }
    group_begin_.push_back(group_a64_.size());
  }
  free_w32_.assign(free_w64_.begin(), free_w64_.end());
  group_a32_.assign(group_a64_.begin(), group_a64_.end());
  multiplies_ = static_cast<int64_t>(free_rows_.size() + group_a64_.size());
}

namespace {

struct KernelArgs {
  const int64_t *row_begin, *group_begin, *group_rows, *group_pos;
  const int32_t *free_rows, *unified_rows;
  int64_t n, out_per_group, rows_per_group, cols_rows, L;
  // Unfolding straight from the zero-padded input [N, C, Hp, Wp]: row r of the unfolded input
  // starts at row_offset[r] within an image; output position (oy, ox) adds oy*sh*Wp + ox*sw.
  const int64_t* row_offset;
  int64_t image_stride, Wp, Wo, sh, sw;
};

// GCC/Clang vector extensions: a chunk of W values is kN vectors of at most 64 bytes, which
// each clone below lowers to its own registers (zmm, 2 x ymm or 4 x xmm).
template <typename T, int W>
struct Lanes {
  static constexpr int kBytes = W * sizeof(T) < 64 ? W * sizeof(T) : 64;
  static constexpr int kPer = kBytes / sizeof(T);  // values per vector
  static constexpr int kN = W / kPer;              // vectors per chunk
  typedef T Vec __attribute__((vector_size(kBytes)));
};

// Output channels [o0, o1) at batch positions [p0, p0 + W) (P = image * L + position).
// `packed` holds the chunk of the unfolded input as [rows, W], contiguous; W is a compile-time
// width so that the accumulators live in registers.
template <typename T, int W>
__attribute__((always_inline)) inline void kernel_chunk(const KernelArgs& k, const T* fw,
                                                        const T* ga, const T* packed, const T* bias,
                                                        T* y, int64_t p0, int64_t o0, int64_t o1) {
  using Ln = Lanes<T, W>;
  using Vec = typename Ln::Vec;
  for (int64_t o = o0; o < o1; ++o) {
    const T* b = packed + (o / k.out_per_group) * k.rows_per_group * W;
    Vec acc[Ln::kN];
    const T b0 = bias ? bias[o] : T(0);
    for (int v = 0; v < Ln::kN; ++v) acc[v] = Vec{} + b0;
    for (int64_t j = k.row_begin[o]; j < k.row_begin[o + 1]; ++j) {
      const T w = fw[j];
      const T* c = b + int64_t(k.free_rows[j]) * W;
      for (int v = 0; v < Ln::kN; ++v) {
        Vec x;
        std::memcpy(&x, c + v * Ln::kPer, sizeof(Vec));
        acc[v] += w * x;
      }
    }
    for (int64_t g = k.group_begin[o]; g < k.group_begin[o + 1]; ++g) {
      // Sign-sum: additions and subtractions only, then one multiply per position.
      const int64_t r0 = k.group_rows[g], r1 = k.group_rows[g + 1], rm = r0 + k.group_pos[g];
      Vec sum[Ln::kN];
      for (int v = 0; v < Ln::kN; ++v) sum[v] = Vec{};
      for (int64_t r = r0; r < rm; ++r) {
        const T* c = b + int64_t(k.unified_rows[r]) * W;
        for (int v = 0; v < Ln::kN; ++v) {
          Vec x;
          std::memcpy(&x, c + v * Ln::kPer, sizeof(Vec));
          sum[v] += x;
        }
      }
      for (int64_t r = rm; r < r1; ++r) {
        const T* c = b + int64_t(k.unified_rows[r]) * W;
        for (int v = 0; v < Ln::kN; ++v) {
          Vec x;
          std::memcpy(&x, c + v * Ln::kPer, sizeof(Vec));
          sum[v] -= x;
        }
      }
      const T a = ga[g];
      for (int v = 0; v < Ln::kN; ++v) acc[v] += a * sum[v];
    }
    // Positions p0.. of the chunk run over the batch: position P is (image P / L, P % L).
    const T* a = reinterpret_cast<const T*>(acc);
    for (int64_t p = 0, P = p0; p < W;) {
      const int64_t img = P / k.L, q = P % k.L, run = std::min<int64_t>(W - p, k.L - q);
      std::memcpy(y + (img * k.n + o) * k.L + q, a + p, run * sizeof(T));
      p += run;
      P += run;
    }
  }
}

template <typename T>
__attribute__((always_inline)) inline void kernel_task(const KernelArgs& k, const T* fw,
                                                       const T* ga, const T* packed, const T* bias,
                                                       T* y, int64_t p0, int64_t width, int64_t o0,
                                                       int64_t o1) {
  switch (width) {
    case 64:
      kernel_chunk<T, 64>(k, fw, ga, packed, bias, y, p0, o0, o1);
      break;
    case 32:
      kernel_chunk<T, 32>(k, fw, ga, packed, bias, y, p0, o0, o1);
      break;
    case 16:
      kernel_chunk<T, 16>(k, fw, ga, packed, bias, y, p0, o0, o1);
      break;
    case 4:
      kernel_chunk<T, 4>(k, fw, ga, packed, bias, y, p0, o0, o1);
      break;
    default:
      kernel_chunk<T, 1>(k, fw, ga, packed, bias, y, p0, o0, o1);
      break;
  }
}

// Compiled for AVX-512, AVX2 and baseline x86-64, chosen at load time (the library is built
// for baseline x86-64, while torch::conv2d's oneDNN dispatches to the best ISA itself).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NNSLIM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NNSLIM_CLONES
#endif

NNSLIM_CLONES void kernel_task_f32(const KernelArgs& k, const float* fw, const float* ga,
                                   const float* packed, const float* bias, float* y, int64_t p0,
                                   int64_t width, int64_t o0, int64_t o1) {
  kernel_task<float>(k, fw, ga, packed, bias, y, p0, width, o0, o1);
}

NNSLIM_CLONES void kernel_task_f64(const KernelArgs& k, const double* fw, const double* ga,
                                   const double* packed, const double* bias, double* y, int64_t p0,
                                   int64_t width, int64_t o0, int64_t o1) {
  kernel_task<double>(k, fw, ga, packed, bias, y, p0, width, o0, o1);
}

void kernel_task_any(const KernelArgs& k, const float* fw, const float* ga, const float* packed,
                     const float* bias, float* y, int64_t p0, int64_t width, int64_t o0,
                     int64_t o1) {
  kernel_task_f32(k, fw, ga, packed, bias, y, p0, width, o0, o1);
}
void kernel_task_any(const KernelArgs& k, const double* fw, const double* ga, const double* packed,
                     const double* bias, double* y, int64_t p0, int64_t width, int64_t o0,
                     int64_t o1) {
  kernel_task_f64(k, fw, ga, packed, bias, y, p0, width, o0, o1);
}

// Tasks = (chunk of output positions, block of output channels). A task packs its chunk
// of the unfolded input (all rows x width, at most 640 KiB so it stays in L2; packing also
// avoids the L1 aliasing of rows that are a multiple of 4 KiB apart) and computes the block's
// output channels from it; the tail is split into narrower chunks.
template <typename T>
void run_kernel(const KernelArgs& k, const T* fw, const T* ga, const T* xp, const T* bias, T* y,
                int64_t images) {
  int64_t widest = 16;
  for (int64_t w : {64, 32})
    if (k.cols_rows * w * int64_t(sizeof(T)) <= (int64_t(640) << 10)) {
      widest = w;
      break;
    }
  // Output positions of the whole batch form one index P = image * L + position, so that
  // layers with few positions per image (deep layers) still fill wide chunks.
  const int64_t total = images * k.L;
  std::vector<std::pair<int64_t, int64_t>> chunks;  // (P0, width)
  for (int64_t p0 = 0; p0 < total;) {
    int64_t w = widest;
    while (w > total - p0) w = w == 64 ? 32 : w == 32 ? 16 : w == 16 ? 4 : 1;
    chunks.push_back({p0, w});
    p0 += w;
  }
  constexpr int64_t kOutBlock = 64;
  const int64_t oblocks = (k.n + kOutBlock - 1) / kOutBlock;
  at::parallel_for(0, int64_t(chunks.size()) * oblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> packed(k.cols_rows * widest);
    for (int64_t t = begin; t < end; ++t) {
      const auto& ch = chunks[t / oblocks];
      const int64_t o0 = t % oblocks * kOutBlock, o1 = std::min(k.n, o0 + kOutBlock);
      // Pack [rows, width] straight from the padded input (no full im2col buffer): the
      // positions of a chunk are runs along output rows, contiguous in the input when sw = 1.
      for (int64_t r = 0; r < k.cols_rows; ++r) {
        T* dst = packed.data() + r * ch.second;
        for (int64_t p = 0, P = ch.first; p < ch.second;) {
          const int64_t img = P / k.L, q = P % k.L, oy = q / k.Wo, ox = q % k.Wo;
          const int64_t run = std::min(ch.second - p, k.Wo - ox);
          const T* src = xp + img * k.image_stride + k.row_offset[r] + oy * k.sh * k.Wp + ox * k.sw;
          if (k.sw == 1)
            std::memcpy(dst + p, src, run * sizeof(T));
          else
            for (int64_t i = 0; i < run; ++i) dst[p + i] = src[i * k.sw];
          p += run;
          P += run;
        }
      }
      kernel_task_any(k, fw, ga, packed.data(), bias, y, ch.first, ch.second, o0, o1);
    }
  });
}

}  // namespace

torch::Tensor UnifiedConv2d::forward(const torch::Tensor& x, const torch::Tensor& bias) const {
  torch::NoGradGuard ng;
  const int64_t n = shape_[0], c = shape_[1], kh = shape_[2], kw = shape_[3];
  const int64_t groups = attrs_.groups;
  TORCH_CHECK(x.dim() == 4 && x.size(1) == c * groups, "unified_conv2d: input must be [N, ",
              c * groups, ", H, W], got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == dtype_ && x.device().is_cpu(),
              "unified_conv2d: input must be a CPU tensor of the layer's dtype");
  TORCH_CHECK(!bias.defined() || (bias.numel() == n && bias.scalar_type() == dtype_),
              "unified_conv2d: bias must have ", n, " entries of the layer's dtype");
  const auto& st = attrs_.stride;
  const auto& pd = attrs_.padding;
  const auto& dl = attrs_.dilation;
  const int64_t N = x.size(0), H = x.size(2), W = x.size(3);
  const int64_t Ho = (H + 2 * pd[0] - dl[0] * (kh - 1) - 1) / st[0] + 1;
  const int64_t Wo = (W + 2 * pd[1] - dl[1] * (kw - 1) - 1) / st[1] + 1;
  TORCH_CHECK(Ho >= 1 && Wo >= 1, "unified_conv2d: output would be empty");
  auto xp = torch::constant_pad_nd(x, {pd[1], pd[1], pd[0], pd[0]}, 0).contiguous();
  const int64_t Hp = xp.size(2), Wp = xp.size(3);
  std::vector<int64_t> row_offset(c * groups * kh * kw);
  for (int64_t r = 0; r < int64_t(row_offset.size()); ++r) {
    const int64_t ci = r / (kh * kw), ky = r / kw % kh, kx = r % kw;
    row_offset[r] = ci * Hp * Wp + ky * dl[0] * Wp + kx * dl[1];
  }
  auto y = torch::empty({N, n, Ho * Wo}, x.options());
  auto b = bias.defined() ? bias.contiguous() : bias;
  KernelArgs k{row_begin_.data(),
               group_begin_.data(),
               group_rows_.data(),
               group_pos_.data(),
               free_rows_.data(),
               unified_rows_.data(),
               n,
               n / groups,
               c * kh * kw,
               c * groups * kh * kw,
               Ho * Wo,
               row_offset.data(),
               xp.size(1) * Hp * Wp,
               Wp,
               Wo,
               st[0],
               st[1]};
  if (dtype_ == torch::kFloat)
    run_kernel<float>(k, free_w32_.data(), group_a32_.data(), xp.data_ptr<float>(),
                      b.defined() ? b.data_ptr<float>() : nullptr, y.data_ptr<float>(), N);
  else
    run_kernel<double>(k, free_w64_.data(), group_a64_.data(), xp.data_ptr<double>(),
                       b.defined() ? b.data_ptr<double>() : nullptr, y.data_ptr<double>(), N);
  return y.view({N, n, Ho, Wo});
}

torch::Tensor unified_conv2d(const torch::Tensor& x, const UnifiedLayer& layer, const Attrs& attrs,
                             const torch::Tensor& bias) {
  return UnifiedConv2d(layer, attrs).forward(x, bias);
}

}  // namespace nnslim
