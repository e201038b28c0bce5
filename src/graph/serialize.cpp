#include "nnslim/graph/serialize.h"

#include "nnslim/graph/shape.h"

#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace nnslim {

namespace {

constexpr char kGraphMagic[8] = {'N', 'N', 'S', 'L', 'I', 'M', 'G', '\0'};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// Scalar types a file may hold (the enum values are stable across LibTorch versions).
bool storable(torch::ScalarType t) {
  switch (t) {
    case torch::kByte: case torch::kChar: case torch::kShort: case torch::kInt:
    case torch::kLong: case torch::kHalf: case torch::kFloat: case torch::kDouble:
    case torch::kBool: case torch::kBFloat16:
      return true;
    default:
      return false;
  }
}

template <typename T>
void put(std::string& buf, T v) {
  buf.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

}  // namespace

// ---- Writer / Reader --------------------------------------------------------------------------

void Writer::u32(uint32_t v) { put(buf_, v); }
void Writer::u64(uint64_t v) { put(buf_, v); }
void Writer::i64(int64_t v) { put(buf_, v); }
void Writer::f64(double v) { put(buf_, v); }
void Writer::str(const std::string& s) {
  u64(s.size());
  buf_ += s;
}
void Writer::tensor(const torch::Tensor& t) {
  u32(t.defined() ? 1 : 0);
  if (!t.defined()) return;
  auto c = t.detach().to(torch::kCPU).contiguous();
  TORCH_CHECK(storable(c.scalar_type()), "cannot store tensors of type ", c.scalar_type());
  u32(static_cast<uint32_t>(c.scalar_type()));
  u32(static_cast<uint32_t>(c.dim()));
  for (auto d : c.sizes()) i64(d);
  buf_.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

Reader::Reader(const std::string& bytes, std::string what) : bytes_(bytes), what_(std::move(what)) {}

void Reader::need(size_t n) {
  TORCH_CHECK(n <= bytes_.size() - pos_, what_, ": unexpected end of data (corrupt file?)");
}

template <typename T>
static T take(const std::string& b, size_t& pos) {
  T v;
  std::memcpy(&v, b.data() + pos, sizeof(T));
  pos += sizeof(T);
  return v;
}

uint32_t Reader::u32() { need(4); return take<uint32_t>(bytes_, pos_); }
uint64_t Reader::u64() { need(8); return take<uint64_t>(bytes_, pos_); }
int64_t Reader::i64() { need(8); return take<int64_t>(bytes_, pos_); }
double Reader::f64() { need(8); return take<double>(bytes_, pos_); }
std::string Reader::str() {
  uint64_t n = u64();
  need(n);
  std::string s = bytes_.substr(pos_, n);
  pos_ += n;
  return s;
}
torch::Tensor Reader::tensor() {
  if (u32() == 0) return {};
  auto type = static_cast<torch::ScalarType>(u32());
  TORCH_CHECK(storable(type), what_, ": unknown tensor type code ", static_cast<int>(type));
  uint32_t dim = u32();
  TORCH_CHECK(dim <= 8, what_, ": tensor with ", dim, " dimensions (corrupt file?)");
  std::vector<int64_t> sizes(dim);
  int64_t numel = 1;
  for (auto& d : sizes) {
    d = i64();
    TORCH_CHECK(d >= 0 && d < (int64_t(1) << 40), what_, ": bad tensor dimension ", d);
    numel *= d;
  }
  auto t = torch::empty(sizes, torch::TensorOptions().dtype(type));
  size_t nbytes = numel * t.element_size();
  need(nbytes);
  std::memcpy(t.data_ptr(), bytes_.data() + pos_, nbytes);
  pos_ += nbytes;
  return t;
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
  put(out, version);
  put(out, static_cast<uint64_t>(payload.size()));
  out += payload;
  put(out, fnv1a(payload));
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
  TORCH_CHECK(all.size() >= 8 && std::memcmp(all.data(), magic, 8) == 0, path,
              ": not a ", kind, " file (bad magic)");
  TORCH_CHECK(all.size() >= header + 8, path, ": truncated ", kind, " file (", all.size(),
              " bytes)");
  size_t pos = 8;
  auto version = take<uint32_t>(all, pos);
  auto size = take<uint64_t>(all, pos);
  TORCH_CHECK(version >= 1 && version <= max_version, path, ": ", kind, " format version ", version,
              " is newer than this build of nnslim reads (up to ", max_version,
              "); upgrade nnslim");
  TORCH_CHECK(size == all.size() - header - 8, path, ": truncated or padded ", kind, " file (",
              "expected ", size + header + 8, " bytes, found ", all.size(), ")");
  std::string payload = all.substr(header, size);
  pos = header + size;
  TORCH_CHECK(take<uint64_t>(all, pos) == fnv1a(payload), path, ": checksum mismatch (corrupt ",
              kind, " file)");
  if (version_out) *version_out = version;
  return payload;
}

// ---- graphs -----------------------------------------------------------------------------------

namespace {
void write_ints(Writer& w, const std::vector<int64_t>& v) {
  w.u64(v.size());
  for (auto x : v) w.i64(x);
}
std::vector<int64_t> read_ints(Reader& r, const std::string& what) {
  uint64_t n = r.u64();
  TORCH_CHECK(n <= 1024, what, ": implausible list length ", n, " (corrupt file?)");
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
}  // namespace

std::string graph_to_bytes(const Graph& g) {
  Writer w;
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
  return w.bytes();
}

Graph graph_from_bytes(const std::string& bytes, const std::string& what) {
  Reader r(bytes, what);
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
  TORCH_CHECK(r.done(), what, ": trailing bytes after the graph (corrupt file?)");
  try {
    validate(g);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, what, ": invalid graph: ", e.what_without_backtrace());
  }
  return g;
}

void save_graph(const Graph& graph, const std::string& path) {
  write_framed_file(path, kGraphMagic, kFormatVersion, graph_to_bytes(graph));
}

Graph load_graph(const std::string& path) {
  return graph_from_bytes(read_framed_file(path, kGraphMagic, kFormatVersion, "nnslim model"),
                          path);
}

}  // namespace nnslim
