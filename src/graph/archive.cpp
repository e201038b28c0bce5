#include "nnslim/graph/archive.h"

#include <torch/torch.h>

#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace nnslim {

uint64_t fnv1a64(const char* data, size_t size, uint64_t h) {
  for (size_t i = 0; i < size; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 1099511628211ull;
  }
  return h;
}

// ---- Writer / Reader --------------------------------------------------------------------------

Writer::Writer(uint32_t version) : version_(version) {
  TORCH_CHECK(version >= 1 && version <= kFormatVersion, "cannot write format version ", version,
              " (this build writes 1 to ", kFormatVersion, ")");
}

void Writer::str(const std::string& s) {
  u64(s.size());
  buf_ += s;
}

Reader::Reader(const std::string& bytes, std::string what, uint32_t version)
    : bytes_(bytes), what_(std::move(what)), version_(version) {
  TORCH_CHECK(version >= 1 && version <= kFormatVersion, what_, ": format version ", version,
              " is not one this build reads (1 to ", kFormatVersion, ")");
}

void Reader::need(uint64_t n) {
  TORCH_CHECK(n <= bytes_.size() - pos_, what_, ": unexpected end of data (corrupt file?)");
}

const char* Reader::raw(uint64_t size) {
  need(size);
  const char* p = bytes_.data() + pos_;
  pos_ += size;
  return p;
}

std::string Reader::str() {
  uint64_t n = u64();
  return std::string(raw(n), n);
}

// ---- framed, atomic files --------------------------------------------------------------------

void write_file_atomic(const std::string& path, const std::string& bytes) {
  // The temp name is unique per process so concurrent writers never share it.
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    TORCH_CHECK(f, path, ": cannot open for writing (", std::strerror(errno), ")");
    f.write(bytes.data(), bytes.size());
    f.flush();
    TORCH_CHECK(f, path, ": write failed (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    TORCH_CHECK(false, path, ": cannot rename temp file into place: ", ec.message());
  }
}

void write_framed_file(const std::string& path, const char magic[8], uint32_t version,
                       const std::string& payload) {
  std::string out(magic, 8);
  put_le(out, version);
  put_le(out, static_cast<uint64_t>(payload.size()));
  out += payload;
  put_le(out, fnv1a64(payload));
  write_file_atomic(path, out);
}

std::string read_framed_file(const std::string& path, const char magic[8], uint32_t max_version,
                             const std::string& kind, uint32_t* version_out) {
  std::ifstream f(path, std::ios::binary);
  TORCH_CHECK(f, path, ": cannot open (", std::strerror(errno), ")");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string all = ss.str();
  const size_t header = 8 + 4 + 8;
  TORCH_CHECK(all.size() >= 8 && std::memcmp(all.data(), magic, 8) == 0, path, ": not a ", kind,
              " file (bad magic)");
  TORCH_CHECK(all.size() >= header + 8, path, ": truncated ", kind, " file (", all.size(),
              " bytes)");
  Reader r(all, path);
  r.raw(8);  // the magic
  const uint32_t version = r.u32();
  const uint64_t size = r.u64();
  TORCH_CHECK(version >= 1 && version <= max_version, path, ": ", kind, " format version ", version,
              " is newer than this build of nnslim reads (up to ", max_version,
              "); upgrade nnslim");
  TORCH_CHECK(size == all.size() - header - 8, path, ": truncated or padded ", kind, " file (",
              "expected ", size + header + 8, " bytes, found ", all.size(), ")");
  std::string payload(r.raw(size), size);
  TORCH_CHECK(r.u64() == fnv1a64(payload), path, ": checksum mismatch (corrupt ", kind, " file)");
  if (version_out) *version_out = version;
  return payload;
}

}  // namespace nnslim
