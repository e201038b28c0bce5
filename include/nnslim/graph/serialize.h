// The *.nnslim file: one versioned binary file holding a whole graph -- structure, parameters,
// buffers and metadata (input shape, classes, dataset normalisation, ...).
//
// Layout (little-endian; framing and bytes of graph/archive.h):
//   "NNSLIMG\0" | u32 version | u64 payload_size | payload | u64 fnv1a(payload)
// A truncated, corrupt (checksum) or newer-version file fails with an error naming the path.
// Writes go to "<path>.tmp" and are renamed into place, so a crash never leaves half a file.
//
// Versions: 1 = tensors stored dense. 2 = each tensor carries an encoding byte and floating
// tensors with many zeros are stored sparse (graph/tensor_data.h). Version-1 files still load.
// Attributes newer than version 2 (pool ceil_mode, HardSigmoid alpha/beta, a channel shuffle's
// permutation, a channel slice's range) are an optional section after the nodes, present only
// when a node has a non-default value: graphs without one are byte for byte what earlier builds
// wrote; earlier builds refuse graphs with one.
//
// A node's kernel choice (Node::kernel, an inference plan's) is never written: a loaded graph
// runs dense. A graph with a fused factor pair cannot be saved (its first weight exists only in
// the kernel's data). Other file kinds: graph/unified_file.h; any of them: graph/model_file.h.
#pragma once

#include "nnslim/graph/archive.h"
#include "nnslim/graph/graph.h"
#include "nnslim/graph/tensor_data.h"

#include <cstdint>
#include <string>

namespace nnslim {

// `version` < kFormatVersion writes an older format (compatibility tests, older readers).
void save_graph(const Graph& graph, const std::string& path, uint32_t version = kFormatVersion);
Graph load_graph(const std::string& path);

// In-memory forms, used by checkpoints (which embed a graph next to trainer state). The bytes
// carry no version of their own: the reader must be told the version they were written with.
std::string graph_to_bytes(const Graph& graph, uint32_t version = kFormatVersion);
Graph graph_from_bytes(const std::string& bytes, const std::string& what,
                       uint32_t version = kFormatVersion);

}  // namespace nnslim
