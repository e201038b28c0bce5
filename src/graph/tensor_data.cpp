// Tensor data in graph payloads: dtype, shape and the dense or sparse encodings of format
// version 2 (contracts in graph/tensor_data.h and on Writer::tensor / Reader::tensor).
#include "nnslim/graph/tensor_data.h"

#include "nnslim/graph/archive.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace nnslim {

namespace {

// Scalar types a file may hold (the enum values are stable across LibTorch versions).
bool storable(torch::ScalarType t) {
  switch (t) {
    case torch::kByte:
    case torch::kChar:
    case torch::kShort:
    case torch::kInt:
    case torch::kLong:
    case torch::kHalf:
    case torch::kFloat:
    case torch::kDouble:
    case torch::kBool:
    case torch::kBFloat16:
      return true;
    default:
      return false;
  }
}

constexpr int64_t kBlock = 256;
constexpr int64_t kMaxTensorEntries =
    int64_t(1)
    << 40;  // a bound no real tensor reaches  // kBlocked: entries per block (offsets fit in a u8)

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
  put_le<uint64_t>(buf, nnz);
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
    if (Bits<U>::stored(u)) put_le<U>(buf, u);
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

namespace {

// Decodes the kBitmask / kBlocked payload next in `r` into the zero-filled `out` (numel entries
// of type U). Every count and index is checked: corrupt data is an error, never a bad write.
template <typename U>
void decode_sparse(Reader& r, const std::string& what, char* out, int64_t numel, TensorEncoding enc,
                   bool signs) {
  const uint64_t nnz = r.u64();
  TORCH_CHECK(nnz <= static_cast<uint64_t>(numel), what, ": sparse tensor claims ", nnz,
              " stored entries of ", numel, " (corrupt file?)");
  TORCH_CHECK(nnz <= r.remaining() / sizeof(U), what, ": sparse tensor claims ", nnz,
              " stored entries, the data left holds at most ", r.remaining() / sizeof(U),
              " (truncated or corrupt file?)");
  std::vector<int64_t> index;
  index.reserve(nnz);
  if (enc == TensorEncoding::kBitmask) {
    uint64_t mask_bytes = (numel + 7) / 8;
    const auto* m = reinterpret_cast<const unsigned char*>(r.raw(mask_bytes));
    for (int64_t i = 0; i < numel; ++i)
      if (m[i / 8] & (1u << (i % 8))) {
        TORCH_CHECK(index.size() < nnz, what, ": sparse bitmask has more entries than ", nnz,
                    " (corrupt file?)");
        index.push_back(i);
      }
    TORCH_CHECK(numel % 8 == 0 || (m[mask_bytes - 1] >> (numel % 8)) == 0, what,
                ": sparse bitmask has bits past the end (corrupt file?)");
  } else {
    const int64_t blocks = (numel + kBlock - 1) / kBlock;
    const char* counts = r.raw(2 * static_cast<uint64_t>(blocks));
    const auto* off = reinterpret_cast<const unsigned char*>(r.raw(nnz));
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
  }
  TORCH_CHECK(index.size() == nnz, what, ": sparse tensor has ", index.size(),
              " indexed entries, expected ", nnz, " (corrupt file?)");
  const char* values = r.raw(nnz * sizeof(U));
  for (uint64_t k = 0; k < nnz; ++k)
    std::memcpy(out + index[k] * sizeof(U), values + k * sizeof(U), sizeof(U));
  if (signs) {
    uint64_t zeros = numel - nnz, sign_bytes = (zeros + 7) / 8;
    const auto* sb = reinterpret_cast<const unsigned char*>(r.raw(sign_bytes));
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
  // Every size is checked before anything is allocated: each dimension in [0, 2^40), their
  // product (without overflow) below 2^40 entries, and the bytes the encoding needs at least
  // present in what is left of the data (a file cannot ask for more memory than it backs, up to
  // the sparse encodings' ratio).
  int64_t numel = 1;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t d = i64();
    TORCH_CHECK(d >= 0 && d < kMaxTensorEntries, what_, ": tensor dimension ", i, " is ", d,
                " (must be in [0, 2^40); corrupt file?)");
    sizes[i] = d;
    TORCH_CHECK(d == 0 || numel <= (kMaxTensorEntries - 1) / d, what_, ": tensor of shape ",
                c10::IntArrayRef(sizes.data(), i + 1),
                "... has 2^40 or more entries (corrupt file?)");
    numel *= d;
  }
  const uint64_t es = torch::elementSize(type);
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
  // The fewest bytes the encoding takes for `numel` entries (a sparse one: its count, then its
  // bitmask or its per-block counts).
  uint64_t least = static_cast<uint64_t>(numel) * es;
  if (enc == TensorEncoding::kBitmask) least = 8 + (static_cast<uint64_t>(numel) + 7) / 8;
  if (enc == TensorEncoding::kBlocked)
    least = 8 + 2 * ((static_cast<uint64_t>(numel) + kBlock - 1) / kBlock);
  TORCH_CHECK(least <= remaining(), what_, ": tensor of shape ", c10::IntArrayRef(sizes),
              " needs at least ", least, " bytes, only ", remaining(),
              " are left (truncated or corrupt file?)");
  if (enc == TensorEncoding::kDense) {
    auto t = torch::empty(sizes, torch::TensorOptions().dtype(type));
    const size_t nbytes = numel * t.element_size();
    std::memcpy(t.data_ptr(), raw(nbytes), nbytes);
    return t;
  }
  auto t = torch::zeros(sizes, torch::TensorOptions().dtype(type));
  char* out = static_cast<char*>(t.data_ptr());
  switch (t.element_size()) {
    case 2:
      decode_sparse<uint16_t>(*this, what_, out, numel, enc, signs);
      break;
    case 4:
      decode_sparse<uint32_t>(*this, what_, out, numel, enc, signs);
      break;
    default:
      decode_sparse<uint64_t>(*this, what_, out, numel, enc, signs);
      break;
  }
  return t;
}

}  // namespace nnslim
