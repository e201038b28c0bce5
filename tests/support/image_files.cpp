#include "support/image_files.h"

#include <png.h>
#include <turbojpeg.h>

#include <csetjmp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace nnslim::testing {

void write_png(const std::string& path, int width, int height, int color_type, int bit_depth,
               const std::vector<uint8_t>& samples, const std::vector<uint8_t>& palette) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error(path + ": cannot create");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
    throw std::runtime_error(path + ": libpng write failed");
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, width, height, bit_depth, color_type, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  std::vector<png_color> colors;
  for (size_t i = 0; i + 2 < palette.size(); i += 3)
    colors.push_back({palette[i], palette[i + 1], palette[i + 2]});
  if (color_type == PNG_COLOR_TYPE_PALETTE)
    png_set_PLTE(png, info, colors.data(), static_cast<int>(colors.size()));
  png_write_info(png, info);
  const size_t row = samples.size() / height;
  for (int y = 0; y < height; ++y)
    png_write_row(png, const_cast<png_bytep>(samples.data() + y * row));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
}

void write_jpeg(const std::string& path, int width, int height, int pixel_format,
                const std::vector<uint8_t>& pixels, int quality) {
  tjhandle tj = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  const int subsamp = pixel_format == TJPF_GRAY ? TJSAMP_GRAY : TJSAMP_444;
  const int rc = tjCompress2(tj, pixels.data(), width, 0, height, pixel_format, &out, &size,
                             subsamp, quality, 0);
  if (rc != 0) {
    std::string msg = tjGetErrorStr2(tj);
    tjDestroy(tj);
    throw std::runtime_error(path + ": tjCompress2 failed: " + msg);
  }
  write_bytes(path, std::string(reinterpret_cast<const char*>(out), size));
  tjFree(out);
  tjDestroy(tj);
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream o(path, std::ios::binary);
  o << bytes;
  if (!o) throw std::runtime_error(path + ": cannot write");
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace nnslim::testing
