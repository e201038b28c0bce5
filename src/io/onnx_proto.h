// Private helpers shared by ONNX export and import: tensor <-> TensorProto, attribute access.
#pragma once

#ifdef NNSLIM_HAVE_ONNX

#include <onnx/onnx_pb.h>
#include <torch/types.h>

#include <string>
#include <vector>

namespace nnslim::onnx_io {

// Float32 (int64 for kLong tensors) little-endian raw_data, the layout every runtime reads fastest.
void to_proto(const torch::Tensor& t, const std::string& name, onnx::TensorProto* out);
// FLOAT, DOUBLE, INT32 and INT64 tensors (raw_data or the typed fields); float tensors come back
// as float32, integer ones as int64. Throws naming the tensor for other types or bad sizes.
torch::Tensor from_proto(const onnx::TensorProto& t);

const onnx::AttributeProto* find_attr(const onnx::NodeProto& n, const std::string& name);
int64_t attr_int(const onnx::NodeProto& n, const std::string& name, int64_t fallback);
float attr_float(const onnx::NodeProto& n, const std::string& name, float fallback);
std::string attr_string(const onnx::NodeProto& n, const std::string& name,
                        const std::string& fallback);
std::vector<int64_t> attr_ints(const onnx::NodeProto& n, const std::string& name,
                               std::vector<int64_t> fallback);

}  // namespace nnslim::onnx_io

#endif
