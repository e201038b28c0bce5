#include "onnx_proto.h"

#ifdef NNSLIM_HAVE_ONNX

#include <torch/torch.h>

#include <cstring>

namespace nnslim::onnx_io {

void to_proto(const torch::Tensor& t, const std::string& name, onnx::TensorProto* out) {
  const bool integer = t.scalar_type() == torch::kLong;
  auto c = t.detach().to(torch::kCPU, integer ? torch::kLong : torch::kFloat).contiguous();
  out->set_name(name);
  out->set_data_type(integer ? onnx::TensorProto::INT64 : onnx::TensorProto::FLOAT);
  for (int64_t d : c.sizes()) out->add_dims(d);
  out->set_raw_data(std::string(static_cast<const char*>(c.data_ptr()),
                                static_cast<size_t>(c.numel()) * c.element_size()));
}

namespace {

template <typename T>
torch::Tensor from_raw(const std::string& raw, std::vector<int64_t> dims, int64_t numel,
                       torch::Dtype dtype, const std::string& name) {
  TORCH_CHECK(raw.size() == static_cast<size_t>(numel) * sizeof(T), "ONNX tensor '", name,
              "': raw_data holds ", raw.size(), " bytes, its shape needs ",
              static_cast<size_t>(numel) * sizeof(T));
  auto out = torch::empty(dims, dtype);
  std::memcpy(out.data_ptr(), raw.data(), raw.size());
  return out;
}

}  // namespace

torch::Tensor from_proto(const onnx::TensorProto& t) {
  std::vector<int64_t> dims(t.dims().begin(), t.dims().end());
  int64_t numel = 1;
  for (int64_t d : dims) {
    TORCH_CHECK(d >= 0, "ONNX tensor '", t.name(), "' has a negative dimension");
    numel *= d;
  }
  TORCH_CHECK(t.data_location() != onnx::TensorProto::EXTERNAL, "ONNX tensor '", t.name(),
              "' is stored in an external file, which nnslim does not read");
  auto check_count = [&](int64_t have) {
    TORCH_CHECK(have == numel, "ONNX tensor '", t.name(), "' holds ", have,
                " values, its shape needs ", numel);
  };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (t.has_raw_data())
        return from_raw<float>(t.raw_data(), dims, numel, torch::kFloat, t.name());
      check_count(t.float_data_size());
      return torch::tensor(std::vector<float>(t.float_data().begin(), t.float_data().end()))
          .reshape(dims);
    case onnx::TensorProto::DOUBLE:
      if (t.has_raw_data())
        return from_raw<double>(t.raw_data(), dims, numel, torch::kDouble, t.name())
            .to(torch::kFloat);
      check_count(t.double_data_size());
      return torch::tensor(std::vector<double>(t.double_data().begin(), t.double_data().end()))
          .reshape(dims)
          .to(torch::kFloat);
    case onnx::TensorProto::INT64:
      if (t.has_raw_data())
        return from_raw<int64_t>(t.raw_data(), dims, numel, torch::kLong, t.name());
      check_count(t.int64_data_size());
      return torch::tensor(std::vector<int64_t>(t.int64_data().begin(), t.int64_data().end()))
          .reshape(dims);
    case onnx::TensorProto::INT32:
      if (t.has_raw_data())
        return from_raw<int32_t>(t.raw_data(), dims, numel, torch::kInt, t.name()).to(torch::kLong);
      check_count(t.int32_data_size());
      return torch::tensor(std::vector<int64_t>(t.int32_data().begin(), t.int32_data().end()))
          .reshape(dims);
    default:
      TORCH_CHECK(false, "ONNX tensor '", t.name(), "' has data type ", t.data_type(),
                  "; nnslim reads float, double, int32 and int64 tensors");
  }
}

const onnx::AttributeProto* find_attr(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

int64_t attr_int(const onnx::NodeProto& n, const std::string& name, int64_t fallback) {
  const auto* a = find_attr(n, name);
  return a ? a->i() : fallback;
}

float attr_float(const onnx::NodeProto& n, const std::string& name, float fallback) {
  const auto* a = find_attr(n, name);
  return a ? a->f() : fallback;
}

std::string attr_string(const onnx::NodeProto& n, const std::string& name,
                        const std::string& fallback) {
  const auto* a = find_attr(n, name);
  return a ? a->s() : fallback;
}

std::vector<int64_t> attr_ints(const onnx::NodeProto& n, const std::string& name,
                               std::vector<int64_t> fallback) {
  const auto* a = find_attr(n, name);
  return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : fallback;
}

}  // namespace nnslim::onnx_io

#endif
