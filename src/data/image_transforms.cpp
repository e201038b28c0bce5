#include "nnslim/data/image_transforms.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace nnslim {
namespace {
// Python's round() to an integer: half to even (std::nearbyint in the default rounding mode).
int64_t py_round(double x) { return static_cast<int64_t>(std::nearbyint(x)); }
}  // namespace

CropBox random_resized_crop_box(int64_t h, int64_t w, const CropRandom& random, double scale_lo,
                                double scale_hi, double ratio_lo, double ratio_hi) {
  TORCH_CHECK(h > 0 && w > 0, "random resized crop of an empty ", h, "x", w, " image");
  const double area = static_cast<double>(h) * static_cast<double>(w);
  const double log_lo = std::log(ratio_lo), log_hi = std::log(ratio_hi);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * random.uniform(scale_lo, scale_hi);
    const double ratio = std::exp(random.uniform(log_lo, log_hi));
    const int64_t cw = py_round(std::sqrt(target * ratio));
    const int64_t ch = py_round(std::sqrt(target / ratio));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      const int64_t top = random.below(h - ch + 1);
      const int64_t left = random.below(w - cw + 1);
      return {top, left, ch, cw};
    }
  }
  // Fallback: the whole image, clamped to the ratio range, centred.
  const double in_ratio = static_cast<double>(w) / static_cast<double>(h);
  int64_t cw = w, ch = h;
  if (in_ratio < std::min(ratio_lo, ratio_hi)) {
    ch = py_round(static_cast<double>(cw) / std::min(ratio_lo, ratio_hi));
  } else if (in_ratio > std::max(ratio_lo, ratio_hi)) {
    cw = py_round(static_cast<double>(ch) * std::max(ratio_lo, ratio_hi));
  }
  return {(h - ch) / 2, (w - cw) / 2, ch, cw};
}

int64_t eval_resize_size(int64_t crop) { return py_round(static_cast<double>(crop) * 256 / 224); }

std::pair<int64_t, int64_t> resize_short_side(int64_t h, int64_t w, int64_t size) {
  TORCH_CHECK(h > 0 && w > 0 && size > 0, "resize of a ", h, "x", w, " image to ", size);
  if (h <= w) return {size, static_cast<int64_t>(static_cast<double>(size) * w / h)};
  return {static_cast<int64_t>(static_cast<double>(size) * h / w), size};
}

CropBox center_crop_box(int64_t h, int64_t w, int64_t ch, int64_t cw) {
  TORCH_CHECK(ch <= h && cw <= w, "centre crop ", ch, "x", cw, " of a ", h, "x", w, " image");
  return {py_round((h - ch) / 2.0), py_round((w - cw) / 2.0), ch, cw};
}

void resize_bilinear(const RgbImage& src, const CropBox& box, int64_t out_h, int64_t out_w,
                     float* out) {
  TORCH_CHECK(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0 &&
                  box.top + box.height <= src.height && box.left + box.width <= src.width,
              "crop box (", box.top, ",", box.left, " ", box.height, "x", box.width, ") outside a ",
              src.height, "x", src.width, " image");
  TORCH_CHECK(out_h > 0 && out_w > 0, "resize to an empty ", out_h, "x", out_w, " image");
  // Source coordinate of output index i: (i + 0.5) * in/out - 0.5, clamped at 0, as in
  // ATen's area_pixel_compute_source_index (float arithmetic like its CPU kernel for float).
  struct Tap {
    int64_t i0, i1;
    float l1;
  };
  auto taps = [](int64_t in, int64_t n, int64_t offset) {
    std::vector<Tap> t(n);
    const float scale = static_cast<float>(in) / static_cast<float>(n);
    for (int64_t i = 0; i < n; ++i) {
      float s = scale * (static_cast<float>(i) + 0.5f) - 0.5f;
      if (s < 0) s = 0;
      const int64_t i0 = static_cast<int64_t>(s);
      const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
      t[i] = {offset + i0, offset + i1, s - static_cast<float>(i0)};
    }
    return t;
  };
  const auto ty = taps(box.height, out_h, box.top), tx = taps(box.width, out_w, box.left);
  const int64_t plane = out_h * out_w;
  for (int64_t i = 0; i < out_h; ++i) {
    const uint8_t* r0 = src.row(ty[i].i0);
    const uint8_t* r1 = src.row(ty[i].i1);
    const float wy1 = ty[i].l1, wy0 = 1.f - wy1;
    for (int64_t j = 0; j < out_w; ++j) {
      const int64_t x0 = 3 * tx[j].i0, x1 = 3 * tx[j].i1;
      const float wx1 = tx[j].l1, wx0 = 1.f - wx1;
      for (int c = 0; c < 3; ++c) {
        out[c * plane + i * out_w + j] = wy0 * (wx0 * r0[x0 + c] + wx1 * r0[x1 + c]) +
                                         wy1 * (wx0 * r1[x0 + c] + wx1 * r1[x1 + c]);
      }
    }
  }
}

void flip_chw(float* chw, int64_t c, int64_t h, int64_t w) {
  for (int64_t r = 0; r < c * h; ++r) std::reverse(chw + r * w, chw + (r + 1) * w);
}

void train_transform(const RgbImage& src, int64_t size, const CropRandom& random, bool hflip,
                     float* out) {
  const CropBox box = random_resized_crop_box(src.height, src.width, random);
  resize_bilinear(src, box, size, size, out);
  // RandomHorizontalFlip draws after the crop: torch.rand(1) < 0.5.
  if (hflip && random.uniform(0.0, 1.0) < 0.5) flip_chw(out, 3, size, size);
}

void eval_transform(const RgbImage& src, int64_t size, float* out) {
  const auto [rh, rw] = resize_short_side(src.height, src.width, eval_resize_size(size));
  TORCH_CHECK(rh >= size && rw >= size, "eval transform: resized ", rh, "x", rw,
              " is smaller than the crop ", size);
  std::vector<float> resized(3 * rh * rw);
  resize_bilinear(src, {0, 0, src.height, src.width}, rh, rw, resized.data());
  const CropBox c = center_crop_box(rh, rw, size, size);
  for (int64_t ch = 0; ch < 3; ++ch)
    for (int64_t i = 0; i < size; ++i) {
      const float* from = resized.data() + ch * rh * rw + (c.top + i) * rw + c.left;
      std::copy(from, from + size, out + ch * size * size + i * size);
    }
}

void normalize_chw(float* chw, int64_t hw, const std::vector<float>& mean,
                   const std::vector<float>& std) {
  TORCH_CHECK(mean.size() == 3 && std.size() == 3, "image normalisation needs 3 means and stds");
  for (int c = 0; c < 3; ++c) {
    TORCH_CHECK(std[c] > 0, "image normalisation: std of channel ", c, " must be positive");
    const float m = mean[c], inv = 1.f / std[c];
    float* p = chw + c * hw;
    for (int64_t i = 0; i < hw; ++i) p[i] = (p[i] / 255.f - m) * inv;
  }
}

}  // namespace nnslim
