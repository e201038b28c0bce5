// The *.nnslim file: one versioned binary file holding a whole graph -- structure, parameters,
// buffers and metadata (input shape, classes, dataset normalisation, ...).
//
// Layout (little-endian):
//   "NNSLIMG\0" | u32 version | u64 payload_size | payload | u64 fnv1a(payload)
// A truncated, corrupt (checksum) or newer-version file fails with an error naming the path.
// Writes go to "<path>.tmp" and are renamed into place, so a crash never leaves half a file.
//
// Versions: 1 = tensors stored dense. 2 = each tensor carries an encoding byte and floating
// tensors with many zeros are stored sparse (see Writer::tensor). Version-1 files still load.
#pragma once

#include "nnslim/graph/graph.h"

#include <cstdint>
#include <string>

namespace nnslim {

constexpr uint32_t kFormatVersion = 2;

// `version` < kFormatVersion writes an older format (compatibility tests, older readers).
void save_graph(const Graph& graph, const std::string& path, uint32_t version = kFormatVersion);
Graph load_graph(const std::string& path);

// In-memory forms, used by checkpoints (which embed a graph next to trainer state). The bytes
// carry no version of their own: the reader must be told the version they were written with.
std::string graph_to_bytes(const Graph& graph, uint32_t version = kFormatVersion);
Graph graph_from_bytes(const std::string& bytes, const std::string& what,
                       uint32_t version = kFormatVersion);

// Tensor encodings of format version 2 (the byte after the shape in Writer::tensor).
enum class TensorEncoding : uint8_t {
  kDense = 0,    // raw contiguous bytes
  kBitmask = 1,  // u64 nnz | ceil(numel/8) bytes, bit i (LSB first) = entry i is stored | values
  kBlocked = 2,  // u64 nnz | u16 count per block of 256 entries | u8 offset in block per stored
                 // entry (increasing) | values  -- CSR with small indices, for very sparse data
};
// Flag or'ed into the encoding byte of kBitmask / kBlocked: a sign bitmap follows the values,
// one bit per zero entry (in order, LSB first; 1 = -0.0). Absent when every zero is +0.0.
constexpr uint8_t kZeroSignsFlag = 0x80;

// Low-level archive shared by graph files and checkpoints.
class Writer {
 public:
  explicit Writer(uint32_t version = kFormatVersion);
  void u8(uint8_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void i64(int64_t v);
  void f64(double v);
  void str(const std::string& s);
  // Defined flag, dtype, shape, then (version >= 2) an encoding byte and the data. Floating
  // tensors whose zeros make a sparse encoding smaller are stored sparse: "stored" entries are
  // those that are not +-0.0, and the encoding (dense, bitmask or blocked) with the fewest bytes
  // wins, dense on ties. Every encoding round-trips bit for bit, -0.0 included (sign bitmap).
  void tensor(const torch::Tensor& t);
  const std::string& bytes() const { return buf_; }
  uint32_t version() const { return version_; }

 private:
  std::string buf_;
  uint32_t version_;
};

class Reader {
 public:
  // `what` names the source in error messages (usually the file path); `version` is the format
  // version the bytes were written with (it decides how tensors are decoded).
  Reader(const std::string& bytes, std::string what, uint32_t version = kFormatVersion);
  uint8_t u8();
  uint32_t u32();
  uint64_t u64();
  int64_t i64();
  double f64();
  std::string str();
  torch::Tensor tensor();  // a CPU tensor; sparse encodings are decoded to dense
  bool done() const { return pos_ == bytes_.size(); }
  uint32_t version() const { return version_; }

 private:
  void need(size_t n);
  const std::string& bytes_;
  std::string what_;
  uint32_t version_;
  size_t pos_ = 0;
};

// Wraps a payload with magic, version, size and checksum, and writes it atomically.
void write_framed_file(const std::string& path, const char magic[8], uint32_t version,
                       const std::string& payload);
// Reads and verifies a framed file; returns the payload. `kind` names the file type in errors.
std::string read_framed_file(const std::string& path, const char magic[8], uint32_t max_version,
                             const std::string& kind, uint32_t* version_out = nullptr);

// Writes bytes to path atomically (temp file + rename).
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace nnslim
