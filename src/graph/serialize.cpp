// The graph <-> bytes codec and *.nnslim model files (contracts in graph/serialize.h). The
// bytes are graph/archive.h's; tensors are encoded as graph/tensor_data.h says.
#include "nnslim/graph/serialize.h"

#include "nnslim/graph/shape.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace nnslim {

namespace {
constexpr char kGraphMagic[8] = {'N', 'N', 'S', 'L', 'I', 'M', 'G', '\0'};
}  // namespace

namespace {
void write_ints(Writer& w, const std::vector<int64_t>& v) {
  w.u64(v.size());
  for (auto x : v) w.i64(x);
}
std::vector<int64_t> read_ints(Reader& r, const std::string& what) {
  uint64_t n = r.u64();
  TORCH_CHECK(n <= 1024 && n * 8 <= r.remaining(), what, ": implausible list length ", n,
              " (corrupt file?)");
  std::vector<int64_t> v(n);
  for (auto& x : v) x = r.i64();
  return v;
}
void write_tensors(Writer& w, const std::map<std::string, torch::Tensor>& m) {
  w.u64(m.size());
  for (const auto& kv : m) {
    w.str(kv.first);
    w.tensor(kv.second);
  }
}
std::map<std::string, torch::Tensor> read_tensors(Reader& r, const std::string& what,
                                                  bool trainable) {
  uint64_t n = r.u64();
  TORCH_CHECK(n <= 1024, what, ": implausible tensor count ", n, " (corrupt file?)");
  std::map<std::string, torch::Tensor> m;
  for (uint64_t i = 0; i < n; ++i) {
    auto key = r.str();
    auto t = r.tensor();
    TORCH_CHECK(t.defined(), what, ": tensor '", key, "' is empty");
    if (trainable) t.requires_grad_(true);
    m[key] = t;
  }
  return m;
}
// Attributes added after format version 2 (pool ceil_mode, HardSigmoid alpha/beta, a channel
// shuffle's perm -- one "perm" entry per channel, in order -- and a channel slice's start/end)
// follow the nodes as an optional section: u64 count, then (i64 node id, str key, f64 value)
// per entry (integers up to 2^53 are exact in an f64). It is
// written only when some node has a non-default value, so a graph without one has exactly the
// bytes earlier builds wrote (and read), and every earlier file reads as before.
const Attrs kDefaultAttrs;

std::vector<std::pair<std::string, double>> extra_attrs(const Node& n) {
  std::vector<std::pair<std::string, double>> out;
  if (n.attrs.ceil_mode != kDefaultAttrs.ceil_mode) out.emplace_back("ceil_mode", 1.0);
  if (n.attrs.alpha != kDefaultAttrs.alpha) out.emplace_back("alpha", n.attrs.alpha);
  if (n.attrs.beta != kDefaultAttrs.beta) out.emplace_back("beta", n.attrs.beta);
  for (int64_t j : n.attrs.perm) out.emplace_back("perm", static_cast<double>(j));
  if (n.attrs.start != kDefaultAttrs.start)
    out.emplace_back("start", static_cast<double>(n.attrs.start));
  if (n.attrs.end != kDefaultAttrs.end) out.emplace_back("end", static_cast<double>(n.attrs.end));
  return out;
}

void write_extra_attrs(Writer& w, const Graph& g) {
  uint64_t count = 0;
  for (const auto& n : g.nodes) count += extra_attrs(n).size();
  if (count == 0) return;
  w.u64(count);
  for (const auto& n : g.nodes)
    for (const auto& [key, value] : extra_attrs(n)) {
      w.i64(n.id);
      w.str(key);
      w.f64(value);
    }
}

void read_extra_attrs(Reader& r, Graph& g, const std::string& what) {
  if (r.done()) return;
  uint64_t count = r.u64();
  // Three scalar attributes a node at most, plus a channel shuffle's perm (one per channel).
  uint64_t limit = 3 * g.nodes.size();
  for (const auto& n : g.nodes)
    if (n.op == Op::kChannelShuffle) limit += uint64_t{1} << 20;
  TORCH_CHECK(count <= limit, what, ": implausible attribute count ", count, " (corrupt file?)");
  auto integer = [&](const Node& n, const std::string& key, double value) {
    TORCH_CHECK(value >= 0 && value < 9.0e15 && value == std::floor(value), what, ": node '",
                n.name, "': attribute '", key, "' must be a non-negative integer, got ", value,
                " (corrupt file?)");
    return static_cast<int64_t>(value);
  };
  for (uint64_t i = 0; i < count; ++i) {
    const int id = static_cast<int>(r.i64());
    const std::string key = r.str();
    const double value = r.f64();
    auto it =
        std::find_if(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.id == id; });
    TORCH_CHECK(it != g.nodes.end(), what, ": attribute '", key, "' of unknown node ", id,
                " (corrupt file?)");
    if (key == "ceil_mode")
      it->attrs.ceil_mode = value != 0.0;
    else if (key == "alpha")
      it->attrs.alpha = value;
    else if (key == "beta")
      it->attrs.beta = value;
    else if (key == "perm")
      it->attrs.perm.push_back(integer(*it, key, value));
    else if (key == "start")
      it->attrs.start = integer(*it, key, value);
    else if (key == "end")
      it->attrs.end = integer(*it, key, value);
    else
      TORCH_CHECK(false, what, ": node '", it->name, "' has attribute '", key,
                  "', which this build does not know (a file from a newer nnslim?)");
  }
}
}  // namespace

std::string graph_to_bytes(const Graph& g, uint32_t version) {
  // Kernel choices (Node::kernel) are inference-only and never written. A fused pair cannot
  // be: its first weight lives only in the kernel's data.
  for (const auto& n : g.nodes)
    TORCH_CHECK(
        n.kernel != ConvKernel::kFusedPair, "node '", n.name,
        "' runs as a fused factor pair (an inference plan); save the graph before planning");
  Writer w(version);
  w.u64(g.meta.size());
  for (const auto& kv : g.meta) {
    w.str(kv.first);
    w.str(kv.second);
  }
  write_ints(w, g.input_shape);
  w.i64(g.next_id);
  w.i64(g.output);
  w.u64(g.nodes.size());
  for (const auto& n : g.nodes) {
    w.i64(n.id);
    w.str(op_name(n.op));
    w.str(n.name);
    write_ints(w, std::vector<int64_t>(n.inputs.begin(), n.inputs.end()));
    write_ints(w, n.attrs.kernel);
    write_ints(w, n.attrs.stride);
    write_ints(w, n.attrs.padding);
    write_ints(w, n.attrs.dilation);
    w.i64(n.attrs.groups);
    w.f64(n.attrs.eps);
    w.f64(n.attrs.momentum);
    w.f64(n.attrs.p);
    write_tensors(w, n.params);
    write_tensors(w, n.buffers);
  }
  write_extra_attrs(w, g);
  return w.bytes();
}

Graph graph_from_bytes(const std::string& bytes, const std::string& what, uint32_t version) {
  Reader r(bytes, what, version);
  Graph g;
  uint64_t nmeta = r.u64();
  TORCH_CHECK(nmeta <= 4096, what, ": implausible metadata count (corrupt file?)");
  for (uint64_t i = 0; i < nmeta; ++i) {
    auto k = r.str();
    g.meta[k] = r.str();
  }
  g.input_shape = read_ints(r, what);
  g.next_id = static_cast<int>(r.i64());
  g.output = static_cast<int>(r.i64());
  uint64_t nnodes = r.u64();
  TORCH_CHECK(nnodes <= 1000000, what, ": implausible node count (corrupt file?)");
  for (uint64_t i = 0; i < nnodes; ++i) {
    Node n;
    n.id = static_cast<int>(r.i64());
    n.op = op_from_name(r.str());
    n.name = r.str();
    for (auto v : read_ints(r, what)) n.inputs.push_back(static_cast<int>(v));
    n.attrs.kernel = read_ints(r, what);
    n.attrs.stride = read_ints(r, what);
    n.attrs.padding = read_ints(r, what);
    n.attrs.dilation = read_ints(r, what);
    n.attrs.groups = r.i64();
    n.attrs.eps = r.f64();
    n.attrs.momentum = r.f64();
    n.attrs.p = r.f64();
    n.params = read_tensors(r, what, /*trainable=*/true);
    n.buffers = read_tensors(r, what, /*trainable=*/false);
    TORCH_CHECK(n.id > 0 && n.id < g.next_id, what, ": node '", n.name, "' has bad id ", n.id);
    g.nodes.push_back(std::move(n));
  }
  read_extra_attrs(r, g, what);
  TORCH_CHECK(r.done(), what, ": trailing bytes after the graph (corrupt file?)");
  try {
    validate(g);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, what, ": invalid graph: ", e.what_without_backtrace());
  }
  return g;
}

void save_graph(const Graph& graph, const std::string& path, uint32_t version) {
  write_framed_file(path, kGraphMagic, version, graph_to_bytes(graph, version));
}

Graph load_graph(const std::string& path) {
  uint32_t version = 0;
  std::string payload =
      read_framed_file(path, kGraphMagic, kFormatVersion, "nnslim model", &version);
  return graph_from_bytes(payload, path, version);
}

}  // namespace nnslim
