// Writes image files for the image-folder tests: PNG through libpng (any colour type and bit
// depth) and JPEG through TurboJPEG's compressor (RGB, grey or CMYK).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nnslim::testing {

// samples: height rows of width * channels(color_type) samples of bit_depth bits (16-bit as
// two bytes, big-endian); palette (PNG_COLOR_TYPE_PALETTE): RGB triples.
void write_png(const std::string& path, int width, int height, int color_type, int bit_depth,
               const std::vector<uint8_t>& samples, const std::vector<uint8_t>& palette = {});
// pixels: width * height * channels of TurboJPEG's pixel format `pixel_format` (TJPF_RGB,
// TJPF_GRAY, TJPF_CMYK); grey files are written with TJSAMP_GRAY.
void write_jpeg(const std::string& path, int width, int height, int pixel_format,
                const std::vector<uint8_t>& pixels, int quality = 95);
// A file of these bytes.
void write_bytes(const std::string& path, const std::string& bytes);
std::string read_bytes(const std::string& path);

}  // namespace nnslim::testing
