// The compact unified *.nnslim file: a graph whose unified layers (graph/unified_layer.h) are
// stored in their compact encoding (graph/unified_codec.h) instead of dense.
#pragma once

#include "nnslim/graph/graph.h"
#include "nnslim/graph/unified_layer.h"

#include <cstdint>
#include <map>
#include <string>

namespace nnslim {

// Graph metadata key listing the unified layers and their resolved block shapes:
// "name=1x4x9;name2=1x8x1" (written by the unify method's finalize()).
extern const char* const kUnifyBlocksMeta;
std::map<std::string, BlockShape> unified_layer_blocks(const Graph& graph);

// The compact *.nnslim file (magic "NNSLIMU\0", the framing of graph/archive.h). Its payload is an
// ordinary graph payload in which every layer listed in kUnifyBlocksMeta carries its encoded
// layer as a uint8 buffer "unify.code" and an all-zero placeholder weight (the standard v2
// writer stores it in ~numel/128 bytes). load_graph() refuses this file (other magic), so a
// placeholder can never be mistaken for weights; load_unified() restores the dense weights
// bit for bit.
std::string unified_graph_bytes(const Graph& graph);  // the payload
void save_unified(const Graph& graph, const std::string& path);
Graph load_unified(const std::string& path);
// Bytes save_unified() would write (payload + framing), without writing.
int64_t unified_file_bytes(const Graph& graph);

}  // namespace nnslim
