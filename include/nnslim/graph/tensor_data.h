// How a tensor is stored in a graph payload (Writer::tensor / Reader::tensor, graph/archive.h):
//   u32 defined | u32 dtype (c10::ScalarType) | u32 ndim | i64 shape[ndim]
//   | (format version >= 2) u8 encoding | data
// Version 1 has no encoding byte: the data is always dense.
#pragma once

#include <cstdint>

namespace nnslim {

// Tensor encodings of format version 2 (the byte after the shape).
enum class TensorEncoding : uint8_t {
  kDense = 0,    // raw contiguous bytes
  kBitmask = 1,  // u64 nnz | ceil(numel/8) bytes, bit i (LSB first) = entry i is stored | values
  kBlocked = 2,  // u64 nnz | u16 count per block of 256 entries | u8 offset in block per stored
                 // entry (increasing) | values  -- CSR with small indices, for very sparse data
};
// Flag or'ed into the encoding byte of kBitmask / kBlocked: a sign bitmap follows the values,
// one bit per zero entry (in order, LSB first; 1 = -0.0). Absent when every zero is +0.0.
constexpr uint8_t kZeroSignsFlag = 0x80;

}  // namespace nnslim
