#include "nnslim/data/image_decode.h"

#include <c10/util/Exception.h>
#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

namespace nnslim {
namespace {

// ---- JPEG (TurboJPEG 2.x API) ----------------------------------------------------------------

struct TjHandle {
  tjhandle h = tjInitDecompress();
  ~TjHandle() {
    if (h) tjDestroy(h);
  }
};

std::string tj_error(tjhandle h) {
  const char* s = tjGetErrorStr2(h);
  return s ? s : "unknown TurboJPEG error";
}

// The scaled size: the smallest factor whose short side still reaches `min_short`.
tjscalingfactor pick_scale(int w, int h, int64_t min_short) {
  tjscalingfactor best{1, 1};
  if (min_short <= 0) return best;
  int n = 0;
  const tjscalingfactor* f = tjGetScalingFactors(&n);
  int64_t best_short = std::min(w, h);
  for (int i = 0; f && i < n; ++i) {
    if (f[i].num > f[i].denom) continue;  // never upscale in the decoder
    const int64_t s = std::min(TJSCALED(w, f[i]), TJSCALED(h, f[i]));
    if (s >= min_short && s < best_short) {
      best = f[i];
      best_short = s;
    }
  }
  return best;
}

RgbImage decode_jpeg(const std::string& bytes, const std::string& name, int64_t min_short) {
  TjHandle tj;
  TORCH_CHECK(tj.h, name, ": cannot initialise TurboJPEG");
  const auto* buf = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto size = static_cast<unsigned long>(bytes.size());
  int w = 0, h = 0, subsamp = 0, colorspace = 0;
  TORCH_CHECK(tjDecompressHeader3(tj.h, buf, size, &w, &h, &subsamp, &colorspace) == 0, name,
              ": not a readable JPEG (", tj_error(tj.h), ")");
  TORCH_CHECK(w > 0 && h > 0, name, ": JPEG of size ", w, "x", h);
  const tjscalingfactor sf = pick_scale(w, h, min_short);
  const int sw = TJSCALED(w, sf), sh = TJSCALED(h, sf);
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  const int channels = cmyk ? 4 : 3;
  std::vector<uint8_t> raw(static_cast<size_t>(sw) * sh * channels);
  // Without TJFLAG_STOPONWARNING a truncated file still returns -1 (its warning is reported),
  // so every damaged file is caught.
  if (tjDecompress2(tj.h, buf, size, raw.data(), sw, sw * channels, sh, cmyk ? TJPF_CMYK : TJPF_RGB,
                    0) != 0)
    TORCH_CHECK(false, name, ": corrupt or truncated JPEG (", tj_error(tj.h), ")");
  RgbImage img;
  img.width = sw;
  img.height = sh;
  if (!cmyk) {
    img.pixels = std::move(raw);
    return img;
  }
  img.pixels.resize(static_cast<size_t>(sw) * sh * 3);
  for (size_t p = 0, n = static_cast<size_t>(sw) * sh; p < n; ++p) {
    const int k = raw[4 * p + 3];
    for (int c = 0; c < 3; ++c) img.pixels[3 * p + c] = (raw[4 * p + c] * k + 127) / 255;
  }
  return img;
}

// ---- PNG (libpng simplified API) -------------------------------------------------------------

RgbImage decode_png(const std::string& bytes, const std::string& name) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()))
    TORCH_CHECK(false, name, ": not a readable PNG (", image.message, ")");
  // 16-bit samples without gAMA are taken as sRGB-encoded (libpng would otherwise assume
  // linear light and re-encode them), so they scale to 8 bits as PIL reads them.
  image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
  // Read with alpha and drop it: convert("RGB") discards alpha rather than compositing.
  image.format = PNG_FORMAT_RGBA;
  std::vector<uint8_t> rgba(PNG_IMAGE_SIZE(image));
  const int64_t w = image.width, h = image.height;
  if (!png_image_finish_read(&image, nullptr, rgba.data(), 0, nullptr)) {
    std::string msg = image.message;
    png_image_free(&image);
    TORCH_CHECK(false, name, ": corrupt or truncated PNG (", msg, ")");
  }
  RgbImage img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  for (size_t p = 0, n = static_cast<size_t>(w) * h; p < n; ++p)
    std::memcpy(&img.pixels[3 * p], &rgba[4 * p], 3);
  return img;
}

// ---- BMP (uncompressed 24/32-bit, 8-bit palette) ---------------------------------------------

uint32_t le32(const std::string& b, size_t at) {
  return static_cast<uint32_t>(static_cast<uint8_t>(b[at])) |
         static_cast<uint32_t>(static_cast<uint8_t>(b[at + 1])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(b[at + 2])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(b[at + 3])) << 24;
}
uint16_t le16(const std::string& b, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[at]) | static_cast<uint8_t>(b[at + 1]) << 8);
}

RgbImage decode_bmp(const std::string& b, const std::string& name) {
  TORCH_CHECK(b.size() >= 54, name, ": truncated BMP header");
  const uint32_t offset = le32(b, 10), header = le32(b, 14);
  TORCH_CHECK(header >= 40, name, ": unsupported BMP header (", header, " bytes)");
  const int32_t w = static_cast<int32_t>(le32(b, 18)), hs = static_cast<int32_t>(le32(b, 22));
  const uint16_t bpp = le16(b, 28);
  const uint32_t compression = le32(b, 30);
  TORCH_CHECK(w > 0 && hs != 0 && w < (1 << 16) && std::abs(hs) < (1 << 16), name, ": BMP of size ",
              w, "x", hs);
  TORCH_CHECK(
      (compression == 0 || (compression == 3 && bpp == 32)) && (bpp == 24 || bpp == 32 || bpp == 8),
      name, ": unsupported BMP variant (", bpp, " bits, compression ", compression,
      "); nnslim reads uncompressed 8/24/32-bit BMPs");
  const int64_t h = std::abs(hs);
  const int64_t stride = ((static_cast<int64_t>(w) * bpp + 31) / 32) * 4;
  TORCH_CHECK(static_cast<size_t>(offset + stride * h) <= b.size(), name,
              ": truncated BMP pixel data");
  std::vector<uint8_t> palette;
  if (bpp == 8) {
    uint32_t colors = le32(b, 46);
    if (colors == 0) colors = 256;
    const size_t at = 14 + header;
    TORCH_CHECK(at + 4 * colors <= offset, name, ": truncated BMP palette");
    palette.assign(b.begin() + at, b.begin() + at + 4 * colors);
  }
  RgbImage img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  for (int64_t y = 0; y < h; ++y) {
    const int64_t sy = hs > 0 ? h - 1 - y : y;  // positive height: bottom-up rows
    const auto* src = reinterpret_cast<const uint8_t*>(b.data()) + offset + sy * stride;
    uint8_t* dst = img.pixels.data() + y * w * 3;
    for (int64_t x = 0; x < w; ++x) {
      const uint8_t* p = bpp == 8 ? nullptr : src + x * (bpp / 8);
      if (bpp == 8) {
        const size_t i = 4 * static_cast<size_t>(src[x]);
        TORCH_CHECK(i + 2 < palette.size(), name, ": BMP palette index out of range");
        p = palette.data() + i;
      }
      dst[3 * x] = p[2];  // stored as BGR(A)
      dst[3 * x + 1] = p[1];
      dst[3 * x + 2] = p[0];
    }
  }
  return img;
}

// ---- PPM / PGM (binary P6 / P5, 8-bit) -------------------------------------------------------

RgbImage decode_pnm(const std::string& b, const std::string& name) {
  const bool grey = b[1] == '5';
  size_t at = 2;
  int64_t v[3] = {0, 0, 0};
  for (int64_t& x : v) {
    while (at < b.size() && (std::isspace(static_cast<unsigned char>(b[at])) || b[at] == '#')) {
      if (b[at] == '#')
        while (at < b.size() && b[at] != '\n') ++at;
      else
        ++at;
    }
    TORCH_CHECK(at < b.size() && std::isdigit(static_cast<unsigned char>(b[at])), name,
                ": bad PPM/PGM header");
    while (at < b.size() && std::isdigit(static_cast<unsigned char>(b[at])) && x < (1 << 20))
      x = 10 * x + (b[at++] - '0');
  }
  ++at;  // the single whitespace before the pixels
  TORCH_CHECK(v[0] > 0 && v[1] > 0 && v[2] == 255, name, ": unsupported PPM/PGM (", v[0], "x", v[1],
              ", maxval ", v[2], "; nnslim reads 8-bit binary P5/P6)");
  const int64_t w = v[0], h = v[1], c = grey ? 1 : 3;
  TORCH_CHECK(at + w * h * c <= b.size(), name, ": truncated PPM/PGM pixel data");
  RgbImage img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  const auto* src = reinterpret_cast<const uint8_t*>(b.data()) + at;
  for (int64_t p = 0; p < w * h; ++p)
    for (int k = 0; k < 3; ++k) img.pixels[3 * p + k] = src[grey ? p : 3 * p + k];
  return img;
}

}  // namespace

std::string image_format(const std::string& b) {
  auto starts = [&](const char* magic, size_t n) {
    return b.size() >= n && std::memcmp(b.data(), magic, n) == 0;
  };
  if (starts("\xFF\xD8\xFF", 3)) return "jpeg";
  if (starts("\x89PNG\r\n\x1A\n", 8)) return "png";
  if (starts("BM", 2) && b.size() >= 14) return "bmp";
  if (b.size() >= 3 && b[0] == 'P' && (b[1] == '5' || b[1] == '6') &&
      std::isspace(static_cast<unsigned char>(b[2])))
    return "pnm";
  return "";
}

RgbImage decode_image(const std::string& bytes, const std::string& name, int64_t min_short_side) {
  TORCH_CHECK(!bytes.empty(), name, ": empty file");
  const std::string format = image_format(bytes);
  if (format == "jpeg") return decode_jpeg(bytes, name, min_short_side);
  if (format == "png") return decode_png(bytes, name);
  if (format == "bmp") return decode_bmp(bytes, name);
  if (format == "pnm") return decode_pnm(bytes, name);
  TORCH_CHECK(false, name,
              ": not an image nnslim can decode (it reads JPEG, PNG, BMP and binary PPM/PGM; "
              "this file starts with none of their signatures)");
}

RgbImage read_image(const std::string& path, int64_t min_short_side) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in, path, ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  TORCH_CHECK(!in.bad(), path, ": read error");
  return decode_image(ss.str(), path, min_short_side);
}

}  // namespace nnslim
