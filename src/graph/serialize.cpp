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

// ---- sparse tensor encodings (format version 2) ---------------------------------------------

namespace {

constexpr int64_t kBlock = 256;  // kBlocked: entries per block (offsets fit in a u8)

bool sparse_candidate(torch::ScalarType t) {
  return t == torch::kFloat || t == torch::kDouble || t == torch::kHalf || t == torch::kBFloat16;
}

// Sizes of the three encodings for `numel` entries of `es` bytes, `nnz` of them stored (not
// +-0.0), with or without a sign bitmap for the zeros.
struct EncodingSizes {
  uint64_t dense, bitmask, blocked;
};
EncodingSizes encoding_sizes(uint64_t numel, uint64_t es, uint64_t nnz, bool signs) {
  uint64_t sign_bytes = signs ? (numel - nnz + 7) / 8 : 0;
  EncodingSizes z;
  z.dense = numel * es;
  z.bitmask = 8 + (numel + 7) / 8 + nnz * es + sign_bytes;
  z.blocked = 8 + 2 * ((numel + kBlock - 1) / kBlock) + nnz * (1 + es) + sign_bytes;
  return z;
}

// Element bits as an unsigned integer U of the element's size; a zero is any pattern whose
// bits other than the sign bit are all 0.
template <typename U>
struct Bits {
  static constexpr U kSign = U(1) << (8 * sizeof(U) - 1);
  static U at(const char* data, int64_t i) {
    U u;
    std::memcpy(&u, data + i * sizeof(U), sizeof(U));
    return u;
  }
  static bool stored(U u) { return (u & ~kSign) != 0; }
};

template <typename U>
void count_entries(const char* data, int64_t numel, uint64_t& nnz, uint64_t& negative_zeros) {
  nnz = negative_zeros = 0;
  for (int64_t i = 0; i < numel; ++i) {
    U u = Bits<U>::at(data, i);
    if (Bits<U>::stored(u))
      ++nnz;
    else if (u != 0)
      ++negative_zeros;
  }
}

template <typename U>
void encode_sparse(std::string& buf, const char* data, int64_t numel, uint64_t nnz,
                   TensorEncoding enc, bool signs) {
  put<uint64_t>(buf, nnz);
  if (enc == TensorEncoding::kBitmask) {
    std::string mask((numel + 7) / 8, '\0');
    for (int64_t i = 0; i < numel; ++i)
      if (Bits<U>::stored(Bits<U>::at(data, i))) mask[i / 8] |= static_cast<char>(1 << (i % 8));
    buf += mask;
  } else {
    const int64_t blocks = (numel + kBlock - 1) / kBlock;
    std::string counts(2 * blocks, '\0'), offsets;
    offsets.reserve(nnz);
    for (int64_t b = 0; b < blocks; ++b) {
      uint16_t k = 0;
      for (int64_t i = b * kBlock; i < std::min(numel, (b + 1) * kBlock); ++i)
        if (Bits<U>::stored(Bits<U>::at(data, i))) {
          offsets.push_back(static_cast<char>(i - b * kBlock));
          ++k;
        }
      std::memcpy(&counts[2 * b], &k, 2);
    }
    buf += counts;
    buf += offsets;
  }
  for (int64_t i = 0; i < numel; ++i) {
    U u = Bits<U>::at(data, i);
    if (Bits<U>::stored(u)) put<U>(buf, u);
  }
  if (signs) {
    std::string bits((numel - nnz + 7) / 8, '\0');
    uint64_t z = 0;
    for (int64_t i = 0; i < numel; ++i) {
      U u = Bits<U>::at(data, i);
      if (Bits<U>::stored(u)) continue;
      if (u != 0) bits[z / 8] |= static_cast<char>(1 << (z % 8));
      ++z;
    }
    buf += bits;
  }
}

}  // namespace

// ---- Writer / Reader --------------------------------------------------------------------------

Writer::Writer(uint32_t version) : version_(version) {
  TORCH_CHECK(version >= 1 && version <= kFormatVersion, "cannot write format version ", version,
              " (this build writes 1 to ", kFormatVersion, ")");
}
void Writer::u8(uint8_t v) { put(buf_, v); }
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
  const char* data = static_cast<const char*>(c.data_ptr());
  const int64_t numel = c.numel();
  const uint64_t es = c.element_size();
  if (version_ >= 2) {
    TensorEncoding enc = TensorEncoding::kDense;
    uint64_t nnz = 0, negative_zeros = 0;
    if (sparse_candidate(c.scalar_type()) && numel > 0) {
      if (es == 2) count_entries<uint16_t>(data, numel, nnz, negative_zeros);
      if (es == 4) count_entries<uint32_t>(data, numel, nnz, negative_zeros);
      if (es == 8) count_entries<uint64_t>(data, numel, nnz, negative_zeros);
      auto z = encoding_sizes(numel, es, nnz, negative_zeros > 0);
      if (z.bitmask < z.dense && z.bitmask <= z.blocked) enc = TensorEncoding::kBitmask;
      if (z.blocked < z.dense && z.blocked < z.bitmask) enc = TensorEncoding::kBlocked;
    }
    bool signs = negative_zeros > 0;
    if (enc != TensorEncoding::kDense) {
      u8(static_cast<uint8_t>(enc) | (signs ? kZeroSignsFlag : 0));
      if (es == 2) encode_sparse<uint16_t>(buf_, data, numel, nnz, enc, signs);
      if (es == 4) encode_sparse<uint32_t>(buf_, data, numel, nnz, enc, signs);
      if (es == 8) encode_sparse<uint64_t>(buf_, data, numel, nnz, enc, signs);
      return;
    }
    u8(static_cast<uint8_t>(TensorEncoding::kDense));
  }
  buf_.append(data, numel * es);
}

Reader::Reader(const std::string& bytes, std::string what, uint32_t version)
    : bytes_(bytes), what_(std::move(what)), version_(version) {
  TORCH_CHECK(version >= 1 && version <= kFormatVersion, what_, ": format version ", version,
              " is not one this build reads (1 to ", kFormatVersion, ")");
}

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

uint8_t Reader::u8() { need(1); return take<uint8_t>(bytes_, pos_); }
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

namespace {

// Decodes a kBitmask / kBlocked payload at bytes[pos] into the zero-filled `out` (numel entries
// of type U). Every count and index is checked: corrupt data is an error, never a bad write.
template <typename U>
void decode_sparse(const std::string& bytes, size_t& pos, const std::string& what, char* out,
                   int64_t numel, TensorEncoding enc, bool signs) {
  auto need = [&](uint64_t n) {
    TORCH_CHECK(n <= bytes.size() - pos, what, ": unexpected end of data (corrupt file?)");
  };
  need(8);
  uint64_t nnz;
  std::memcpy(&nnz, bytes.data() + pos, 8);
  pos += 8;
  TORCH_CHECK(nnz <= static_cast<uint64_t>(numel), what, ": sparse tensor claims ", nnz,
              " stored entries of ", numel, " (corrupt file?)");
  std::vector<int64_t> index;
  index.reserve(nnz);
  if (enc == TensorEncoding::kBitmask) {
    uint64_t mask_bytes = (numel + 7) / 8;
    need(mask_bytes);
    const auto* m = reinterpret_cast<const unsigned char*>(bytes.data() + pos);
    for (int64_t i = 0; i < numel; ++i)
      if (m[i / 8] & (1u << (i % 8))) {
        TORCH_CHECK(index.size() < nnz, what, ": sparse bitmask has more entries than ", nnz,
                    " (corrupt file?)");
        index.push_back(i);
      }
    TORCH_CHECK(numel % 8 == 0 || (m[mask_bytes - 1] >> (numel % 8)) == 0, what,
                ": sparse bitmask has bits past the end (corrupt file?)");
    pos += mask_bytes;
  } else {
    const int64_t blocks = (numel + kBlock - 1) / kBlock;
    need(2 * static_cast<uint64_t>(blocks));
    const char* counts = bytes.data() + pos;
    pos += 2 * blocks;
    need(nnz);
    const auto* off = reinterpret_cast<const unsigned char*>(bytes.data() + pos);
    uint64_t k = 0;
    for (int64_t b = 0; b < blocks; ++b) {
      uint16_t cnt;
      std::memcpy(&cnt, counts + 2 * b, 2);
      const int64_t len = std::min(kBlock, numel - b * kBlock);
      TORCH_CHECK(cnt <= len && k + cnt <= nnz, what,
                  ": sparse block counts do not add up (corrupt file?)");
      int64_t prev = -1;
      for (uint16_t j = 0; j < cnt; ++j, ++k) {
        int64_t o = off[k];
        TORCH_CHECK(o > prev && o < len, what, ": bad sparse index (corrupt file?)");
        prev = o;
        index.push_back(b * kBlock + o);
      }
    }
    pos += nnz;
  }
  TORCH_CHECK(index.size() == nnz, what, ": sparse tensor has ", index.size(),
              " indexed entries, expected ", nnz, " (corrupt file?)");
  need(nnz * sizeof(U));
  for (uint64_t k = 0; k < nnz; ++k) {
    std::memcpy(out + index[k] * sizeof(U), bytes.data() + pos, sizeof(U));
    pos += sizeof(U);
  }
  if (signs) {
    uint64_t zeros = numel - nnz, sign_bytes = (zeros + 7) / 8;
    need(sign_bytes);
    const auto* sb = reinterpret_cast<const unsigned char*>(bytes.data() + pos);
    uint64_t z = 0;
    size_t next = 0;  // position in `index` (sorted)
    for (int64_t i = 0; i < numel; ++i) {
      if (next < index.size() && index[next] == i) {
        ++next;
        continue;
      }
      if (sb[z / 8] & (1u << (z % 8))) {
        U u = Bits<U>::kSign;
        std::memcpy(out + i * sizeof(U), &u, sizeof(U));
      }
      ++z;
    }
    pos += sign_bytes;
  }
}

}  // namespace

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
    TORCH_CHECK(numel < (int64_t(1) << 40), what_, ": implausible tensor size (corrupt file?)");
  }
  TensorEncoding enc = TensorEncoding::kDense;
  bool signs = false;
  if (version_ >= 2) {
    uint8_t e = u8();
    signs = (e & kZeroSignsFlag) != 0;
    e &= static_cast<uint8_t>(~kZeroSignsFlag);
    TORCH_CHECK(e <= 2 && !(signs && e == 0), what_, ": unknown tensor encoding ",
                static_cast<int>(e), " (corrupt file?)");
    enc = static_cast<TensorEncoding>(e);
    TORCH_CHECK(enc == TensorEncoding::kDense || sparse_candidate(type), what_,
                ": sparse encoding on a non-floating tensor (corrupt file?)");
  }
  if (enc == TensorEncoding::kDense) {
    auto t = torch::empty(sizes, torch::TensorOptions().dtype(type));
    size_t nbytes = numel * t.element_size();
    need(nbytes);
    std::memcpy(t.data_ptr(), bytes_.data() + pos_, nbytes);
    pos_ += nbytes;
    return t;
  }
  auto t = torch::zeros(sizes, torch::TensorOptions().dtype(type));
  char* out = static_cast<char*>(t.data_ptr());
  switch (t.element_size()) {
    case 2: decode_sparse<uint16_t>(bytes_, pos_, what_, out, numel, enc, signs); break;
    case 4: decode_sparse<uint32_t>(bytes_, pos_, what_, out, numel, enc, signs); break;
    default: decode_sparse<uint64_t>(bytes_, pos_, what_, out, numel, enc, signs); break;
  }
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

std::string graph_to_bytes(const Graph& g, uint32_t version) {
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
