#include "nnslim/io/onnx.h"

#include "nnslim/graph/fold.h"
#include "nnslim/graph/serialize.h"
#include "nnslim/graph/shape.h"
#include "onnx_proto.h"

#include <torch/torch.h>

#include <cmath>

#ifdef NNSLIM_HAVE_ONNX
#include <onnx/checker.h>
#endif

namespace nnslim {

#ifdef NNSLIM_HAVE_ONNX

bool onnx_available() { return true; }

namespace {

using onnx_io::to_proto;

// Builds the ONNX graph node by node. Each nnslim value gets the name of the node that made it
// ("input" for the network input); parameters become initializers named "<node>.<param>".
class Exporter {
 public:
  Exporter(const Graph& g, int64_t opset, onnx::GraphProto* out)
      : g_(g), opset_(opset), out_(out), shapes_(infer_shapes(g)) {
    names_[kGraphInput] = "input";
  }

  void node(const Node& n) {
    switch (n.op) {
      case Op::kConv2d: {
        auto* p = emit("Conv", n, {in(n, 0), param(n, "weight")});
        if (n.params.count("bias")) p->add_input(param(n, "bias"));
        ints(p, "kernel_shape", {n.params.at("weight").size(2), n.params.at("weight").size(3)});
        ints(p, "strides", n.attrs.stride);
        ints(p, "pads", pads(n));
        ints(p, "dilations", n.attrs.dilation);
        integer(p, "group", n.attrs.groups);
        return;
      }
      case Op::kBatchNorm2d: {
        auto* p = emit("BatchNormalization", n,
                       {in(n, 0), param(n, "weight"), param(n, "bias"), buffer(n, "running_mean"),
                        buffer(n, "running_var")});
        real(p, "epsilon", n.attrs.eps);
        real(p, "momentum", 1.0 - n.attrs.momentum);  // ONNX weighs the running value
        return;
      }
      case Op::kReLU:
        emit("Relu", n, {in(n, 0)});
        return;
      case Op::kReLU6: {
        // Clip's bounds are inputs since opset 11, attributes before.
        if (opset_ >= 11) {
          emit("Clip", n,
               {in(n, 0), constant(n.name + ".min", 0.f), constant(n.name + ".max", 6.f)});
        } else {
          auto* p = emit("Clip", n, {in(n, 0)});
          real(p, "min", 0.0);
          real(p, "max", 6.0);
        }
        return;
      }
      case Op::kMaxPool2d: {
        auto* p = emit("MaxPool", n, {in(n, 0)});
        ints(p, "kernel_shape", n.attrs.kernel);
        ints(p, "strides", n.attrs.stride);
        ints(p, "pads", pads(n));
        ceil_mode(p, n);
        return;
      }
      case Op::kAvgPool2d: {
        // The IR counts the zero padding in the average (torch's default). Runtimes disagree on
        // AveragePool's count_include_pad (OpenCV 4.6 decides by producer name), so padding is
        // an explicit zero Pad before an unpadded AveragePool -- as PyTorch exports it.
        std::string x = in(n, 0);
        if (n.attrs.padding[0] || n.attrs.padding[1]) {
          check_padded_ceil(n);
          x = zero_pad(n.name + ".pad", x, n.attrs.padding);
        }
        // In ceil mode, a window that overhangs the padded input averages only what it covers
        // (torch's divisor), which is AveragePool's count_include_pad=0 after an explicit Pad.
        auto* p = emit("AveragePool", n, {x});
        ints(p, "kernel_shape", n.attrs.kernel);
        ints(p, "strides", n.attrs.stride);
        ceil_mode(p, n);
        return;
      }
      case Op::kGlobalAvgPool:
        emit("GlobalAveragePool", n, {in(n, 0)});
        return;
      case Op::kFlatten:
        integer(emit("Flatten", n, {in(n, 0)}), "axis", 1);
        return;
      case Op::kLinear: {
        auto* p = emit("Gemm", n, {in(n, 0), param(n, "weight")});
        if (n.params.count("bias")) p->add_input(param(n, "bias"));
        integer(p, "transB", 1);
        return;
      }
      case Op::kAdd: {
        // ONNX Add is binary: a chain of them for three or more inputs.
        std::string acc = in(n, 0);
        for (size_t i = 1; i < n.inputs.size(); ++i) {
          const bool last = i + 1 == n.inputs.size();
          std::string out = last ? n.name : n.name + ".partial" + std::to_string(i);
          raw_node("Add", out, {acc, in(n, i)}, out);
          acc = out;
        }
        names_[n.id] = n.name;
        return;
      }
      case Op::kConcat:
        integer(emit("Concat", n,
                     [&] {
                       std::vector<std::string> ins;
                       for (size_t i = 0; i < n.inputs.size(); ++i) ins.push_back(in(n, i));
                       return ins;
                     }()),
                "axis", 1);
        return;
      case Op::kSigmoid:
        emit("Sigmoid", n, {in(n, 0)});
        return;
      case Op::kHardSigmoid: {
        auto* p = emit("HardSigmoid", n, {in(n, 0)});
        real(p, "alpha", n.attrs.alpha);
        real(p, "beta", n.attrs.beta);
        return;
      }
      case Op::kHardSwish:
        if (opset_ >= 14) {
          emit("HardSwish", n, {in(n, 0)});
        } else {  // as PyTorch exports it before opset 14
          auto* hs =
              raw_node("HardSigmoid", n.name + ".hardsigmoid", {in(n, 0)}, n.name + ".hardsigmoid");
          real(hs, "alpha", 1.0 / 6);
          real(hs, "beta", 0.5);
          emit("Mul", n, {in(n, 0), n.name + ".hardsigmoid"});
        }
        return;
      case Op::kSiLU:  // ONNX has no SiLU: x * Sigmoid(x), as PyTorch exports it
        raw_node("Sigmoid", n.name + ".sigmoid", {in(n, 0)}, n.name + ".sigmoid");
        emit("Mul", n, {in(n, 0), n.name + ".sigmoid"});
        return;
      case Op::kMul:  // ONNX broadcasts [N,C,1,1] against [N,C,H,W] as the IR does
        emit("Mul", n, {in(n, 0), in(n, 1)});
        return;
      case Op::kChannelShuffle:
        channel_shuffle(n);
        return;
      case Op::kSliceChannels: {
        if (opset_ >= 10) {
          emit("Slice", n,
               {in(n, 0), ints_init(n.name + ".starts", {n.attrs.start}),
                ints_init(n.name + ".ends", {n.attrs.end}), ints_init(n.name + ".axes", {1})});
        } else {
          auto* p = emit("Slice", n, {in(n, 0)});
          ints(p, "starts", {n.attrs.start});
          ints(p, "ends", {n.attrs.end});
          ints(p, "axes", {1});
        }
        return;
      }
      case Op::kLayerNorm2d:
        layernorm2d(n);
        return;
      case Op::kGELU: {  // x * 0.5 * (1 + erf(x / sqrt(2))), as PyTorch writes it
        const std::string x = in(n, 0), b = n.name + ".";
        raw_node("Div", b + "div", {x, constant(b + "sqrt2", static_cast<float>(std::sqrt(2.0)))},
                 b + "div");
        raw_node("Erf", b + "erf", {b + "div"}, b + "erf");
        raw_node("Add", b + "add", {b + "erf", constant(b + "one", 1.f)}, b + "add");
        raw_node("Mul", b + "mul", {x, b + "add"}, b + "mul");
        emit("Mul", n, {b + "mul", constant(b + "half", 0.5f)});
        return;
      }
      case Op::kDropout:  // inference: the identity
      case Op::kIdentity:
        if (n.id == g_.output) {
          emit("Identity", n, {in(n, 0)});
        } else {
          names_[n.id] = in(n, 0);  // no node: readers use the input directly
        }
        return;
    }
  }

  const std::string& name_of(int value) const { return names_.at(value); }

 private:
  // torchvision's shuffle as PyTorch exports it (Reshape [N, g, C/g, H, W], Transpose(0, 2, 1,
  // 3, 4), Reshape [N, C, H, W]); any other permutation (a pruned shuffle) as a Gather.
  void channel_shuffle(const Node& n) {
    const Shape& s = shapes_.at(n.inputs[0]);
    const auto& perm = n.attrs.perm;
    const int64_t c = s[0];
    int64_t groups = 0;
    for (int64_t g = 1; g <= c && !groups; ++g) {
      if (c % g) continue;
      bool ok = true;
      for (int64_t j = 0; j < c && ok; ++j) ok = perm[j] == (j % g) * (c / g) + j / g;
      if (ok) groups = g;
    }
    const std::string b = n.name + ".";
    if (groups > 1) {
      raw_node("Reshape", b + "split",
               {in(n, 0), ints_init(b + "shape5", {0, groups, c / groups, s[1], s[2]})},
               b + "split");
      ints(raw_node("Transpose", b + "transpose", {b + "split"}, b + "transpose"), "perm",
           {0, 2, 1, 3, 4});
      emit("Reshape", n, {b + "transpose", ints_init(b + "shape4", {0, c, s[1], s[2]})});
    } else {
      integer(emit("Gather", n, {in(n, 0), ints_init(b + "perm", perm)}), "axis", 1);
    }
  }
  // LayerNorm over the channels of each pixel, as PyTorch exports torchvision's LayerNorm2d:
  // Transpose to NHWC, LayerNormalization over the last axis (opset 17) or its pieces, back.
  void layernorm2d(const Node& n) {
    // The normalising node carries the node's name (import names the layernorm2d after it),
    // the Transpose back writes the node's value.
    const std::string b = n.name + ".";
    ints(raw_node("Transpose", b + "nhwc", {in(n, 0)}, b + "nhwc"), "perm", {0, 2, 3, 1});
    const std::string w = param(n, "weight"), bias = param(n, "bias");
    if (opset_ >= 17) {
      auto* p = raw_node("LayerNormalization", n.name, {b + "nhwc", w, bias}, b + "ln");
      integer(p, "axis", -1);
      real(p, "epsilon", n.attrs.eps);
    } else {
      ints(raw_node("ReduceMean", b + "mean", {b + "nhwc"}, b + "mean"), "axes", {-1});
      raw_node("Sub", b + "sub", {b + "nhwc", b + "mean"}, b + "sub");
      raw_node("Pow", b + "pow", {b + "sub", constant(b + "two", 2.f)}, b + "pow");
      ints(raw_node("ReduceMean", b + "var", {b + "pow"}, b + "var"), "axes", {-1});
      raw_node("Add", b + "add_eps",
               {b + "var", constant(b + "eps", static_cast<float>(n.attrs.eps))}, b + "add_eps");
      raw_node("Sqrt", b + "sqrt", {b + "add_eps"}, b + "sqrt");
      raw_node("Div", b + "div", {b + "sub", b + "sqrt"}, b + "div");
      raw_node("Mul", b + "mul", {b + "div", w}, b + "mul");
      raw_node("Add", n.name, {b + "mul", bias}, b + "ln");
    }
    ints(raw_node("Transpose", b + "nchw", {b + "ln"}, n.name), "perm", {0, 3, 1, 2});
    names_[n.id] = n.name;
  }
  std::string ints_init(const std::string& name, const std::vector<int64_t>& v) {
    return initializer(name, torch::tensor(v, torch::kLong));
  }

  onnx::NodeProto* raw_node(const std::string& type, const std::string& name,
                            const std::vector<std::string>& inputs, const std::string& output) {
    auto* p = out_->add_node();
    p->set_op_type(type);
    p->set_name(name);
    for (const auto& i : inputs) p->add_input(i);
    p->add_output(output);
    return p;
  }
  onnx::NodeProto* emit(const std::string& type, const Node& n,
                        const std::vector<std::string>& inputs) {
    names_[n.id] = n.name;
    return raw_node(type, n.name, inputs, n.name);
  }
  // Zero padding of H and W: [N, C, H, W] pads are [0, 0, h, w, 0, 0, h, w].
  std::string zero_pad(const std::string& name, const std::string& x,
                       const std::vector<int64_t>& hw) {
    std::vector<int64_t> p{0, 0, hw[0], hw[1], 0, 0, hw[0], hw[1]};
    if (opset_ >= 11) {  // pads became an input in opset 11
      std::string pads_name = name + ".pads";
      onnx_io::to_proto(torch::tensor(p, torch::kLong), pads_name, out_->add_initializer());
      raw_node("Pad", name, {x, pads_name}, name);
    } else {
      ints(raw_node("Pad", name, {x}, name), "pads", p);
    }
    return name;
  }
  std::string in(const Node& n, size_t i) const { return names_.at(n.inputs[i]); }
  // On an explicitly padded input, ceil mode's last window may start inside the right padding,
  // which torch's rule (on the unpadded input) forbids: the sizes then differ.
  void check_padded_ceil(const Node& n) const {
    if (!n.attrs.ceil_mode) return;
    const Shape& s = shapes_.at(n.inputs[0]);
    const auto& a = n.attrs;
    for (int d = 0; d < 2; ++d)
      TORCH_CHECK(pool_out(s[1 + d], a.kernel[d], a.stride[d], a.padding[d], true) ==
                      pool_out(s[1 + d] + 2 * a.padding[d], a.kernel[d], a.stride[d], 0, true),
                  "node '", n.name,
                  "' (avgpool2d): its padded ceil-mode windows have no ONNX form (the last "
                  "window would start in the right padding)");
  }
  // Pooling's ceil_mode is an attribute since opset 10.
  void ceil_mode(onnx::NodeProto* p, const Node& n) const {
    if (!n.attrs.ceil_mode) return;
    TORCH_CHECK(opset_ >= 10, "node '", n.name, "' (", op_name(n.op),
                ") pools in ceil mode, which ONNX expresses from opset 10 on; export with "
                "--opset 10 or newer");
    integer(p, "ceil_mode", 1);
  }
  std::string param(const Node& n, const std::string& key) {
    return initializer(n.name + "." + key, n.params.at(key));
  }
  std::string buffer(const Node& n, const std::string& key) {
    return initializer(n.name + "." + key, n.buffers.at(key));
  }
  std::string constant(const std::string& name, float v) {
    return initializer(name, torch::tensor(v));
  }
  std::string initializer(const std::string& name, const torch::Tensor& t) {
    to_proto(t, name, out_->add_initializer());
    return name;
  }
  // ONNX pads are [h_begin, w_begin, h_end, w_end]; the IR's padding is symmetric.
  static std::vector<int64_t> pads(const Node& n) {
    const auto& p = n.attrs.padding;
    return {p[0], p[1], p[0], p[1]};
  }
  static void ints(onnx::NodeProto* p, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = p->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto* p, const std::string& name, int64_t v) {
    auto* a = p->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void real(onnx::NodeProto* p, const std::string& name, double v) {
    auto* a = p->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(static_cast<float>(v));
  }

  const Graph& g_;
  int64_t opset_;
  onnx::GraphProto* out_;
  std::map<int, Shape> shapes_;
  std::map<int, std::string> names_;
};

// A float tensor type with a symbolic batch dimension followed by `shape`.
void set_type(onnx::ValueInfoProto* v, const std::string& name, const Shape& shape) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  auto* s = t->mutable_shape();
  s->add_dim()->set_dim_param("batch");
  for (int64_t d : shape) s->add_dim()->set_dim_value(d);
}

onnx::ModelProto to_model(const Graph& input, const OnnxExportOptions& opt) {
  TORCH_CHECK(opt.opset >= 9 && opt.opset <= 17, "ONNX export supports opsets 9 to 17, got ",
              opt.opset);
  const Graph g = opt.fold_batchnorm ? fold_batchnorm(input) : input.clone();
  const auto shapes = infer_shapes(g);

  onnx::ModelProto m;
  // The IR version that introduced each opset (onnx/docs/Versioning.md).
  m.set_ir_version(opt.opset <= 9    ? 4
                   : opt.opset == 10 ? 5
                   : opt.opset == 11 ? 6
                   : opt.opset <= 13 ? 7
                                     : 8);
  m.set_producer_name("nnslim");
  m.set_producer_version("0.1");
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(opt.opset);
  for (const auto& kv : g.meta) {  // so that import restores classes, normalisation, ...
    auto* p = m.add_metadata_props();
    p->set_key(kv.first);
    p->set_value(kv.second);
  }
  auto* gp = m.mutable_graph();
  gp->set_name(g.meta.count("model") ? g.meta.at("model") : "nnslim");
  set_type(gp->add_input(), "input", g.input_shape);
  Exporter ex(g, opt.opset, gp);
  for (const auto& n : g.nodes) ex.node(n);
  set_type(gp->add_output(), ex.name_of(g.output), shapes.at(g.output));
  return m;
}

}  // namespace

std::string export_onnx_bytes(const Graph& graph, const OnnxExportOptions& options) {
  auto model = to_model(graph, options);
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    TORCH_CHECK(false,
                "ONNX export produced a model that ONNX's checker rejects (a bug in nnslim; "
                "please report it): ",
                e.what());
  }
  std::string bytes;
  TORCH_CHECK(model.SerializeToString(&bytes), "ONNX export: serialising the model failed");
  return bytes;
}

#else  // !NNSLIM_HAVE_ONNX

bool onnx_available() { return false; }

std::string export_onnx_bytes(const Graph&, const OnnxExportOptions&) {
  TORCH_CHECK(false, "this nnslim was built without ONNX support: install libonnx-dev and rebuild");
}

#endif

void export_onnx(const Graph& graph, const std::string& path, const OnnxExportOptions& options) {
  write_file_atomic(path, export_onnx_bytes(graph, options));
}

}  // namespace nnslim
