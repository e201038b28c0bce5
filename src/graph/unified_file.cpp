// The compact unified *.nnslim file (contract in graph/unified_file.h).
#include "nnslim/graph/unified_file.h"

#include "nnslim/graph/serialize.h"
#include "nnslim/graph/unified_codec.h"

#include <torch/torch.h>

#include <cstring>
#include <sstream>

namespace nnslim {

namespace {
constexpr char kUnifiedFileMagic[8] = {'N', 'N', 'S', 'L', 'I', 'M', 'U', '\0'};
}  // namespace

const char* const kUnifyBlocksMeta = "unify.blocks";

std::map<std::string, BlockShape> unified_layer_blocks(const Graph& graph) {
  std::map<std::string, BlockShape> out;
  auto it = graph.meta.find(kUnifyBlocksMeta);
  if (it == graph.meta.end()) return out;
  std::stringstream ss(it->second);
  for (std::string item; std::getline(ss, item, ';');) {
    if (item.empty()) continue;
    auto eq = item.rfind('=');
    TORCH_CHECK(eq != std::string::npos && eq > 0, "graph metadata '", kUnifyBlocksMeta,
                "': bad entry '", item, "' (expected name=OxIxK)");
    out[item.substr(0, eq)] = parse_block_shape(
        item.substr(eq + 1), std::string("graph metadata '") + kUnifyBlocksMeta + "'");
  }
  return out;
}

std::string unified_graph_bytes(const Graph& graph) {
  Graph g = graph;  // shares tensors; only this copy's maps are edited
  for (const auto& [name, block] : unified_layer_blocks(graph)) {
    Node* n = g.find(name);
    TORCH_CHECK(n && n->params.count("weight"), "unify: graph metadata names layer '", name,
                "', which the graph does not have");
    const torch::Tensor w = n->params.at("weight");
    std::string code = encode_unified(unified_from_weight(w, block));
    auto t = torch::empty({int64_t(code.size())}, torch::kUInt8);
    std::memcpy(t.data_ptr(), code.data(), code.size());
    n->buffers["unify.code"] = t;
    n->params["weight"] = torch::zeros(w.sizes(), w.options().device(torch::kCPU));
  }
  return graph_to_bytes(g);
}

void save_unified(const Graph& graph, const std::string& path) {
  write_framed_file(path, kUnifiedFileMagic, kFormatVersion, unified_graph_bytes(graph));
}

int64_t unified_file_bytes(const Graph& graph) {
  return static_cast<int64_t>(unified_graph_bytes(graph).size()) + kFramingBytes;
}

Graph load_unified(const std::string& path) {
  uint32_t version = 0;
  std::string payload =
      read_framed_file(path, kUnifiedFileMagic, kFormatVersion, "nnslim unified model", &version);
  Graph g = graph_from_bytes(payload, path, version);
  auto listed = unified_layer_blocks(g);
  for (auto& n : g.nodes) {
    auto it = n.buffers.find("unify.code");
    if (it == n.buffers.end()) continue;
    TORCH_CHECK(listed.count(n.name), path, ": node '", n.name,
                "' carries a unified layer but is not listed in the metadata (corrupt file?)");
    auto code_t = it->second.contiguous();
    TORCH_CHECK(code_t.scalar_type() == torch::kUInt8, path, ": node '", n.name,
                "': unified layer is not a byte buffer (corrupt file?)");
    std::string code(static_cast<const char*>(code_t.data_ptr()), code_t.numel());
    auto wit = n.params.find("weight");
    TORCH_CHECK(wit != n.params.end(), path, ": node '", n.name,
                "' carries a unified layer but has no weight (corrupt file?)");
    auto& w = wit->second;
    const std::vector<int64_t> shape = w.sizes().vec();
    auto L = decode_unified(code, path + ": node '" + n.name + "'", &shape);
    TORCH_CHECK(L.shape == w.sizes().vec() && L.dtype == w.scalar_type(), path, ": node '", n.name,
                "': unified layer shape/dtype does not match the node (corrupt file?)");
    w = unified_to_weight(L).requires_grad_(true);
    n.buffers.erase(it);
    listed.erase(n.name);
  }
  TORCH_CHECK(listed.empty(), path, ": layer '", listed.empty() ? "" : listed.begin()->first,
              "' is listed as unified but carries no unified layer (corrupt file?)");
  return g;
}

}  // namespace nnslim
