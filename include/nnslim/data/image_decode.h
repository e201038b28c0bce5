// Image files to 8-bit RGB pixels: JPEG through libjpeg-turbo's TurboJPEG API (with DCT-domain
// downscaling), PNG through libpng's simplified API, uncompressed BMP and binary PPM/PGM by hand.
// Every image becomes 3-channel RGB the way PIL's convert("RGB") does it: grey is replicated,
// CMYK/YCCK JPEGs (Adobe inverted CMYK, as Photoshop and TurboJPEG write them) become
// R = C*K/255 ..., alpha and palettes are dropped/expanded (alpha is discarded, not composited),
// 16-bit PNG samples are scaled to 8 bits. EXIF orientation is not applied, as in torchvision.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nnslim {

struct RgbImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;  // height * width * 3, row-major RGB
  const uint8_t* row(int64_t y) const { return pixels.data() + y * width * 3; }
};

// The format of encoded bytes by their magic numbers: "jpeg", "png", "bmp", "pnm" or "" (none).
std::string image_format(const std::string& bytes);

// Decodes `bytes` (the format found by image_format, whatever the file is called). A JPEG is
// decoded at the smallest TurboJPEG scaling factor (1/8 ... 1) that keeps its short side
// >= min_short_side (0 = full size; images already smaller are decoded at full size). Throws
// c10::Error naming `name` and the problem: unknown format, corrupt or truncated data (a libjpeg
// warning such as "Premature end of JPEG file" counts as an error), unsupported variant.
RgbImage decode_image(const std::string& bytes, const std::string& name,
                      int64_t min_short_side = 0);
// Reads and decodes a file; errors name the path.
RgbImage read_image(const std::string& path, int64_t min_short_side = 0);

}  // namespace nnslim
