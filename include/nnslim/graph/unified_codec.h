// The compact byte encoding of one unified layer (graph/unified_layer.h; METHODS.md §4.6
// "export"). All integers little-endian:
//   "UNF1" | u8 dtype (c10::ScalarType) | u8 ndim | i64 shape[ndim] | i64 b_o, b_i, b_k
//   | u64 blocks | u64 unified blocks U | u64 sign bits | u64 free values F
//   | mask: 2 bits per block, LSB first (0 free, 1 pruned, 2 unified), ceil(blocks/4) bytes
//   | U magnitudes (dtype) | sign bits, one per entry of a unified block (1 = negative), LSB first
//   | F free values (dtype)
// Everything is in block order, so the decoder needs no indices. Round trips are bit-exact.
#pragma once

#include "nnslim/graph/unified_layer.h"

#include <string>
#include <vector>

namespace nnslim {

std::string encode_unified(const UnifiedLayer& layer);
// Checks every count and size before allocating anything: the block mask and the stored values
// the header announces must be in `bytes`, and the layer must have fewer than 2^32 entries.
// With `expected_shape`, a layer of another shape is refused before it is unpacked (a file
// cannot make its reader allocate more than the weight it already holds). `what` names the
// source in errors.
UnifiedLayer decode_unified(const std::string& bytes, const std::string& what,
                            const std::vector<int64_t>* expected_shape = nullptr);

}  // namespace nnslim
