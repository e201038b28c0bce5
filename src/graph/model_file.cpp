#include "nnslim/graph/model_file.h"

#include "nnslim/graph/archive.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/graph/unified_file.h"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

namespace nnslim {

namespace fs = std::filesystem;

Graph load_model_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const std::string hint =
        fs::exists(path + "/model.nnslim") ? "; did you mean " + path + "/model.nnslim?" : "";
    throw NotAModelFileError(path + " is a directory, not a model file" + hint);
  }
  if (fs::is_regular_file(path, ec) && fs::file_size(path, ec) == 0)
    throw std::runtime_error(path + ": empty file (0 bytes), not an nnslim model");
  std::ifstream f(path, std::ios::binary);
  char magic[8] = {0};
  f.read(magic, 8);
  if (f && std::string(magic, 7) == "NNSLIMU") return load_unified(path);
  if (f && std::string(magic, 7) == "NNSLIMC")
    throw NotAModelFileError(path +
                             " is a training checkpoint, not a model; continue its run with "
                             "--resume, or use the run's model.nnslim");
  return load_graph(path);
}

std::string file_fingerprint(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  TORCH_CHECK(f, path, ": cannot read");
  uint64_t h = kFnv1aOffset;
  uint64_t size = 0;
  std::vector<char> buf(1 << 16);
  while (f.read(buf.data(), buf.size()) || f.gcount() > 0) {
    h = fnv1a64(buf.data(), static_cast<size_t>(f.gcount()), h);
    size += static_cast<uint64_t>(f.gcount());
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::to_string(size) + ":" + hex;
}

}  // namespace nnslim
