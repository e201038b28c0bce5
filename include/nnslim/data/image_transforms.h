// The geometry of torchvision's default classification transforms, on RgbImage (image_decode.h):
//   train: RandomResizedCrop(S, scale=(0.08, 1), ratio=(3/4, 4/3)) + RandomHorizontalFlip
//   eval:  Resize(round(S * 256 / 224)) (short side; long side truncated as torchvision does)
//          + CenterCrop(S)
// then ToTensor + Normalize(mean, std). Resampling is bilinear on the crop exactly as
// torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False) does
// on a float tensor (torchvision's tensor path; PIL would also antialias when shrinking).
#pragma once

#include "nnslim/data/image_decode.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace nnslim {

struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
  bool operator==(const CropBox& o) const {
    return top == o.top && left == o.left && height == o.height && width == o.width;
  }
};

// The random numbers RandomResizedCrop draws, in its order: uniform(lo, hi) for the area
// fraction and the log aspect ratio, then below(n) in [0, n) for the top and left offsets.
struct CropRandom {
  std::function<double(double lo, double hi)> uniform;
  std::function<int64_t(int64_t n)> below;
};

// torchvision's RandomResizedCrop.get_params for an image of h x w: up to 10 tries of
// area = h*w*U(scale), ratio = exp(U(log ratio)), w' = round(sqrt(area*ratio)),
// h' = round(sqrt(area/ratio)) (round half to even, as Python), accepted when it fits, offsets
// uniform; else the centre crop of the whole image clamped to the ratio range.
CropBox random_resized_crop_box(int64_t h, int64_t w, const CropRandom& random,
                                double scale_lo = 0.08, double scale_hi = 1.0,
                                double ratio_lo = 3.0 / 4.0, double ratio_hi = 4.0 / 3.0);

// The eval resize for crop size S: round(S * 256 / 224) (256 for 224).
int64_t eval_resize_size(int64_t crop);
// torchvision Resize(size) with an int: the short side becomes `size`, the long side
// int(size * long / short). Returns {height, width}.
std::pair<int64_t, int64_t> resize_short_side(int64_t h, int64_t w, int64_t size);
// torchvision CenterCrop: top = int(round((h - ch) / 2)), left likewise (crop inside the image).
CropBox center_crop_box(int64_t h, int64_t w, int64_t ch, int64_t cw);

// Bilinear resize of `box` of `src` to out_h x out_w: float [3, out_h, out_w] in 0..255 units
// (not rounded), written to `out`.
void resize_bilinear(const RgbImage& src, const CropBox& box, int64_t out_h, int64_t out_w,
                     float* out);

// The training transform of `src` for crop size S: float [3, S, S], 0..255 units.
void train_transform(const RgbImage& src, int64_t size, const CropRandom& random, bool hflip,
                     float* out);
// The eval transform: resize short side to eval_resize_size(S), centre crop S.
void eval_transform(const RgbImage& src, int64_t size, float* out);

// x/255 normalised per channel: (x/255 - mean[c]) / std[c], in place on [3, H, W].
void normalize_chw(float* chw, int64_t hw, const std::vector<float>& mean,
                   const std::vector<float>& std);

// Horizontal flip in place of [C, H, W].
void flip_chw(float* chw, int64_t c, int64_t h, int64_t w);

}  // namespace nnslim
