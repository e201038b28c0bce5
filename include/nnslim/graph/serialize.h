// The *.nnslim file: one versioned binary file holding a whole graph -- structure, parameters,
// buffers and metadata (input shape, classes, dataset normalisation, ...).
//
// Layout (little-endian):  "NNSLIM\0\0" | u32 version | u64 payload_size | payload | u64 fnv1a(payload)
// A truncated, corrupt (checksum) or newer-version file fails with an error naming the path.
// Writes go to "<path>.tmp" and are renamed into place, so a crash never leaves half a file.
#pragma once

#include "nnslim/graph/graph.h"

#include <cstdint>
#include <string>

namespace nnslim {

constexpr uint32_t kFormatVersion = 1;

void save_graph(const Graph& graph, const std::string& path);
Graph load_graph(const std::string& path);

// In-memory forms, used by checkpoints (which embed a graph next to trainer state).
std::string graph_to_bytes(const Graph& graph);
Graph graph_from_bytes(const std::string& bytes, const std::string& what);

// Low-level archive shared by graph files and checkpoints.
class Writer {
 public:
  void u32(uint32_t v);
  void u64(uint64_t v);
  void i64(int64_t v);
  void f64(double v);
  void str(const std::string& s);
  void tensor(const torch::Tensor& t);  // dtype, shape, raw contiguous CPU bytes
  const std::string& bytes() const { return buf_; }

 private:
  std::string buf_;
};

class Reader {
 public:
  // `what` names the source in error messages (usually the file path).
  Reader(const std::string& bytes, std::string what);
  uint32_t u32();
  uint64_t u64();
  int64_t i64();
  double f64();
  std::string str();
  torch::Tensor tensor();
  bool done() const { return pos_ == bytes_.size(); }

 private:
  void need(size_t n);
  const std::string& bytes_;
  std::string what_;
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
