// The compact byte encoding of one unified layer (METHODS.md §4.6; contract in
// graph/unified_codec.h).
#include "nnslim/graph/unified_codec.h"

#include "nnslim/graph/archive.h"

#include <torch/torch.h>

#include <cstring>

namespace nnslim {

namespace {

constexpr char kLayerMagic[4] = {'U', 'N', 'F', '1'};

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

}  // namespace

std::string encode_unified(const UnifiedLayer& L) {
  TORCH_CHECK(encodable(L.dtype), "unify: cannot encode weights of type ", L.dtype);
  BlockPartition part(L.shape, L.block);
  auto state = L.state.to(torch::kUInt8).contiguous();
  TORCH_CHECK(state.numel() == part.blocks(), "unify: layer has ", state.numel(),
              " block states, its partition ", part.blocks(), " blocks");
  std::string s(kLayerMagic, 4);
  put_le<uint8_t>(s, static_cast<uint8_t>(L.dtype));
  put_le<uint8_t>(s, static_cast<uint8_t>(L.shape.size()));
  for (auto d : L.shape) put_le<int64_t>(s, d);
  auto blk = part.block();
  put_le<int64_t>(s, blk.out);
  put_le<int64_t>(s, blk.in);
  put_le<int64_t>(s, blk.k);
  put_le<uint64_t>(s, part.blocks());
  put_le<uint64_t>(s, L.magnitudes.numel());
  put_le<uint64_t>(s, L.signs.numel());
  put_le<uint64_t>(s, L.free_values.numel());
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

UnifiedLayer decode_unified(const std::string& bytes, const std::string& what,
                            const std::vector<int64_t>* expected_shape) {
  constexpr int64_t kMaxEntries = int64_t(1) << 32;
  Reader r(bytes, what);
  TORCH_CHECK(std::memcmp(r.raw(4), kLayerMagic, 4) == 0, what,
              ": not a unified layer (bad magic)");
  UnifiedLayer L;
  auto dtype = static_cast<torch::ScalarType>(r.u8());
  TORCH_CHECK(encodable(dtype), what, ": unified layer has unsupported dtype code ",
              int(static_cast<uint8_t>(dtype)), " (corrupt file?)");
  L.dtype = dtype;
  auto ndim = r.u8();
  TORCH_CHECK(ndim == 2 || ndim == 4, what, ": unified layer has ", int(ndim),
              " dimensions (corrupt file?)");
  int64_t numel = 1;
  for (int i = 0; i < ndim; ++i) {
    auto d = r.i64();
    TORCH_CHECK(d >= 1 && d < (int64_t(1) << 31), what, ": unified layer dimension ", i, " is ", d,
                " (must be in [1, 2^31); corrupt file?)");
    TORCH_CHECK(numel <= (kMaxEntries - 1) / d, what,
                ": unified layer has 2^32 or more entries (corrupt file?)");
    L.shape.push_back(d);
    numel *= d;
  }
  if (expected_shape)
    TORCH_CHECK(L.shape == *expected_shape, what, ": unified layer of shape ",
                c10::IntArrayRef(L.shape), " for a weight of shape ",
                c10::IntArrayRef(*expected_shape), " (corrupt file?)");
  int64_t bo = r.i64(), bi = r.i64(), bk = r.i64();
  const int64_t kernel = ndim == 4 ? L.shape[2] * L.shape[3] : 1;
  TORCH_CHECK(bo >= 1 && bi >= 1 && bk >= 1 && bo <= L.shape[0] && bi <= L.shape[1] && bk <= kernel,
              what, ": bad block shape (corrupt file?)");
  // The block count from the shapes alone, and the mask it needs present, before the partition
  // (which allocates per entry) is built.
  const int64_t nblocks =
      ((L.shape[0] + bo - 1) / bo) * ((L.shape[1] + bi - 1) / bi) * ((kernel + bk - 1) / bk);
  auto blocks = r.u64(), nu = r.u64(), nsign = r.u64(), nfree = r.u64();
  TORCH_CHECK(blocks == uint64_t(nblocks), what, ": unified layer claims ", blocks,
              " blocks, its shape has ", nblocks, " (corrupt file?)");
  const uint64_t es = torch::elementSize(dtype);
  TORCH_CHECK(nu <= uint64_t(nblocks) && nsign <= uint64_t(numel) && nfree <= uint64_t(numel) &&
                  (blocks + 3) / 4 + nu * es + (nsign + 7) / 8 + nfree * es == r.remaining(),
              what, ": unified layer sizes (", blocks, " blocks, ", nu, " magnitudes, ", nsign,
              " signs, ", nfree, " free values) do not match its ", r.remaining(),
              " bytes of data (truncated or corrupt file?)");
  L.block = {bo, bi, bk};
  BlockPartition part(L.shape, L.block);
  TORCH_CHECK(part.block() == L.block && part.blocks() == nblocks, what,
              ": bad block shape (corrupt file?)");
  const auto* mask = reinterpret_cast<const uint8_t*>(r.raw((blocks + 3) / 4));
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
  L.magnitudes = torch::empty({int64_t(nu)}, opts);
  std::memcpy(L.magnitudes.data_ptr(), r.raw(nu * es), nu * es);
  const auto* sb = reinterpret_cast<const uint8_t*>(r.raw((nsign + 7) / 8));
  L.signs = torch::empty({int64_t(nsign)}, torch::kBool);
  bool* sp = L.signs.data_ptr<bool>();
  for (uint64_t i = 0; i < nsign; ++i) sp[i] = (sb[i / 8] >> (i % 8)) & 1;
  L.free_values = torch::empty({int64_t(nfree)}, opts);
  std::memcpy(L.free_values.data_ptr(), r.raw(nfree * es), nfree * es);
  TORCH_CHECK(r.done(), what, ": trailing bytes after a unified layer (corrupt file?)");
  return L;
}

}  // namespace nnslim
