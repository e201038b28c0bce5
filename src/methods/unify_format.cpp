// Block partition, compact storage and the sign-sum inference kernel of unified layers
// (METHODS.md §4.3, §4.6; contracts in unify_format.h).
#include "nnslim/methods/unify_format.h"

#include "nnslim/graph/serialize.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>

namespace nnslim {

// ---- block shapes ------------------------------------------------------------------------------

std::string BlockShape::str() const {
  return std::to_string(out) + "x" + std::to_string(in) + "x" + (k == 0 ? "K" : std::to_string(k));
}

BlockShape parse_block_shape(const std::string& text, const std::string& what) {
  std::vector<std::string> parts;
  std::stringstream ss(text);
  for (std::string p; std::getline(ss, p, 'x');) parts.push_back(p);
  auto bad = [&]() {
    TORCH_CHECK(false, what, " expects OxIxK with positive integers (K may be the letter K = whole "
                "kernel), e.g. 1x4xK, 4x4x1, 1x1xK; got '", text, "'");
  };
  if (parts.size() != 3 || text.back() == 'x') bad();
  int64_t v[3] = {0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    if (i == 2 && (parts[i] == "K" || parts[i] == "k")) continue;  // whole kernel
    char* end = nullptr;
    long long x = std::strtoll(parts[i].c_str(), &end, 10);
    if (parts[i].empty() || *end != '\0' || x < 1 || x > (1 << 20)) bad();
    v[i] = x;
  }
  return {v[0], v[1], v[2]};
}

// ---- partition ---------------------------------------------------------------------------------

BlockPartition::BlockPartition(std::vector<int64_t> weight_shape, BlockShape shape)
    : weight_shape_(std::move(weight_shape)) {
  const auto& s = weight_shape_;
  TORCH_CHECK(s.size() == 4 || s.size() == 2,
              "unify: a block partition needs a [n, c, kh, kw] or [out, in] weight, got ", s.size(),
              " dimensions");
  for (auto d : s) TORCH_CHECK(d >= 1, "unify: cannot partition a weight with an empty dimension");
  TORCH_CHECK(shape.out >= 1 && shape.in >= 1 && shape.k >= 0, "unify: bad block shape ",
              shape.str());
  n_ = s[0];
  c_ = s[1];
  k_ = s.size() == 4 ? s[2] * s[3] : 1;
  bo_ = std::min(shape.out, n_);
  bi_ = std::min(shape.in, c_);
  bk_ = shape.k == 0 ? k_ : std::min(shape.k, k_);
  nbo_ = (n_ + bo_ - 1) / bo_;
  nbi_ = (c_ + bi_ - 1) / bi_;
  nbk_ = (k_ + bk_ - 1) / bk_;
  valid_ = to_blocks(torch::ones(weight_shape_, torch::kUInt8)).to(torch::kBool);
  sizes_ = valid_.sum(1).to(torch::kLong);
  block_rows_ = valid_.view({blocks(), bo_, bi_ * bk_}).any(2).sum(1).to(torch::kLong);
}

torch::Tensor BlockPartition::to_blocks(const torch::Tensor& w) const {
  TORCH_CHECK(w.numel() == numel(), "unify: weight has ", w.numel(), " entries, the partition ",
              numel());
  auto t = w.reshape({n_, c_, k_});
  t = torch::constant_pad_nd(t, {0, nbk_ * bk_ - k_, 0, nbi_ * bi_ - c_, 0, nbo_ * bo_ - n_}, 0);
  return t.view({nbo_, bo_, nbi_, bi_, nbk_, bk_})
      .permute({0, 2, 4, 1, 3, 5})
      .reshape({blocks(), block_size()});
}

torch::Tensor BlockPartition::from_blocks(const torch::Tensor& b) const {
  TORCH_CHECK(b.dim() == 2 && b.size(0) == blocks() && b.size(1) == block_size(),
              "unify: expected [", blocks(), ", ", block_size(), "] blocks");
  return b.reshape({nbo_, nbi_, nbk_, bo_, bi_, bk_})
      .permute({0, 3, 1, 4, 2, 5})
      .reshape({nbo_ * bo_, nbi_ * bi_, nbk_ * bk_})
      .slice(0, 0, n_)
      .slice(1, 0, c_)
      .slice(2, 0, k_)
      .reshape(weight_shape_)
      .contiguous();
}

torch::Tensor BlockPartition::expand(const torch::Tensor& per_block) const {
  TORCH_CHECK(per_block.numel() == blocks(), "unify: expected ", blocks(), " per-block values");
  return from_blocks(per_block.reshape({blocks(), 1}).expand({blocks(), block_size()}));
}

int64_t UnifiedLayer::count(BlockState s) const {
  return (state == static_cast<uint8_t>(s)).sum().item<int64_t>();
}

// ---- lossless classification and reconstruction --------------------------------------------

UnifiedLayer unified_from_weight(const torch::Tensor& weight, const BlockShape& block) {
  torch::NoGradGuard ng;
  TORCH_CHECK(weight.is_floating_point(), "unify: can only encode floating weights");
  auto w = weight.detach().to(torch::kCPU).contiguous();
  UnifiedLayer L;
  L.shape = w.sizes().vec();
  L.dtype = w.scalar_type();
  BlockPartition part(L.shape, block);
  L.block = part.block();
  auto b = part.to_blocks(w);
  const auto& valid = part.valid();
  auto neg = torch::signbit(b);
  // Pruned: every entry +0.0 (padding is +0.0 too), so -0.0 never turns into +0.0.
  auto pruned = ((b == 0) & ~neg).all(1);
  auto ab = b.abs();
  auto inf = std::numeric_limits<double>::infinity();
  auto mx = ab.masked_fill(~valid, -inf).amax(1);
  auto mn = ab.masked_fill(~valid, inf).amin(1);
  auto unified = (mx == mn) & (part.sizes() >= 2) & ~pruned;
  auto free = ~(pruned | unified);
  L.state = torch::zeros({part.blocks()}, torch::kUInt8)
                .masked_fill(pruned, static_cast<uint8_t>(BlockState::kPruned))
                .masked_fill(unified, static_cast<uint8_t>(BlockState::kUnified));
  L.magnitudes = mx.masked_select(unified).contiguous();
  L.signs = neg.index({unified}).masked_select(valid.index({unified})).contiguous();
  L.free_values = b.index({free}).masked_select(valid.index({free})).contiguous();
  return L;
}

torch::Tensor unified_to_weight(const UnifiedLayer& L) {
  torch::NoGradGuard ng;
  BlockPartition part(L.shape, L.block);
  const auto& valid = part.valid();
  auto opts = torch::TensorOptions().dtype(L.dtype);
  auto out = torch::zeros({part.blocks(), part.block_size()}, opts);
  auto unified = L.state == static_cast<uint8_t>(BlockState::kUnified);
  auto free = L.state == static_cast<uint8_t>(BlockState::kFree);
  if (L.magnitudes.numel() > 0) {
    auto vu = valid.index({unified});
    auto neg = torch::zeros(vu.sizes(), torch::kBool).masked_scatter_(vu, L.signs);
    auto a = L.magnitudes.to(L.dtype).unsqueeze(1).expand(vu.sizes());
    // -a is exact, and -(+0.0) = -0.0 restores negative zeros.
    out.index_put_({unified}, torch::where(neg, -a, a).masked_fill(~vu, 0));
  }
  if (L.free_values.numel() > 0) {
    auto vf = valid.index({free});
    out.index_put_({free}, torch::zeros(vf.sizes(), opts).masked_scatter_(vf, L.free_values));
  }
  return part.from_blocks(out);
}

// ---- byte encoding -----------------------------------------------------------------------------

namespace {

constexpr char kLayerMagic[4] = {'U', 'N', 'F', '1'};
constexpr char kUnifiedFileMagic[8] = {'N', 'N', 'S', 'L', 'I', 'M', 'U', '\0'};

template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void put_tensor_bytes(std::string& s, const torch::Tensor& t) {
  auto c = t.contiguous();
  s.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

bool encodable(torch::ScalarType t) {
  return t == torch::kFloat || t == torch::kDouble || t == torch::kHalf || t == torch::kBFloat16;
}

// Bits, LSB first.
std::string pack_bits(const torch::Tensor& bits) {
  auto b = bits.to(torch::kBool).contiguous();
  const bool* p = b.data_ptr<bool>();
  std::string out((b.numel() + 7) / 8, '\0');
  for (int64_t i = 0; i < b.numel(); ++i)
    if (p[i]) out[i / 8] |= static_cast<char>(1 << (i % 8));
  return out;
}

class ByteReader {
 public:
  ByteReader(const std::string& b, const std::string& what) : b_(b), what_(what) {}
  void need(uint64_t n) {
    TORCH_CHECK(n <= b_.size() - pos_, what_, ": unified layer is truncated (corrupt file?)");
  }
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  const char* take(uint64_t n) {
    need(n);
    const char* p = b_.data() + pos_;
    pos_ += n;
    return p;
  }
  bool done() const { return pos_ == b_.size(); }

 private:
  const std::string& b_;
  const std::string& what_;
  size_t pos_ = 0;
};

}  // namespace

std::string encode_unified(const UnifiedLayer& L) {
  TORCH_CHECK(encodable(L.dtype), "unify: cannot encode weights of type ", L.dtype);
  BlockPartition part(L.shape, L.block);
  auto state = L.state.to(torch::kUInt8).contiguous();
  TORCH_CHECK(state.numel() == part.blocks(), "unify: layer has ", state.numel(),
              " block states, its partition ", part.blocks(), " blocks");
  std::string s(kLayerMagic, 4);
  put<uint8_t>(s, static_cast<uint8_t>(L.dtype));
  put<uint8_t>(s, static_cast<uint8_t>(L.shape.size()));
  for (auto d : L.shape) put<int64_t>(s, d);
  auto blk = part.block();
  put<int64_t>(s, blk.out);
  put<int64_t>(s, blk.in);
  put<int64_t>(s, blk.k);
  put<uint64_t>(s, part.blocks());
  put<uint64_t>(s, L.magnitudes.numel());
  put<uint64_t>(s, L.signs.numel());
  put<uint64_t>(s, L.free_values.numel());
  std::string mask((part.blocks() + 3) / 4, '\0');
  const uint8_t* st = state.data_ptr<uint8_t>();
  for (int64_t i = 0; i < part.blocks(); ++i) {
    TORCH_CHECK(st[i] <= 2, "unify: bad block state ", int(st[i]));
    mask[i / 4] |= static_cast<char>(st[i] << (2 * (i % 4)));
  }
  s += mask;
  put_tensor_bytes(s, L.magnitudes.to(L.dtype));
  s += pack_bits(L.signs);
  put_tensor_bytes(s, L.free_values.to(L.dtype));
  return s;
}

UnifiedLayer decode_unified(const std::string& bytes, const std::string& what) {
  ByteReader r(bytes, what);
  TORCH_CHECK(std::memcmp(r.take(4), kLayerMagic, 4) == 0, what,
              ": not a unified layer (bad magic)");
  UnifiedLayer L;
  auto dtype = static_cast<torch::ScalarType>(r.get<uint8_t>());
  TORCH_CHECK(encodable(dtype), what, ": unified layer has unsupported dtype code ",
              int(static_cast<uint8_t>(dtype)), " (corrupt file?)");
  L.dtype = dtype;
  auto ndim = r.get<uint8_t>();
  TORCH_CHECK(ndim == 2 || ndim == 4, what, ": unified layer has ", int(ndim),
              " dimensions (corrupt file?)");
  int64_t numel = 1;
  for (int i = 0; i < ndim; ++i) {
    auto d = r.get<int64_t>();
    TORCH_CHECK(d >= 1 && d < (int64_t(1) << 31), what, ": bad unified layer dimension ", d);
    L.shape.push_back(d);
    numel *= d;
    TORCH_CHECK(numel < (int64_t(1) << 40), what, ": implausible unified layer size");
  }
  int64_t bo = r.get<int64_t>(), bi = r.get<int64_t>(), bk = r.get<int64_t>();
  TORCH_CHECK(bo >= 1 && bi >= 1 && bk >= 1 && bo <= L.shape[0] && bi <= L.shape[1], what,
              ": bad block shape (corrupt file?)");
  L.block = {bo, bi, bk};
  BlockPartition part(L.shape, L.block);
  TORCH_CHECK(part.block() == L.block, what, ": bad block shape (corrupt file?)");
  auto blocks = r.get<uint64_t>(), nu = r.get<uint64_t>(), nsign = r.get<uint64_t>(),
       nfree = r.get<uint64_t>();
  TORCH_CHECK(blocks == uint64_t(part.blocks()), what, ": unified layer claims ", blocks,
              " blocks, its shape has ", part.blocks(), " (corrupt file?)");
  const auto* mask = reinterpret_cast<const uint8_t*>(r.take((blocks + 3) / 4));
  L.state = torch::empty({part.blocks()}, torch::kUInt8);
  uint8_t* st = L.state.data_ptr<uint8_t>();
  const int64_t* sizes = part.sizes().data_ptr<int64_t>();
  uint64_t count_u = 0, count_sign = 0, count_free = 0;
  for (int64_t i = 0; i < part.blocks(); ++i) {
    st[i] = (mask[i / 4] >> (2 * (i % 4))) & 3;
    TORCH_CHECK(st[i] <= 2, what, ": bad block state in unified layer (corrupt file?)");
    if (st[i] == uint8_t(BlockState::kUnified)) {
      ++count_u;
      count_sign += sizes[i];
    }
    if (st[i] == uint8_t(BlockState::kFree)) count_free += sizes[i];
  }
  TORCH_CHECK(blocks % 4 == 0 || (mask[blocks / 4] >> (2 * (blocks % 4))) == 0, what,
              ": unified layer mask has bits past the end (corrupt file?)");
  TORCH_CHECK(count_u == nu && count_sign == nsign && count_free == nfree, what,
              ": unified layer counts do not match its block mask (corrupt file?)");
  auto opts = torch::TensorOptions().dtype(dtype);
  const int64_t es = torch::elementSize(dtype);
  L.magnitudes = torch::empty({int64_t(nu)}, opts);
  std::memcpy(L.magnitudes.data_ptr(), r.take(nu * es), nu * es);
  const auto* sb = reinterpret_cast<const uint8_t*>(r.take((nsign + 7) / 8));
  L.signs = torch::empty({int64_t(nsign)}, torch::kBool);
  bool* sp = L.signs.data_ptr<bool>();
  for (uint64_t i = 0; i < nsign; ++i) sp[i] = (sb[i / 8] >> (i % 8)) & 1;
  L.free_values = torch::empty({int64_t(nfree)}, opts);
  std::memcpy(L.free_values.data_ptr(), r.take(nfree * es), nfree * es);
  TORCH_CHECK(r.done(), what, ": trailing bytes after a unified layer (corrupt file?)");
  return L;
}

// ---- graphs and files --------------------------------------------------------------------------

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
  return static_cast<int64_t>(unified_graph_bytes(graph).size()) + 8 + 4 + 8 + 8;  // framing
}

Graph load_unified(const std::string& path) {
  uint32_t version = 0;
  std::string payload = read_framed_file(path, kUnifiedFileMagic, kFormatVersion,
                                         "nnslim unified model", &version);
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
    auto L = decode_unified(code, path + ": node '" + n.name + "'");
    auto& w = n.params.at("weight");
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

// ---- inference kernel ----------------------------------------------------------------------

UnifiedConv2d::UnifiedConv2d(const UnifiedLayer& L, const Attrs& attrs)
    : shape_(L.shape), attrs_(attrs), dtype_(L.dtype) {
  TORCH_CHECK(L.shape.size() == 4, "unified_conv2d: needs a conv weight [n, c, kh, kw]");
  TORCH_CHECK(dtype_ == torch::kFloat || dtype_ == torch::kDouble,
              "unified_conv2d: float or double weights only");
  const int64_t n = L.shape[0], c = L.shape[1], K = L.shape[2] * L.shape[3];
  TORCH_CHECK(attrs.groups >= 1 && n % attrs.groups == 0, "unified_conv2d: groups ",
              attrs.groups, " do not divide ", n, " output channels");
  BlockPartition part(L.shape, L.block);
  const auto blk = part.block();
  const int64_t nbi = (c + blk.in - 1) / blk.in, nbk = (K + blk.k - 1) / blk.k;
  auto state = L.state.contiguous();
  auto mags = L.magnitudes.to(torch::kDouble).contiguous();
  auto fvals = L.free_values.to(torch::kDouble).contiguous();
  auto signs = L.signs.contiguous();
  const uint8_t* st = state.data_ptr<uint8_t>();
  const double* mp = mags.data_ptr<double>();
  const double* fp = fvals.data_ptr<double>();
  const bool* sp = signs.data_ptr<bool>();

  // Per output channel: its free (row, weight) pairs and its unified groups.
  struct Group {
    double a;
    std::vector<int64_t> pos, neg;
  };
  std::vector<std::vector<std::pair<int64_t, double>>> free(n);
  std::vector<std::vector<Group>> groups(n);
  int64_t mi = 0, fi = 0, si = 0;
  for (int64_t b = 0; b < part.blocks(); ++b) {
    const int64_t ob = b / (nbi * nbk), ib = b / nbk % nbi, kb = b % nbk;
    const auto s = static_cast<BlockState>(st[b]);
    if (s == BlockState::kUnified) {
      // One group per output row the block spans (§4.6: one multiply per row and position).
      std::vector<Group> rows;
      for (int64_t o = ob * blk.out; o < std::min(n, (ob + 1) * blk.out); ++o)
        rows.push_back({mp[mi], {}, {}});
      ++mi;
      for (int64_t o = ob * blk.out; o < std::min(n, (ob + 1) * blk.out); ++o)
        for (int64_t i = ib * blk.in; i < std::min(c, (ib + 1) * blk.in); ++i)
          for (int64_t k = kb * blk.k; k < std::min(K, (kb + 1) * blk.k); ++k) {
            auto& g = rows[o - ob * blk.out];
            (sp[si++] ? g.neg : g.pos).push_back(i * K + k);
          }
      for (int64_t o = ob * blk.out; o < std::min(n, (ob + 1) * blk.out); ++o)
        groups[o].push_back(std::move(rows[o - ob * blk.out]));
    } else if (s == BlockState::kFree) {
      for (int64_t o = ob * blk.out; o < std::min(n, (ob + 1) * blk.out); ++o)
        for (int64_t i = ib * blk.in; i < std::min(c, (ib + 1) * blk.in); ++i)
          for (int64_t k = kb * blk.k; k < std::min(K, (kb + 1) * blk.k); ++k)
            free[o].push_back({i * K + k, fp[fi++]});
    }
  }
  TORCH_INTERNAL_ASSERT(mi == mags.numel() && fi == fvals.numel() && si == signs.numel());
  TORCH_CHECK(c * K < (int64_t(1) << 31), "unified_conv2d: layer too large");
  row_begin_.push_back(0);
  group_begin_.push_back(0);
  group_rows_.push_back(0);
  for (int64_t o = 0; o < n; ++o) {
    for (auto& [r, w] : free[o]) {
      free_rows_.push_back(static_cast<int32_t>(r));
      free_w64_.push_back(w);
    }
    row_begin_.push_back(free_rows_.size());
    for (auto& g : groups[o]) {
      group_a64_.push_back(g.a);
      group_pos_.push_back(g.pos.size());
      unified_rows_.insert(unified_rows_.end(), g.pos.begin(), g.pos.end());
      unified_rows_.insert(unified_rows_.end(), g.neg.begin(), g.neg.end());
      group_rows_.push_back(unified_rows_.size());
    }
    group_begin_.push_back(group_a64_.size());
  }
  free_w32_.assign(free_w64_.begin(), free_w64_.end());
  group_a32_.assign(group_a64_.begin(), group_a64_.end());
  multiplies_ = static_cast<int64_t>(free_rows_.size() + group_a64_.size());
}

namespace {

struct KernelArgs {
  const int64_t *row_begin, *group_begin, *group_rows, *group_pos;
  const int32_t *free_rows, *unified_rows;
  int64_t n, out_per_group, rows_per_group, cols_rows, L;
  // Unfolding straight from the zero-padded input [N, C, Hp, Wp]: row r of the unfolded input
  // starts at row_offset[r] within an image; output position (oy, ox) adds oy*sh*Wp + ox*sw.
  const int64_t* row_offset;
  int64_t image_stride, Wp, Wo, sh, sw;
};

// GCC/Clang vector extensions: a chunk of W values is kN vectors of at most 64 bytes, which
// each clone below lowers to its own registers (zmm, 2 x ymm or 4 x xmm).
template <typename T, int W>
struct Lanes {
  static constexpr int kBytes = W * sizeof(T) < 64 ? W * sizeof(T) : 64;
  static constexpr int kPer = kBytes / sizeof(T);  // values per vector
  static constexpr int kN = W / kPer;               // vectors per chunk
  typedef T Vec __attribute__((vector_size(kBytes)));
};

// Output channels [o0, o1) at batch positions [p0, p0 + W) (P = image * L + position).
// `packed` holds the chunk of the unfolded input as [rows, W], contiguous; W is a compile-time
// width so that the accumulators live in registers.
template <typename T, int W>
__attribute__((always_inline)) inline void kernel_chunk(const KernelArgs& k, const T* fw,
                                                        const T* ga, const T* packed,
                                                        const T* bias, T* y, int64_t p0,
                                                        int64_t o0, int64_t o1) {
  using Ln = Lanes<T, W>;
  using Vec = typename Ln::Vec;
  for (int64_t o = o0; o < o1; ++o) {
    const T* b = packed + (o / k.out_per_group) * k.rows_per_group * W;
    Vec acc[Ln::kN];
    const T b0 = bias ? bias[o] : T(0);
    for (int v = 0; v < Ln::kN; ++v) acc[v] = Vec{} + b0;
    for (int64_t j = k.row_begin[o]; j < k.row_begin[o + 1]; ++j) {
      const T w = fw[j];
      const T* c = b + int64_t(k.free_rows[j]) * W;
      for (int v = 0; v < Ln::kN; ++v) {
        Vec x;
        std::memcpy(&x, c + v * Ln::kPer, sizeof(Vec));
        acc[v] += w * x;
      }
    }
    for (int64_t g = k.group_begin[o]; g < k.group_begin[o + 1]; ++g) {
      // Sign-sum: additions and subtractions only, then one multiply per position.
      const int64_t r0 = k.group_rows[g], r1 = k.group_rows[g + 1], rm = r0 + k.group_pos[g];
      Vec sum[Ln::kN];
      for (int v = 0; v < Ln::kN; ++v) sum[v] = Vec{};
      for (int64_t r = r0; r < rm; ++r) {
        const T* c = b + int64_t(k.unified_rows[r]) * W;
        for (int v = 0; v < Ln::kN; ++v) {
          Vec x;
          std::memcpy(&x, c + v * Ln::kPer, sizeof(Vec));
          sum[v] += x;
        }
      }
      for (int64_t r = rm; r < r1; ++r) {
        const T* c = b + int64_t(k.unified_rows[r]) * W;
        for (int v = 0; v < Ln::kN; ++v) {
          Vec x;
          std::memcpy(&x, c + v * Ln::kPer, sizeof(Vec));
          sum[v] -= x;
        }
      }
      const T a = ga[g];
      for (int v = 0; v < Ln::kN; ++v) acc[v] += a * sum[v];
    }
    // Positions p0.. of the chunk run over the batch: position P is (image P / L, P % L).
    const T* a = reinterpret_cast<const T*>(acc);
    for (int64_t p = 0, P = p0; p < W;) {
      const int64_t img = P / k.L, q = P % k.L, run = std::min<int64_t>(W - p, k.L - q);
      std::memcpy(y + (img * k.n + o) * k.L + q, a + p, run * sizeof(T));
      p += run;
      P += run;
    }
  }
}

template <typename T>
__attribute__((always_inline)) inline void kernel_task(const KernelArgs& k, const T* fw,
                                                       const T* ga, const T* packed,
                                                       const T* bias, T* y, int64_t p0,
                                                       int64_t width, int64_t o0, int64_t o1) {
  switch (width) {
    case 64: kernel_chunk<T, 64>(k, fw, ga, packed, bias, y, p0, o0, o1); break;
    case 32: kernel_chunk<T, 32>(k, fw, ga, packed, bias, y, p0, o0, o1); break;
    case 16: kernel_chunk<T, 16>(k, fw, ga, packed, bias, y, p0, o0, o1); break;
    case 4: kernel_chunk<T, 4>(k, fw, ga, packed, bias, y, p0, o0, o1); break;
    default: kernel_chunk<T, 1>(k, fw, ga, packed, bias, y, p0, o0, o1); break;
  }
}

// Compiled for AVX-512, AVX2 and baseline x86-64, chosen at load time (the library is built
// for baseline x86-64, while torch::conv2d's oneDNN dispatches to the best ISA itself).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NNSLIM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NNSLIM_CLONES
#endif

NNSLIM_CLONES void kernel_task_f32(const KernelArgs& k, const float* fw, const float* ga,
                                   const float* packed, const float* bias, float* y, int64_t p0,
                                   int64_t width, int64_t o0, int64_t o1) {
  kernel_task<float>(k, fw, ga, packed, bias, y, p0, width, o0, o1);
}

NNSLIM_CLONES void kernel_task_f64(const KernelArgs& k, const double* fw, const double* ga,
                                   const double* packed, const double* bias, double* y, int64_t p0,
                                   int64_t width, int64_t o0, int64_t o1) {
  kernel_task<double>(k, fw, ga, packed, bias, y, p0, width, o0, o1);
}

void kernel_task_any(const KernelArgs& k, const float* fw, const float* ga, const float* packed,
                     const float* bias, float* y, int64_t p0, int64_t width, int64_t o0,
                     int64_t o1) {
  kernel_task_f32(k, fw, ga, packed, bias, y, p0, width, o0, o1);
}
void kernel_task_any(const KernelArgs& k, const double* fw, const double* ga, const double* packed,
                     const double* bias, double* y, int64_t p0, int64_t width, int64_t o0,
                     int64_t o1) {
  kernel_task_f64(k, fw, ga, packed, bias, y, p0, width, o0, o1);
}

// Tasks = (chunk of output positions, block of output channels). A task packs its chunk
// of the unfolded input (all rows x width, at most 640 KiB so it stays in L2; packing also
// avoids the L1 aliasing of rows that are a multiple of 4 KiB apart) and computes the block's
// output channels from it; the tail is split into narrower chunks.
template <typename T>
void run_kernel(const KernelArgs& k, const T* fw, const T* ga, const T* xp, const T* bias,
                T* y, int64_t images) {
  int64_t widest = 16;
  for (int64_t w : {64, 32})
    if (k.cols_rows * w * int64_t(sizeof(T)) <= (int64_t(640) << 10)) {
      widest = w;
      break;
    }
  // Output positions of the whole batch form one index P = image * L + position, so that
  // layers with few positions per image (deep layers) still fill wide chunks.
  const int64_t total = images * k.L;
  std::vector<std::pair<int64_t, int64_t>> chunks;  // (P0, width)
  for (int64_t p0 = 0; p0 < total;) {
    int64_t w = widest;
    while (w > total - p0) w = w == 64 ? 32 : w == 32 ? 16 : w == 16 ? 4 : 1;
    chunks.push_back({p0, w});
    p0 += w;
  }
  constexpr int64_t kOutBlock = 64;
  const int64_t oblocks = (k.n + kOutBlock - 1) / kOutBlock;
  at::parallel_for(0, int64_t(chunks.size()) * oblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> packed(k.cols_rows * widest);
    for (int64_t t = begin; t < end; ++t) {
      const auto& ch = chunks[t / oblocks];
      const int64_t o0 = t % oblocks * kOutBlock, o1 = std::min(k.n, o0 + kOutBlock);
      // Pack [rows, width] straight from the padded input (no full im2col buffer): the
      // positions of a chunk are runs along output rows, contiguous in the input when sw = 1.
      for (int64_t r = 0; r < k.cols_rows; ++r) {
        T* dst = packed.data() + r * ch.second;
        for (int64_t p = 0, P = ch.first; p < ch.second;) {
          const int64_t img = P / k.L, q = P % k.L, oy = q / k.Wo, ox = q % k.Wo;
          const int64_t run = std::min(ch.second - p, k.Wo - ox);
          const T* src =
              xp + img * k.image_stride + k.row_offset[r] + oy * k.sh * k.Wp + ox * k.sw;
          if (k.sw == 1)
            std::memcpy(dst + p, src, run * sizeof(T));
          else
            for (int64_t i = 0; i < run; ++i) dst[p + i] = src[i * k.sw];
          p += run;
          P += run;
        }
      }
      kernel_task_any(k, fw, ga, packed.data(), bias, y, ch.first, ch.second, o0, o1);
    }
  });
}

}  // namespace

torch::Tensor UnifiedConv2d::forward(const torch::Tensor& x, const torch::Tensor& bias) const {
  torch::NoGradGuard ng;
  const int64_t n = shape_[0], c = shape_[1], kh = shape_[2], kw = shape_[3];
  const int64_t groups = attrs_.groups;
  TORCH_CHECK(x.dim() == 4 && x.size(1) == c * groups, "unified_conv2d: input must be [N, ",
              c * groups, ", H, W], got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == dtype_ && x.device().is_cpu(),
              "unified_conv2d: input must be a CPU tensor of the layer's dtype");
  TORCH_CHECK(!bias.defined() || (bias.numel() == n && bias.scalar_type() == dtype_),
              "unified_conv2d: bias must have ", n, " entries of the layer's dtype");
  const auto& st = attrs_.stride;
  const auto& pd = attrs_.padding;
  const auto& dl = attrs_.dilation;
  const int64_t N = x.size(0), H = x.size(2), W = x.size(3);
  const int64_t Ho = (H + 2 * pd[0] - dl[0] * (kh - 1) - 1) / st[0] + 1;
  const int64_t Wo = (W + 2 * pd[1] - dl[1] * (kw - 1) - 1) / st[1] + 1;
  TORCH_CHECK(Ho >= 1 && Wo >= 1, "unified_conv2d: output would be empty");
  auto xp = torch::constant_pad_nd(x, {pd[1], pd[1], pd[0], pd[0]}, 0).contiguous();
  const int64_t Hp = xp.size(2), Wp = xp.size(3);
  std::vector<int64_t> row_offset(c * groups * kh * kw);
  for (int64_t r = 0; r < int64_t(row_offset.size()); ++r) {
    const int64_t ci = r / (kh * kw), ky = r / kw % kh, kx = r % kw;
    row_offset[r] = ci * Hp * Wp + ky * dl[0] * Wp + kx * dl[1];
  }
  auto y = torch::empty({N, n, Ho * Wo}, x.options());
  auto b = bias.defined() ? bias.contiguous() : bias;
  KernelArgs k{row_begin_.data(), group_begin_.data(), group_rows_.data(), group_pos_.data(),
               free_rows_.data(), unified_rows_.data(), n, n / groups, c * kh * kw,
               c * groups * kh * kw, Ho * Wo, row_offset.data(), xp.size(1) * Hp * Wp, Wp, Wo,
               st[0], st[1]};
  if (dtype_ == torch::kFloat)
    run_kernel<float>(k, free_w32_.data(), group_a32_.data(), xp.data_ptr<float>(),
                      b.defined() ? b.data_ptr<float>() : nullptr, y.data_ptr<float>(), N);
  else
    run_kernel<double>(k, free_w64_.data(), group_a64_.data(), xp.data_ptr<double>(),
                       b.defined() ? b.data_ptr<double>() : nullptr, y.data_ptr<double>(), N);
  return y.view({N, n, Ho, Wo});
}

torch::Tensor unified_conv2d(const torch::Tensor& x, const UnifiedLayer& layer, const Attrs& attrs,
                             const torch::Tensor& bias) {
  return UnifiedConv2d(layer, attrs).forward(x, bias);
}

}  // namespace nnslim
