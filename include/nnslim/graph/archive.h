// The byte layer under every nnslim file: little-endian scalars and strings in a byte string
// (Writer / Reader), the FNV-1a checksum, and framed files written atomically. What the bytes
// mean is the business of the codecs above it (graph/serialize.h, graph/unified_codec.h,
// train/checkpoint.h); how tensors are encoded is graph/tensor_data.h.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace nnslim {

// The format version of graph payloads; it decides how Writer::tensor / Reader::tensor encode
// tensors (graph/tensor_data.h). Version-1 data still reads.
constexpr uint32_t kFormatVersion = 2;

// 64-bit FNV-1a over bytes; `h` continues an earlier hash (for data read in chunks).
constexpr uint64_t kFnv1aOffset = 1469598103934665603ull;
uint64_t fnv1a64(const char* data, size_t size, uint64_t h = kFnv1aOffset);
inline uint64_t fnv1a64(const std::string& bytes) { return fnv1a64(bytes.data(), bytes.size()); }

// Appends the bytes of a scalar (files are little-endian; nnslim runs on little-endian hosts).
template <typename T>
void put_le(std::string& buf, T v) {
  buf.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

class Writer {
 public:
  // `version` selects the tensor encoding (graph/tensor_data.h); 1 to kFormatVersion.
  explicit Writer(uint32_t version = kFormatVersion);
  void u8(uint8_t v) { put_le(buf_, v); }
  void u32(uint32_t v) { put_le(buf_, v); }
  void u64(uint64_t v) { put_le(buf_, v); }
  void i64(int64_t v) { put_le(buf_, v); }
  void f64(double v) { put_le(buf_, v); }
  void str(const std::string& s);  // u64 length, then the bytes
  void raw(const char* data, size_t size) { buf_.append(data, size); }
  // Defined flag, dtype, shape, then (version >= 2) an encoding byte and the data. Floating
  // tensors whose zeros make a sparse encoding smaller are stored sparse: "stored" entries are
  // those that are not +-0.0, and the encoding (dense, bitmask or blocked) with the fewest bytes
  // wins, dense on ties. Every encoding round-trips bit for bit, -0.0 included (sign bitmap).
  // Defined in tensor_data.cpp.
  void tensor(const torch::Tensor& t);
  const std::string& bytes() const { return buf_; }
  uint32_t version() const { return version_; }

 private:
  std::string buf_;
  uint32_t version_;
};

// Reads what a Writer wrote. Every read is bounds-checked: running past the end is a c10::Error
// "<what>: unexpected end of data (corrupt file?)", never a bad read. Holds a reference to
// `bytes`, which must outlive it.
class Reader {
 public:
  // `what` names the source in error messages (usually the file path); `version` is the format
  // version the bytes were written with (it decides how tensors are decoded).
  Reader(const std::string& bytes, std::string what, uint32_t version = kFormatVersion);
  uint8_t u8() { return take<uint8_t>(); }
  uint32_t u32() { return take<uint32_t>(); }
  uint64_t u64() { return take<uint64_t>(); }
  int64_t i64() { return take<int64_t>(); }
  double f64() { return take<double>(); }
  std::string str();
  // The next `size` bytes, in place (valid while `bytes` lives).
  const char* raw(uint64_t size);
  torch::Tensor tensor();  // a CPU tensor; sparse encodings are decoded to dense (tensor_data.cpp)
  bool done() const { return pos_ == bytes_.size(); }
  uint64_t remaining() const { return bytes_.size() - pos_; }  // bytes not yet read
  uint32_t version() const { return version_; }

 private:
  void need(uint64_t n);
  template <typename T>
  T take() {
    T v;
    std::memcpy(&v, raw(sizeof(T)), sizeof(T));
    return v;
  }
  const std::string& bytes_;
  std::string what_;
  uint32_t version_;
  size_t pos_ = 0;
};

// Framed files: magic[8] | u32 version | u64 payload size | payload | u64 fnv1a64(payload).
// Wraps a payload with magic, version, size and checksum, and writes it atomically.
void write_framed_file(const std::string& path, const char magic[8], uint32_t version,
                       const std::string& payload);
// Reads and verifies a framed file; returns the payload. `kind` names the file type in errors:
// a foreign (bad magic), truncated, padded, newer or corrupt (checksum) file is a c10::Error
// naming the path.
std::string read_framed_file(const std::string& path, const char magic[8], uint32_t max_version,
                             const std::string& kind, uint32_t* version_out = nullptr);
// Bytes the framing adds to a payload.
constexpr int64_t kFramingBytes = 8 + 4 + 8 + 8;

// Writes bytes to path atomically (a temp file unique to this process, renamed into place), so
// a crash never leaves half a file.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace nnslim
