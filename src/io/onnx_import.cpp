#include "nnslim/io/onnx.h"

#include "nnslim/graph/shape.h"
#include "onnx_proto.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

namespace nnslim {

#ifdef NNSLIM_HAVE_ONNX

namespace {

using namespace onnx_io;

// Thrown inside the per-node translation; collected so that the final error lists every node.
struct Unsupported {
  std::string reason;
};

class Importer {
 public:
  Importer(const onnx::ModelProto& m, std::string what, const OnnxImportOptions& opt)
      : m_(m), what_(std::move(what)), opt_(opt) {}

  Graph run() {
    opset_ = default_opset();
    for (const auto& t : m_.graph().initializer()) consts_[t.name()] = from_proto(t);
    check_arity();
    declare_input();
    fuse_patterns();
    for (size_t i = 0; i < nodes_.size(); ++i) translate(nodes_[i], static_cast<int>(i));
    if (!unsupported_.empty()) {
      std::ostringstream os;
      os << what_ << ": " << unsupported_.size() << " ONNX node(s) cannot be expressed in nnslim:";
      for (const auto& u : unsupported_) os << "\n  " << u;
      TORCH_CHECK(false, os.str());
    }
    declare_output();
    fuse_gated_activations();
    fold_layer_scales();
    restore_meta();
    try {
      validate(g_);
    } catch (const c10::Error& e) {
      TORCH_CHECK(false, what_,
                  ": the imported graph is inconsistent: ", e.what_without_backtrace());
    }
    check_values();
    return std::move(g_);
  }

 private:
  // The default domain's opset. One newer than any ONNX release nnslim knows may change the
  // meaning of the operators it translates, so it is refused rather than guessed.
  int64_t default_opset() const {
    constexpr int64_t kNewestKnown = 23;
    for (const auto& o : m_.opset_import())
      if (o.domain().empty() || o.domain() == "ai.onnx") {
        TORCH_CHECK(o.version() >= 1 && o.version() <= kNewestKnown, what_, ": opset ", o.version(),
                    " is not an ONNX opset nnslim knows (1-", kNewestKnown,
                    "); export the model with an opset in that range");
        return o.version();
      }
    return 1;
  }

  // Every node has an output and the inputs its op requires (what the pattern fusion and the
  // translation read by position), checked once before anything reads them.
  void check_arity() const {
    static const std::map<std::string, int> kMinInputs = {
        {"Constant", 0},    {"Identity", 1},
        {"Cast", 1},        {"Unsqueeze", 1},
        {"Squeeze", 1},     {"Concat", 1},
        {"Gather", 2},      {"Reshape", 2},
        {"Shape", 1},       {"Slice", 1},
        {"Add", 2},         {"Sub", 2},
        {"Mul", 2},         {"Div", 2},
        {"Pow", 2},         {"Transpose", 1},
        {"Sqrt", 1},        {"Erf", 1},
        {"ReduceMean", 1},  {"Pad", 1},
        {"Conv", 2},        {"BatchNormalization", 5},
        {"Relu", 1},        {"Clip", 1},
        {"Sum", 1},         {"MaxPool", 1},
        {"AveragePool", 1}, {"GlobalAveragePool", 1},
        {"Flatten", 1},     {"Gemm", 2},
        {"Dropout", 1},     {"Sigmoid", 1},
        {"HardSigmoid", 1}, {"HardSwish", 1},
        {"MatMul", 2},      {"LayerNormalization", 2},
        {"Gelu", 1},        {"Split", 1}};
    const auto& nodes = m_.graph().node();
    for (int i = 0; i < nodes.size(); ++i) {
      const auto& p = nodes[i];
      const std::string name = p.name().empty() ? "#" + std::to_string(i) : p.name();
      TORCH_CHECK(p.output_size() >= 1 && !p.output(0).empty(), what_, ": node '", name, "' (",
                  p.op_type(), ") has no output (malformed model)");
      auto it = kMinInputs.find(p.op_type());
      int need = it == kMinInputs.end() ? 0 : it->second;
      if ((p.op_type() == "Pad" && opset_ >= 11) || (p.op_type() == "Slice" && opset_ >= 10))
        need = p.op_type() == "Pad" ? 2 : 3;
      TORCH_CHECK(p.input_size() >= need, what_, ": node '", name, "' (", p.op_type(), ") has ",
                  p.input_size(), " input(s); ", p.op_type(), " needs at least ", need,
                  " (malformed model)");
    }
  }

  void declare_input() {
    const onnx::ValueInfoProto* in = nullptr;
    for (const auto& v : m_.graph().input())
      if (!consts_.count(v.name())) {
        TORCH_CHECK(!in, what_, ": the model has several inputs ('", in->name(), "', '", v.name(),
                    "'); nnslim graphs have one");
        in = &v;
      }
    TORCH_CHECK(in, what_, ": the model has no input");
    ids_[in->name()] = kGraphInput;
    const auto& in_shape = in->type().tensor_type().shape();
    if (in_shape.dim_size() > 0 && in_shape.dim(0).has_dim_value())
      input_batch_ = in_shape.dim(0).dim_value();
    if (!opt_.input_shape.empty()) {
      TORCH_CHECK(opt_.input_shape.size() == 3, "--input must be CxHxW");
      g_.input_shape = opt_.input_shape;
      return;
    }
    const auto& shape = in->type().tensor_type().shape();
    TORCH_CHECK(shape.dim_size() == 4, what_, ": input '", in->name(), "' has ", shape.dim_size(),
                " dimensions, expected [N, C, H, W]; pass --input CxHxW if it is an image");
    for (int i = 1; i < 4; ++i) {
      TORCH_CHECK(shape.dim(i).has_dim_value() && shape.dim(i).dim_value() > 0, what_, ": input '",
                  in->name(), "' has no static size in dimension ", i, "; pass --input CxHxW");
      g_.input_shape.push_back(shape.dim(i).dim_value());
    }
  }

  void declare_output() {
    TORCH_CHECK(m_.graph().output_size() == 1, what_, ": the model has ", m_.graph().output_size(),
                " outputs; nnslim graphs have one");
    g_.output = value(m_.graph().output(0).name(), "the graph output");
  }

  // Numbers the graph cannot compute with: NaN/Inf weights (e.g. from a NaN Gemm alpha), a
  // negative BatchNorm variance or epsilon, a layer with no output channels.
  void check_values() const {
    for (const auto& n : g_.nodes) {
      for (const auto* tensors : {&n.params, &n.buffers})
        for (const auto& [key, t] : *tensors)
          TORCH_CHECK(!t.defined() || torch::isfinite(t).all().item<bool>(), what_, ": node '",
                      n.name, "': ", key, " holds NaN or Inf values");
      if (n.op == Op::kBatchNorm2d) {
        TORCH_CHECK((n.buffers.at("running_var") >= 0).all().item<bool>() && n.attrs.eps >= 0,
                    what_, ": node '", n.name,
                    "': BatchNormalization needs var >= 0 and epsilon >= 0");
      }
      if (n.op == Op::kConv2d || n.op == Op::kLinear) {
        const auto& w = n.params.at("weight");
        TORCH_CHECK(w.numel() > 0, what_, ": node '", n.name, "' has an empty weight ", w.sizes());
      }
    }
  }

  void restore_meta() {
    for (const auto& p : m_.metadata_props()) g_.meta[p.key()] = p.value();
    if (!g_.meta.count("model"))
      g_.meta["model"] = m_.graph().name().empty() ? "onnx" : m_.graph().name();
    if (!g_.meta.count("classes")) {
      auto shapes = infer_shapes(g_);
      const auto& out = shapes.at(g_.output);
      if (out.size() == 1) g_.meta["classes"] = std::to_string(out[0]);
    }
  }

  // ---- patterns ------------------------------------------------------------------------------
  // PyTorch writes LayerNorm before opset 17 and GELU (every opset nnslim reads) as pieces.
  // Before translation, each complete piece pattern becomes the one ONNX node it computes
  // (LayerNormalization, Gelu), provided no piece is read outside the pattern. The constants
  // they need are initializers or Constant nodes (with or without constant folding).
  void fuse_patterns() {
    const auto& g = m_.graph();
    nodes_.assign(g.node().begin(), g.node().end());
    std::map<std::string, torch::Tensor> scalars;
    for (const auto& [name, t] : consts_) scalars[name] = t;
    for (const auto& n : nodes_)
      if (n.op_type() == "Constant" && n.output_size() == 1)
        if (const auto* a = find_attr(n, "value"); a && a->has_t())
          scalars[n.output(0)] = from_proto(a->t());
    // PyTorch hands initializers with equal values (a fresh model's LayerNorm weights) to their
    // readers through Identity nodes: those outputs are the same constants.
    for (const auto& n : nodes_)
      if (n.op_type() == "Identity" && n.input_size() == 1 && scalars.count(n.input(0)))
        scalars[n.output(0)] = scalars.at(n.input(0));
    std::map<std::string, std::vector<size_t>> readers;
    std::map<std::string, size_t> writer;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      for (const auto& in : nodes_[i].input()) readers[in].push_back(i);
      for (const auto& out : nodes_[i].output()) writer[out] = i;
    }
    for (const auto& o : g.output()) readers[o.name()].push_back(nodes_.size());  // never fused
    std::vector<char> removed(nodes_.size(), 0);
    // The only reader of `value`, when it is one node of type `type`.
    auto sole = [&](const std::string& value, const char* type) -> std::optional<size_t> {
      auto it = readers.find(value);
      if (it == readers.end() || it->second.size() != 1) return std::nullopt;
      const size_t r = it->second[0];
      if (r >= nodes_.size() || nodes_[r].op_type() != type || removed[r]) return std::nullopt;
      return r;
    };
    auto scalar = [&](const std::string& name) -> std::optional<double> {
      auto it = scalars.find(name);
      if (it == scalars.end() || it->second.numel() != 1 || !it->second.is_floating_point())
        return std::nullopt;
      return it->second.item<double>();
    };
    auto near = [](std::optional<double> v, double want) {
      return v && std::abs(*v - want) <= 1e-6 * std::max(1.0, std::abs(want));
    };
    // The other input of a two-input node, given one of them.
    auto other = [](const onnx::NodeProto& n, const std::string& one) -> std::string {
      if (n.input_size() != 2) return "";
      return n.input(0) == one ? n.input(1) : n.input(1) == one ? n.input(0) : "";
    };
    auto last_axis = [&](const onnx::NodeProto& r) {
      std::vector<int64_t> axes = attr_ints(r, "axes", {});
      if (r.input_size() > 1 && scalars.count(r.input(1))) {
        auto a = scalars.at(r.input(1)).to(torch::kLong).reshape({-1});
        axes.assign(a.data_ptr<int64_t>(), a.data_ptr<int64_t>() + a.numel());
      }
      return axes.size() == 1 && (axes[0] == -1 || axes[0] == 3) && attr_int(r, "keepdims", 1);
    };
    // The fused node's name: PyTorch's scope of the pattern ("/a/b/Add_1" -> "/a/b/" + op, as
    // PyTorch names LayerNormalization at opset 17), else the last node's own name (nnslim's
    // export names it after the graph node).
    auto fused_name = [](const std::string& last, const char* op) {
      auto slash = last.rfind('/');
      return slash == std::string::npos ? last : last.substr(0, slash + 1) + op;
    };
    std::vector<std::pair<size_t, onnx::NodeProto>> replacements;  // at the pattern's last node
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const auto& r1 = nodes_[i];
      if (removed[i]) continue;
      if (r1.op_type() == "ReduceMean" && last_axis(r1)) {
        // mean(x) -> x - mean -> (.)^2 -> mean -> + eps -> sqrt -> (x - mean) / sqrt -> * w -> + b
        const std::string& x = r1.input(0);
        auto s = sole(r1.output(0), "Sub");
        if (!s || nodes_[*s].input(0) != x || nodes_[*s].input(1) != r1.output(0)) continue;
        const std::string& d = nodes_[*s].output(0);
        auto rd = readers[d];
        if (rd.size() != 2) continue;
        std::optional<size_t> pw, dv;
        for (size_t r : rd) {
          if (r >= nodes_.size()) continue;
          if (nodes_[r].op_type() == "Pow" && nodes_[r].input(0) == d) pw = r;
          if (nodes_[r].op_type() == "Div" && nodes_[r].input(0) == d) dv = r;
        }
        if (!pw || !dv || !near(scalar(nodes_[*pw].input(1)), 2.0)) continue;
        auto r2 = sole(nodes_[*pw].output(0), "ReduceMean");
        if (!r2 || !last_axis(nodes_[*r2])) continue;
        auto ae = sole(nodes_[*r2].output(0), "Add");
        if (!ae) continue;
        auto eps = scalar(other(nodes_[*ae], nodes_[*r2].output(0)));
        auto sq = sole(nodes_[*ae].output(0), "Sqrt");
        if (!eps || !sq || nodes_[*dv].input(1) != nodes_[*sq].output(0)) continue;
        auto mw = sole(nodes_[*dv].output(0), "Mul");
        if (!mw) continue;
        const std::string w = other(nodes_[*mw], nodes_[*dv].output(0));
        auto ab = sole(nodes_[*mw].output(0), "Add");
        if (!ab) continue;
        const std::string b = other(nodes_[*ab], nodes_[*mw].output(0));
        if (!scalars.count(w) || !scalars.count(b)) continue;
        onnx::NodeProto ln;
        ln.set_op_type("LayerNormalization");
        ln.set_name(fused_name(nodes_[*ab].name(), "LayerNormalization"));
        for (const auto& in : {x, w, b}) ln.add_input(in);
        ln.add_output(nodes_[*ab].output(0));
        auto* a = ln.add_attribute();
        a->set_name("epsilon");
        a->set_type(onnx::AttributeProto::FLOAT);
        a->set_f(static_cast<float>(*eps));
        for (size_t k : {i, *s, *pw, *r2, *ae, *sq, *dv, *mw, *ab}) removed[k] = 1;
        replacements.emplace_back(*ab, std::move(ln));
        ++fused_["ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add -> layernorm2d"];
      } else if (r1.op_type() == "Erf" && writer.count(r1.input(0))) {
        // x / sqrt(2) -> erf -> + 1 -> x * (.) -> * 0.5
        const size_t di = writer.at(r1.input(0));
        const auto& dn = nodes_[di];
        const bool div = dn.op_type() == "Div" && dn.input_size() == 2 &&
                         near(scalar(dn.input(1)), std::sqrt(2.0));
        const bool mul = dn.op_type() == "Mul" && dn.input_size() == 2 &&
                         near(scalar(dn.input(1)), std::sqrt(0.5));
        if ((!div && !mul) || removed[di] || readers[dn.output(0)].size() != 1) continue;
        const std::string& x = dn.input(0);
        auto a1 = sole(r1.output(0), "Add");
        if (!a1 || !near(scalar(other(nodes_[*a1], r1.output(0))), 1.0)) continue;
        auto m1 = sole(nodes_[*a1].output(0), "Mul");
        if (!m1 || other(nodes_[*m1], nodes_[*a1].output(0)) != x) continue;
        auto m2 = sole(nodes_[*m1].output(0), "Mul");
        if (!m2 || !near(scalar(other(nodes_[*m2], nodes_[*m1].output(0))), 0.5)) continue;
        onnx::NodeProto ge;
        ge.set_op_type("Gelu");
        ge.set_name(fused_name(nodes_[*m2].name(), "Gelu"));
        ge.add_input(x);
        ge.add_output(nodes_[*m2].output(0));
        for (size_t k : {di, i, *a1, *m1, *m2}) removed[k] = 1;
        replacements.emplace_back(*m2, std::move(ge));
        ++fused_["Div/Erf/Add/Mul/Mul -> gelu"];
      }
    }
    for (auto& [at, node] : replacements) {
      nodes_[at] = std::move(node);
      removed[at] = 0;
    }
    std::vector<onnx::NodeProto> kept;
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (!removed[i]) kept.push_back(std::move(nodes_[i]));
    nodes_ = std::move(kept);
  }

  // ---- per node ------------------------------------------------------------
  void translate(const onnx::NodeProto& p, int index) {
    std::string name = unique_name(p, index);
    // ONNX graphs are single-assignment: a value written twice makes every later reader ambiguous.
    for (const auto& o : p.output())
      TORCH_CHECK(o.empty() || (!ids_.count(o) && !consts_.count(o) && !padded_.count(o) &&
                                !nhwc_.count(o) && !shuffle_.count(o)),
                  what_, ": node '", name, "' writes value '", o,
                  "', which an earlier node, initializer or the input already defines");
    try {
      if (p.op_type() == "Constant") return constant(p);
      if (fold_constant(p)) return;
      if (p.op_type() == "Pad") return pad(p);
      if (p.op_type() == "ReduceMean") return reduce_mean(p, name);
      if (translate_view(p, name)) return;
      Node n = to_node(p, name);
      ++mapped_[p.op_type()];
      n.name = name;
      int id = g_.add(std::move(n));
      ids_[p.output(0)] = id;
    } catch (const Unsupported& u) {
      unsupported_.push_back("node '" + name + "' (" + p.op_type() + "): " + u.reason);
      // Let later nodes read something, so that every unsupported node is reported at once.
      for (const auto& o : p.output())
        ids_[o] = p.input_size() && ids_.count(p.input(0)) ? ids_[p.input(0)] : kGraphInput;
    }
  }

  std::string unique_name(const onnx::NodeProto& p, int index) {
    std::string base = p.name().empty() ? p.op_type() + "_" + std::to_string(index) : p.name();
    std::string name = base;
    for (int k = 1; !names_.insert(name).second; ++k) name = base + "_" + std::to_string(k);
    return name;
  }

  void constant(const onnx::NodeProto& p) {
    const auto* a = find_attr(p, "value");
    if (!a || !a->has_t()) throw Unsupported{"only tensor-valued Constant nodes are supported"};
    consts_[p.output(0)] = from_proto(a->t());
  }

  // ---- constant folding --------------------------------------------------------------------
  // A node whose inputs are all constants computes a constant; so does Shape of an activation
  // whose shape is static. Exporters leave such nodes behind: PyTorch 1.13 wraps initializers
  // that several convs share in Identity nodes, and without do_constant_folding a flatten is
  // computed from Shape -> Gather -> Unsqueeze -> Concat -> Reshape. They are evaluated here, at
  // import, and only their result enters the graph (as the constant its reader takes).
  bool fold_constant(const onnx::NodeProto& p) {
    static const std::set<std::string> kFoldable = {
        "Identity", "Cast",  "Unsqueeze", "Squeeze", "Concat", "Gather", "Reshape",
        "Shape",    "Slice", "Add",       "Sub",     "Mul",    "Div",    "Transpose"};
    const std::string& t = p.op_type();
    if (!kFoldable.count(t) || p.output_size() != 1 || p.input_size() == 0) return false;
    std::vector<torch::Tensor> in;
    if (t == "Shape") {
      auto shape = static_shape(p.input(0));
      if (!shape) return false;
      in.push_back(torch::tensor(*shape, torch::kLong));
    } else {
      for (const auto& name : p.input()) {
        if (name.empty()) {
          in.emplace_back();
          continue;
        }
        auto it = consts_.find(name);
        if (it == consts_.end()) return false;
        in.push_back(it->second);
      }
    }
    try {
      consts_[p.output(0)] = evaluate_constant(p, in);
    } catch (const c10::Error& e) {  // shapes or values the op cannot take
      throw Unsupported{"cannot be evaluated on its constant inputs: " +
                        std::string(e.what_without_backtrace())};
    }
    ++folded_[t];
    return true;
  }

  // [N, C, H, W] of a value, N being the input's static batch size; nullopt when that is unknown.
  std::optional<std::vector<int64_t>> static_shape(const std::string& name) {
    auto it = ids_.find(name);
    if (it == ids_.end() || input_batch_ <= 0 || !unsupported_.empty()) return std::nullopt;
    Graph partial = g_;
    partial.output = it->second;
    std::vector<int64_t> shape = infer_shapes(partial).at(it->second);
    shape.insert(shape.begin(), input_batch_);
    return shape;
  }

  static int64_t axis_of(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

  // The axes of Unsqueeze/Squeeze: an attribute before opset 13, an input from 13 on.
  std::vector<int64_t> axes_of(const onnx::NodeProto& p, const std::vector<torch::Tensor>& in) {
    if (opset_ < 13 || in.size() < 2 || !in[1].defined()) return attr_ints(p, "axes", {});
    auto a = in[1].to(torch::kLong).contiguous();
    return std::vector<int64_t>(a.data_ptr<int64_t>(), a.data_ptr<int64_t>() + a.numel());
  }

  torch::Tensor evaluate_constant(const onnx::NodeProto& p, const std::vector<torch::Tensor>& in) {
    const std::string& t = p.op_type();
    const torch::Tensor& x = in[0];
    if (t == "Identity" || t == "Shape") return x;
    if (t == "Cast") return x.to(onnx_dtype(attr_int(p, "to", 1)));
    if (t == "Unsqueeze") {
      auto axes = axes_of(p, in);
      std::sort(axes.begin(), axes.end());
      torch::Tensor y = x;
      const int64_t rank = x.dim() + static_cast<int64_t>(axes.size());
      for (int64_t a : axes) y = y.unsqueeze(axis_of(a, rank));
      return y;
    }
    if (t == "Squeeze") {
      auto axes = axes_of(p, in);
      if (axes.empty()) return x.squeeze();
      for (auto& a : axes) a = axis_of(a, x.dim());
      std::sort(axes.rbegin(), axes.rend());
      torch::Tensor y = x;
      for (int64_t a : axes) y = y.squeeze(a);
      return y;
    }
    if (t == "Concat") {
      std::vector<torch::Tensor> parts(in.begin(), in.end());
      return torch::cat(parts, axis_of(attr_int(p, "axis", 0), x.dim()));
    }
    if (t == "Gather") {
      const int64_t axis = axis_of(attr_int(p, "axis", 0), x.dim());
      auto idx = in.at(1).to(torch::kLong);
      idx = torch::where(idx < 0, idx + x.size(axis), idx);
      auto flat = x.index_select(axis, idx.reshape({-1}));
      std::vector<int64_t> shape(x.sizes().begin(), x.sizes().begin() + axis);
      for (int64_t d : idx.sizes()) shape.push_back(d);
      for (int64_t d = axis + 1; d < x.dim(); ++d) shape.push_back(x.size(d));
      return flat.reshape(shape);
    }
    if (t == "Reshape") {
      auto s = in.at(1).to(torch::kLong).contiguous();
      std::vector<int64_t> shape(s.data_ptr<int64_t>(), s.data_ptr<int64_t>() + s.numel());
      for (size_t i = 0; i < shape.size(); ++i)
        if (shape[i] == 0 && attr_int(p, "allowzero", 0) == 0)
          shape[i] = x.size(static_cast<int64_t>(i));
      return x.reshape(shape).clone();
    }
    if (t == "Slice") return slice_constant(p, in);
    if (t == "Transpose") {
      std::vector<int64_t> perm = attr_ints(p, "perm", {});
      if (perm.empty())
        for (int64_t d = x.dim() - 1; d >= 0; --d) perm.push_back(d);
      return x.permute(perm).contiguous();
    }
    const torch::Tensor& y = in.at(1);
    if (t == "Add") return x + y;
    if (t == "Sub") return x - y;
    if (t == "Mul") return x * y;
    // ONNX's integer Div truncates toward zero, like C.
    if (x.is_floating_point() || y.is_floating_point()) return x / y;
    return torch::div(x, y, "trunc");
  }

  torch::Tensor slice_constant(const onnx::NodeProto& p, const std::vector<torch::Tensor>& in) {
    const torch::Tensor& x = in[0];
    auto ints = [&](size_t i, const char* attr) {
      if (opset_ < 10) return attr_ints(p, attr, {});
      if (i >= in.size() || !in[i].defined()) return std::vector<int64_t>{};
      auto v = in[i].to(torch::kLong).contiguous();
      return std::vector<int64_t>(v.data_ptr<int64_t>(), v.data_ptr<int64_t>() + v.numel());
    };
    auto starts = ints(1, "starts"), ends = ints(2, "ends"), axes = ints(3, "axes"),
         steps = ints(4, "steps");
    if (axes.empty())
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    torch::Tensor y = x;
    for (size_t i = 0; i < starts.size(); ++i) {
      const int64_t a = axis_of(axes.at(i), x.dim()), n = x.size(a);
      const int64_t step = steps.empty() ? 1 : steps[i];
      if (step != 1) throw Unsupported{"Slice with a step other than 1 on a constant"};
      auto clamp = [n](int64_t v) { return std::min(std::max(v < 0 ? v + n : v, int64_t{0}), n); };
      const int64_t b = clamp(starts[i]), e = clamp(ends.at(i));
      y = y.slice(a, b, std::max(b, e));
    }
    return y;
  }

  // TensorProto.DataType -> torch dtype, for Cast.
  static torch::ScalarType onnx_dtype(int64_t to) {
    switch (to) {
      case 1:
        return torch::kFloat;
      case 2:
        return torch::kUInt8;
      case 3:
        return torch::kInt8;
      case 5:
        return torch::kInt16;
      case 6:
        return torch::kInt;
      case 7:
        return torch::kLong;
      case 9:
        return torch::kBool;
      case 10:
        return torch::kHalf;
      case 11:
        return torch::kDouble;
      default:
        throw Unsupported{"Cast to ONNX data type " + std::to_string(to)};
    }
  }

  // A zero Pad of H and W is kept aside and absorbed by the Conv or AveragePool that reads it
  // (PyTorch exports padded average pooling as Pad + AveragePool).
  void pad(const onnx::NodeProto& p) {
    if (attr_string(p, "mode", "constant") != "constant")
      throw Unsupported{"only constant padding"};
    std::vector<int64_t> pads;
    float fill = 0.f;
    if (opset_ < 11) {
      pads = attr_ints(p, "pads", {});
      fill = attr_float(p, "value", 0.f);
    } else {
      auto t = const_input(p, 1, "pads").to(torch::kLong).contiguous();
      pads.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
      if (p.input_size() > 2 && !p.input(2).empty())
        fill = const_input(p, 2, "constant_value").item<float>();
    }
    if (fill != 0.f) throw Unsupported{"only zero padding"};
    if (pads.size() != 8 || pads[0] || pads[1] || pads[4] || pads[5])
      throw Unsupported{"only padding of the spatial dimensions of an NCHW tensor"};
    // A negative pad crops: folding it into the reader's padding would compute something else.
    for (int64_t v : pads)
      if (v < 0)
        throw Unsupported{"negative pads (cropping) are not supported, got pads " +
                          c10::str(c10::IntArrayRef(pads))};
    if (pads[2] != pads[6] || pads[3] != pads[7]) throw Unsupported{"asymmetric padding"};
    padded_[p.output(0)] = {value_input(p, 0), pads[2], pads[3]};
  }

  // The value read as input 0 of a Conv or AveragePool, absorbing a pending Pad into `padding`.
  int padded_input(const onnx::NodeProto& p, std::vector<int64_t>& padding) {
    auto it = padded_.find(p.input(0));
    if (it == padded_.end()) return value_input(p, 0);
    padding[0] += it->second.h;
    padding[1] += it->second.w;
    return it->second.value;
  }

  Node to_node(const onnx::NodeProto& p, const std::string& name) {
    for (const auto& in : p.input())
      if (padded_.count(in) && p.op_type() != "Conv" && p.op_type() != "AveragePool")
        throw Unsupported{
            "reads the output of a Pad, which nnslim supports only before Conv or "
            "AveragePool"};
    const std::string& t = p.op_type();
    if (p.domain() != "" && p.domain() != "ai.onnx")
      throw Unsupported{"custom domain '" + p.domain() + "'"};
    if (t == "Conv") return conv(p);
    if (t == "BatchNormalization") return batchnorm(p);
    if (t == "Relu") return unary(p, Op::kReLU);
    if (t == "Clip") return clip(p);
    if (t == "Add" || t == "Sum") return add(p);
    if (t == "Concat") return concat(p);
    if (t == "MaxPool" || t == "AveragePool") return pool(p);
    if (t == "GlobalAveragePool") return unary(p, Op::kGlobalAvgPool);
    if (t == "Flatten") return flatten(p);
    if (t == "Reshape") return reshape(p);
    if (t == "Gemm") return gemm(p);
    if (t == "Identity") return unary(p, Op::kIdentity);
    if (t == "Dropout") return dropout(p);
    if (t == "Sigmoid") return unary(p, Op::kSigmoid);
    if (t == "HardSigmoid") return hardsigmoid(p);
    if (t == "HardSwish") return unary(p, Op::kHardSwish);
    if (t == "Mul") return mul(p);
    throw Unsupported{"op not supported"};
  }

  Node hardsigmoid(const onnx::NodeProto& p) {
    Node n = make(Op::kHardSigmoid, {value_input(p, 0)});
    n.attrs.alpha = attr_float(p, "alpha", 0.2f);  // ONNX's defaults, not torch's
    n.attrs.beta = attr_float(p, "beta", 0.5f);
    return n;
  }

  Node mul(const onnx::NodeProto& p) {
    if (p.input_size() != 2) throw Unsupported{"needs two inputs"};
    for (int i = 0; i < 2; ++i)
      if (consts_.count(p.input(i)))
        throw Unsupported{"multiplying by a constant tensor ('" + p.input(i) +
                          "') is not supported"};
    return make(Op::kMul, {value_input(p, 0), value_input(p, 1)});
  }

  // ReduceMean over H and W is global average pooling; without keepdims, followed by a flatten
  // ([N, C, 1, 1] -> [N, C]). The axes are an attribute before opset 18, an input from 18 on.
  void reduce_mean(const onnx::NodeProto& p, const std::string& name) {
    std::vector<int64_t> axes;
    if (p.input_size() > 1 && !p.input(1).empty()) {
      auto a = const_input(p, 1, "axes").to(torch::kLong).contiguous();
      axes.assign(a.data_ptr<int64_t>(), a.data_ptr<int64_t>() + a.numel());
    } else {
      axes = attr_ints(p, "axes", {});
    }
    for (auto& a : axes) a = axis_of(a, 4);
    std::sort(axes.begin(), axes.end());
    if (axes != std::vector<int64_t>{2, 3})
      throw Unsupported{"only the mean over H and W (axes [2, 3]) of an NCHW tensor"};
    const int x = value_input(p, 0);
    ++mapped_[p.op_type()];
    Node pool = make(Op::kGlobalAvgPool, {x});
    if (attr_int(p, "keepdims", 1) != 0) {
      pool.name = name;
      ids_[p.output(0)] = g_.add(std::move(pool));
      return;
    }
    pool.name = name + ".pool";
    names_.insert(pool.name);
    const int pooled = g_.add(std::move(pool));
    Node flat = make(Op::kFlatten, {pooled});
    flat.name = name;
    ids_[p.output(0)] = g_.add(std::move(flat));
  }

  // ---- ShuffleNet and ConvNeXt: views and channel ops -----------------------------------------
  // Shape [C, H, W] (or [F]) of a graph value so far.
  Shape shape_of(int id) {
    if (id == kGraphInput) return g_.input_shape;
    if (!unsupported_.empty()) throw Unsupported{"cannot follow shapes after an unsupported node"};
    Graph partial = g_;
    partial.output = id;
    return infer_shapes(partial).at(id);
  }
  std::vector<int64_t> ints_of(const torch::Tensor& t) {
    auto v = t.to(torch::kLong).contiguous().reshape({-1});
    return std::vector<int64_t>(v.data_ptr<int64_t>(), v.data_ptr<int64_t>() + v.numel());
  }
  // A Reshape target resolved against the input's dims ([batch, ...]): 0 copies the input's
  // dimension (allowzero=0), one -1 takes the rest. A symbolic batch counts as 1 on both sides.
  std::vector<int64_t> reshaped(const onnx::NodeProto& p, std::vector<int64_t> in_dims) {
    std::vector<int64_t> t = ints_of(const_input(p, 1, "the target shape"));
    int64_t total = 1, known = 1, unknown = -1;
    for (int64_t d : in_dims) total *= d;
    for (size_t i = 0; i < t.size(); ++i) {
      if (t[i] == 0 && attr_int(p, "allowzero", 0) == 0 && i < in_dims.size()) t[i] = in_dims[i];
      if (t[i] == -1) {
        if (unknown >= 0) throw Unsupported{"two -1 entries in the target shape"};
        unknown = static_cast<int64_t>(i);
      } else {
        known *= t[i];
      }
    }
    if (unknown >= 0 && known > 0) t[unknown] = total / known;
    return t;
  }
  int64_t batch() const { return input_batch_ > 0 ? input_batch_ : 1; }

  // The ops that ShuffleNet and ConvNeXt need beyond to_node's; true when `p` was one of them.
  bool translate_view(const onnx::NodeProto& p, const std::string& name) {
    const std::string& t = p.op_type();
    auto is_act = [&](int i) { return i < p.input_size() && ids_.count(p.input(i)) > 0; };
    auto is_nhwc = [&](int i) { return i < p.input_size() && nhwc_.count(p.input(i)) > 0; };
    auto is_const = [&](int i) { return i < p.input_size() && consts_.count(p.input(i)) > 0; };
    auto add_node = [&](Node n, const std::string& node_name) {
      n.name = node_name;
      names_.insert(node_name);
      return g_.add(std::move(n));
    };
    if (t == "Transpose") {
      const auto perm = attr_ints(p, "perm", {});
      if (is_act(0) && perm == std::vector<int64_t>{0, 2, 3, 1}) {
        nhwc_[p.output(0)] = ids_.at(p.input(0));
      } else if (is_nhwc(0) && perm == std::vector<int64_t>{0, 3, 1, 2}) {
        ids_[p.output(0)] = nhwc_.at(p.input(0));
      } else if (shuffle_.count(p.input(0)) && !shuffle_.at(p.input(0)).transposed &&
                 perm == std::vector<int64_t>{0, 2, 1, 3, 4}) {
        shuffle_[p.output(0)] = {shuffle_.at(p.input(0)).value, shuffle_.at(p.input(0)).groups,
                                 true};
      } else {
        throw Unsupported{
            "only NCHW <-> NHWC transposes (around LayerNorm, MatMul, GELU) and the channel "
            "shuffle's Transpose(0, 2, 1, 3, 4)"};
      }
      ++mapped_[t];
      return true;
    }
    if (t == "Reshape" && is_act(0) && is_const(1)) {
      if (!unsupported_.empty()) return false;
      const int x = ids_.at(p.input(0));
      const Shape s = shape_of(x);
      if (s.size() != 3) return false;
      const auto out = reshaped(p, {batch(), s[0], s[1], s[2]});
      if (out.size() != 5) return false;  // the flatten form, in to_node
      if (out[0] != batch() || out[1] < 1 || out[1] * out[2] != s[0] || out[3] != s[1] ||
          out[4] != s[2])
        throw Unsupported{"only the channel shuffle's [N, groups, C/groups, H, W] 5-D reshape"};
      shuffle_[p.output(0)] = {x, out[1], false};
      ++mapped_[t];
      return true;
    }
    if (t == "Reshape" && shuffle_.count(p.input(0))) {
      const auto sh = shuffle_.at(p.input(0));
      const Shape s = shape_of(sh.value);
      const auto out = reshaped(p, {batch(), s[0] / sh.groups, sh.groups, s[1], s[2]});
      if (!sh.transposed || out != std::vector<int64_t>{batch(), s[0], s[1], s[2]})
        throw Unsupported{"a 5-D reshape that is not a channel shuffle"};
      Node n = make(Op::kChannelShuffle, {sh.value});
      const int64_t per = s[0] / sh.groups;
      for (int64_t j = 0; j < s[0]; ++j)
        n.attrs.perm.push_back((j % sh.groups) * per + j / sh.groups);
      ids_[p.output(0)] = add_node(std::move(n), name);
      ++mapped_[t];
      ++fused_["Reshape/Transpose/Reshape -> channel_shuffle"];
      return true;
    }
    if (t == "Gather" && is_act(0) && is_const(1)) {  // a channel permutation (a pruned shuffle)
      const int x = ids_.at(p.input(0));
      const Shape s = shape_of(x);
      auto idx = ints_of(consts_.at(p.input(1)));
      auto sorted = idx;
      std::sort(sorted.begin(), sorted.end());
      bool perm = s.size() == 3 && consts_.at(p.input(1)).dim() == 1 &&
                  static_cast<int64_t>(idx.size()) == s[0];
      for (size_t i = 0; perm && i < sorted.size(); ++i)
        perm = sorted[i] == static_cast<int64_t>(i);
      const int64_t axis = attr_int(p, "axis", 0);
      if (!perm || (axis != 1 && axis != -3))
        throw Unsupported{"only a Gather of a permutation of the channels (axis 1)"};
      Node n = make(Op::kChannelShuffle, {x});
      n.attrs.perm = idx;
      ids_[p.output(0)] = add_node(std::move(n), name);
      ++mapped_[t];
      return true;
    }
    if (t == "Slice" && is_act(0)) {
      const int x = ids_.at(p.input(0));
      const Shape s = shape_of(x);
      auto ints = [&](int i, const char* attr) {
        if (opset_ < 10) return attr_ints(p, attr, {});
        if (i >= p.input_size() || p.input(i).empty()) return std::vector<int64_t>{};
        return ints_of(const_input(p, i, attr));
      };
      auto starts = ints(1, "starts"), ends = ints(2, "ends"), axes = ints(3, "axes"),
           steps = ints(4, "steps");
      if (axes.empty())
        for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
      if (starts.size() != 1 || ends.size() != 1 || axes.size() != 1 || s.size() != 3 ||
          axis_of(axes[0], 4) != 1 || (!steps.empty() && steps != std::vector<int64_t>{1}))
        throw Unsupported{"only a slice of the channels (axis 1, step 1) of an activation"};
      auto clamp = [&](int64_t v) {
        return std::min(std::max(v < 0 ? v + s[0] : v, int64_t{0}), s[0]);
      };
      Node n = make(Op::kSliceChannels, {x});
      n.attrs.start = clamp(starts[0]);
      n.attrs.end = clamp(ends[0]);
      if (n.attrs.start >= n.attrs.end) throw Unsupported{"an empty slice of the channels"};
      ids_[p.output(0)] = add_node(std::move(n), name);
      ++mapped_[t];
      return true;
    }
    if (t == "Split" && is_act(0)) {
      const int x = ids_.at(p.input(0));
      const Shape s = shape_of(x);
      const int64_t axis = attr_int(p, "axis", 0);
      if (s.size() != 3 || axis_of(axis, 4) != 1)
        throw Unsupported{"only a split of the channels (axis 1) of an activation"};
      std::vector<int64_t> sizes = attr_ints(p, "split", {});
      if (p.input_size() > 1 && !p.input(1).empty()) sizes = ints_of(const_input(p, 1, "split"));
      const int64_t k = p.output_size();
      if (sizes.empty()) {  // equal parts, the last one smaller (as ONNX and torch.chunk)
        const int64_t part = (s[0] + k - 1) / k;
        for (int64_t i = 0; i < k; ++i) sizes.push_back(std::min(part, s[0] - i * part));
      }
      int64_t total = 0;
      for (int64_t v : sizes) total += v;
      if (static_cast<int64_t>(sizes.size()) != k || total != s[0])
        throw Unsupported{"the split sizes do not add up to the channels"};
      int64_t start = 0;
      for (int64_t i = 0; i < k; ++i) {
        if (sizes[i] <= 0) throw Unsupported{"an empty part"};
        Node n = make(Op::kSliceChannels, {x});
        n.attrs.start = start;
        n.attrs.end = start + sizes[i];
        start = n.attrs.end;
        std::string part = name + "." + std::to_string(i);
        for (int c = 1; names_.count(part); ++c)
          part = name + "." + std::to_string(i) + "_" + std::to_string(c);
        if (!p.output(static_cast<int>(i)).empty())
          ids_[p.output(static_cast<int>(i))] = add_node(std::move(n), part);
      }
      ++mapped_[t];
      return true;
    }
    if (t == "LayerNormalization") {
      if (!is_nhwc(0) || (attr_int(p, "axis", -1) != -1 && attr_int(p, "axis", -1) != 3))
        throw Unsupported{
            "only LayerNorm over the channels of an NHWC tensor (a Transpose(0, 2, 3, 1) of an "
            "activation, as torchvision's LayerNorm2d and ConvNeXt blocks)"};
      for (int o = 1; o < p.output_size(); ++o)
        if (!p.output(o).empty()) throw Unsupported{"the Mean / InvStdDev outputs"};
      const int x = nhwc_.at(p.input(0));
      const int64_t c = shape_of(x)[0];
      Node n = make(Op::kLayerNorm2d, {x});
      auto scale = const_input(p, 1, "scale").reshape({-1});
      auto bias = p.input_size() > 2 && !p.input(2).empty() ? const_input(p, 2, "B").reshape({-1})
                                                            : torch::zeros({c});
      if (scale.numel() != c || bias.numel() != c)
        throw Unsupported{"scale and B must have one value per channel"};
      n.params["weight"] = param(scale);
      n.params["bias"] = param(bias);
      n.attrs.eps = attr_float(p, "epsilon", 1e-5f);
      nhwc_[p.output(0)] = add_node(std::move(n), name);
      ++mapped_[t];
      return true;
    }
    if (t == "MatMul" && is_nhwc(0)) {  // Linear over C of NHWC = a 1x1 conv of NCHW
      const int x = nhwc_.at(p.input(0));
      const int64_t c = shape_of(x)[0];
      auto w = const_input(p, 1, "the weight");
      if (w.dim() != 2 || w.size(0) != c)
        throw Unsupported{"the weight must be a [C, out] matrix for C input channels"};
      Node n = make(Op::kConv2d, {x});
      n.params["weight"] = param(w.t().reshape({w.size(1), c, 1, 1}));
      n.attrs.kernel = {1, 1};
      const int id = add_node(std::move(n), name);
      nhwc_[p.output(0)] = id;
      biasless_.insert(id);
      ++mapped_[t];
      return true;
    }
    if (t == "Add" && p.input_size() == 2 && (is_nhwc(0) || is_nhwc(1)) &&
        (is_const(0) || is_const(1))) {  // the Linear's bias
      const int side = is_nhwc(0) ? 0 : 1;
      const int conv = nhwc_.at(p.input(side));
      auto b = consts_.at(p.input(1 - side)).reshape({-1});
      auto uses = std::count_if(nodes_.begin(), nodes_.end(), [&](const onnx::NodeProto& q) {
        return std::count(q.input().begin(), q.input().end(), p.input(side)) > 0;
      });
      if (!biasless_.count(conv) || uses != 1 ||
          b.numel() != g_.node(conv).params.at("weight").size(0))
        throw Unsupported{"only the bias [out] of a MatMul that nothing else reads"};
      g_.node(conv).params["bias"] = param(b);
      biasless_.erase(conv);
      nhwc_[p.output(0)] = conv;
      ++fused_["MatMul + Add -> conv2d (1x1)"];
      return true;
    }
    if (t == "Gelu" && (is_act(0) || is_nhwc(0))) {
      if (attr_string(p, "approximate", "none") != "none")
        throw Unsupported{"only the exact (erf) GELU"};
      const bool nhwc = is_nhwc(0);
      Node n = make(Op::kGELU, {nhwc ? nhwc_.at(p.input(0)) : ids_.at(p.input(0))});
      const int id = add_node(std::move(n), name);
      (nhwc ? nhwc_ : ids_)[p.output(0)] = id;
      ++mapped_[t];
      return true;
    }
    if (t == "Mul" && p.input_size() == 2 && (is_act(0) || is_act(1)) &&
        (is_const(0) || is_const(1))) {  // a per-channel scale (ConvNeXt's layer scale)
      const int side = is_act(0) ? 0 : 1;
      const int x = ids_.at(p.input(side));
      const Shape s = shape_of(x);
      auto k = consts_.at(p.input(1 - side));
      const bool per_channel =
          s.size() == 3 && k.numel() == s[0] && k.dim() >= 3 && k.size(-1) == 1 && k.size(-2) == 1;
      if (!per_channel)
        throw Unsupported{"multiplying by a constant tensor ('" + p.input(1 - side) +
                          "') other than a per-channel [C, 1, 1] scale is not supported"};
      // Held by an identity node until fold_layer_scales() folds it into the conv before it.
      Node n = make(Op::kIdentity, {x});
      n.buffers["layer_scale"] = k.to(torch::kFloat).reshape({-1}).clone();
      ids_[p.output(0)] = add_node(std::move(n), name);
      ++mapped_[t];
      return true;
    }
    return false;
  }

  // A per-channel constant scale y = x * s[c] (ConvNeXt's layer scale, Mul by a [C,1,1]
  // parameter) is folded exactly into the conv that computes x: its weight and bias are scaled.
  void fold_layer_scales() {
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      Node& m = g_.nodes[i];
      if (m.op != Op::kIdentity || !m.buffers.count("layer_scale")) continue;
      const int x = m.inputs[0];
      const Node* conv = x == kGraphInput ? nullptr : &g_.node(x);
      const bool foldable =
          conv && conv->op == Op::kConv2d && x != g_.output && g_.consumers(x).size() == 1 &&
          (conv->attrs.groups == 1 || conv->params.at("weight").size(0) == conv->attrs.groups);
      TORCH_CHECK(foldable, what_, ": node '", m.name,
                  "' multiplies by a constant per-channel scale, which nnslim folds only into a "
                  "convolution (or MatMul) whose output nothing else reads");
      const torch::Tensor scale = m.buffers.at("layer_scale");
      const int id = m.id;
      {
        torch::NoGradGuard no_grad;
        Node& c = g_.node(x);
        auto& w = c.params.at("weight");
        w = (w * scale.view({-1, 1, 1, 1})).contiguous().requires_grad_(true);
        if (c.params.count("bias")) {
          auto& b = c.params.at("bias");
          b = (b * scale).contiguous().requires_grad_(true);
        }
      }
      for (auto& n : g_.nodes)
        for (int& in : n.inputs)
          if (in == id) in = x;
      if (g_.output == id) g_.output = x;
      g_.nodes.erase(g_.nodes.begin() + static_cast<std::ptrdiff_t>(g_.index_of(id)));
      ++fused_["Mul(conv, [C,1,1] constant) -> conv (layer scale folded)"];
      --i;
    }
  }

  // SiLU and (before opset 14) HardSwish reach ONNX as x * Sigmoid(x) and x * HardSigmoid(x)
  // with torch's constants; each pair becomes one node again (the Mul's name and id), provided
  // nothing else reads the activation.
  void fuse_gated_activations() {
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      Node& m = g_.nodes[i];
      if (m.op != Op::kMul) continue;
      for (int side = 0; side < 2; ++side) {
        const int x = m.inputs[side], gate = m.inputs[1 - side];
        if (gate == kGraphInput || gate == g_.output) continue;
        const Node& act = g_.node(gate);
        const bool silu = act.op == Op::kSigmoid;
        const bool hardswish = act.op == Op::kHardSigmoid &&
                               std::abs(act.attrs.alpha - 1.0 / 6) < 1e-7 &&
                               std::abs(act.attrs.beta - 0.5) < 1e-7;
        if ((!silu && !hardswish) || act.inputs[0] != x || g_.consumers(gate).size() != 1) continue;
        m.op = silu ? Op::kSiLU : Op::kHardSwish;
        m.inputs = {x};
        m.attrs = Attrs();
        ++fused_[silu ? "Mul(x, Sigmoid(x)) -> silu" : "Mul(x, HardSigmoid(x)) -> hardswish"];
        g_.nodes.erase(g_.nodes.begin() + static_cast<std::ptrdiff_t>(g_.index_of(gate)));
        i = g_.index_of(m.id);  // `m` moved one slot up; its reference is stale now
        break;
      }
    }
  }

  Node make(Op op, std::vector<int> inputs) {
    Node n;
    n.op = op;
    n.inputs = std::move(inputs);
    return n;
  }

  Node unary(const onnx::NodeProto& p, Op op) { return make(op, {value_input(p, 0)}); }

  Node conv(const onnx::NodeProto& p) {
    Node n = make(Op::kConv2d, {});
    auto w = const_input(p, 1, "weight");
    if (w.dim() != 4) throw Unsupported{"only 2-D convolutions are supported"};
    n.params["weight"] = param(w);
    if (p.input_size() > 2 && !p.input(2).empty())
      n.params["bias"] = param(const_input(p, 2, "bias"));
    auto kernel = attr_ints(p, "kernel_shape", {w.size(2), w.size(3)});
    if (kernel != std::vector<int64_t>{w.size(2), w.size(3)})
      throw Unsupported{"kernel_shape disagrees with the weight's shape"};
    n.attrs.kernel = kernel;
    n.attrs.stride = attr_ints(p, "strides", {1, 1});
    n.attrs.dilation = attr_ints(p, "dilations", {1, 1});
    n.attrs.padding = symmetric_pads(p);
    n.inputs = {padded_input(p, n.attrs.padding)};
    n.attrs.groups = attr_int(p, "group", 1);
    return n;
  }

  Node batchnorm(const onnx::NodeProto& p) {
    if (attr_int(p, "training_mode", 0) != 0) throw Unsupported{"training_mode=1"};
    if (p.output_size() > 1) throw Unsupported{"running-statistics outputs are not supported"};
    Node n = make(Op::kBatchNorm2d, {value_input(p, 0)});
    n.params["weight"] = param(const_input(p, 1, "scale"));
    n.params["bias"] = param(const_input(p, 2, "B"));
    n.buffers["running_mean"] = const_input(p, 3, "mean").clone();
    n.buffers["running_var"] = const_input(p, 4, "var").clone();
    n.attrs.eps = attr_float(p, "epsilon", 1e-5f);
    n.attrs.momentum = 1.0 - attr_float(p, "momentum", 0.9f);
    return n;
  }

  Node clip(const onnx::NodeProto& p) {
    float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
    if (opset_ < 11) {
      lo = attr_float(p, "min", lo);
      hi = attr_float(p, "max", hi);
    } else {
      if (p.input_size() > 1 && !p.input(1).empty()) lo = const_input(p, 1, "min").item<float>();
      if (p.input_size() > 2 && !p.input(2).empty()) hi = const_input(p, 2, "max").item<float>();
    }
    if (lo == 0.f && hi == 6.f) return make(Op::kReLU6, {value_input(p, 0)});
    if (lo == 0.f && std::isinf(hi)) return make(Op::kReLU, {value_input(p, 0)});
    throw Unsupported{"only Clip(0, 6) (ReLU6) and Clip(0, inf) (ReLU) are supported, got Clip(" +
                      std::to_string(lo) + ", " + std::to_string(hi) + ")"};
  }

  Node add(const onnx::NodeProto& p) {
    if (p.input_size() < 2) throw Unsupported{"needs at least two inputs"};
    std::vector<int> ins;
    for (int i = 0; i < p.input_size(); ++i) {
      if (consts_.count(p.input(i)))
        throw Unsupported{"adding a constant tensor ('" + p.input(i) + "') is not supported"};
      ins.push_back(value_input(p, i));
    }
    return make(Op::kAdd, ins);
  }

  Node concat(const onnx::NodeProto& p) {
    int64_t axis = attr_int(p, "axis", 1);
    if (axis != 1 && axis != -3)
      throw Unsupported{"only concatenation along channels (axis 1) is supported"};
    std::vector<int> ins;
    for (int i = 0; i < p.input_size(); ++i) ins.push_back(value_input(p, i));
    return make(Op::kConcat, ins);
  }

  Node pool(const onnx::NodeProto& p) {
    const bool max = p.op_type() == "MaxPool";
    if (max && attr_ints(p, "dilations", {1, 1}) != std::vector<int64_t>{1, 1})
      throw Unsupported{"dilated pooling"};
    if (max && p.output_size() > 1) throw Unsupported{"the Indices output"};
    Node n = make(max ? Op::kMaxPool2d : Op::kAvgPool2d, {});
    n.attrs.kernel = attr_ints(p, "kernel_shape", {});
    if (n.attrs.kernel.size() != 2) throw Unsupported{"only 2-D pooling is supported"};
    n.attrs.stride = attr_ints(p, "strides", {1, 1});
    n.attrs.padding = symmetric_pads(p);
    // torch's rule for the last window (it starts inside the input or its left padding), which
    // is how PyTorch exports ceil_mode and how onnxruntime reads it.
    n.attrs.ceil_mode = attr_int(p, "ceil_mode", 0) != 0;
    const bool padded = n.attrs.padding[0] || n.attrs.padding[1];
    if (!max && padded && attr_int(p, "count_include_pad", 0) == 0)
      throw Unsupported{"padded AveragePool with count_include_pad=0 (nnslim counts the padding)"};
    // A preceding zero Pad is the count_include_pad=1 padding.
    const auto own_padding = n.attrs.padding;
    n.inputs = {max ? value_input(p, 0) : padded_input(p, n.attrs.padding)};
    if (n.attrs.ceil_mode && n.attrs.padding != own_padding && unsupported_.empty()) {
      // torch's ceil rule on the unpadded input must give the size the Pad's output gives.
      Graph partial = g_;
      partial.output = n.inputs[0];
      const Shape s =
          n.inputs[0] == kGraphInput ? g_.input_shape : infer_shapes(partial).at(n.inputs[0]);
      const auto& a = n.attrs;
      for (int d = 0; d < 2 && s.size() == 3; ++d) {
        const int64_t pad = a.padding[d] - own_padding[d];
        if (pool_out(s[1 + d], a.kernel[d], a.stride[d], a.padding[d], true) !=
            pool_out(s[1 + d] + 2 * pad, a.kernel[d], a.stride[d], own_padding[d], true))
          throw Unsupported{
              "ceil_mode after a Pad whose last window starts in the right padding (torch's "
              "rule forbids that window)"};
      }
    }
    return n;
  }

  Node flatten(const onnx::NodeProto& p) {
    if (attr_int(p, "axis", 1) != 1) throw Unsupported{"only Flatten with axis=1 is supported"};
    return make(Op::kFlatten, {value_input(p, 0)});
  }

  // Reshape [N, ...] -> [N, prod(...)] is a flatten; nothing else is.
  Node reshape(const onnx::NodeProto& p) {
    int x = value_input(p, 0);
    auto it = consts_.find(p.input(1));
    if (it == consts_.end())
      throw Unsupported{
          "the target shape is computed at run time; export with torch.flatten(x, 1) "
          "or constant folding"};
    auto s = it->second.to(torch::kLong);
    if (s.numel() != 2) throw Unsupported{"only the flatten form [N, -1] is supported"};
    int64_t n0 = s[0].item<int64_t>(), n1 = s[1].item<int64_t>();
    int64_t features = -2;
    if (unsupported_.empty()) {
      Graph partial = g_;  // shapes so far
      partial.output = x;
      auto shape = infer_shapes(partial).at(x);
      features = 1;
      for (int64_t d : shape) features *= d;
    }
    // An export with a fixed batch size constant-folds x.view(x.size(0), -1) into [B, -1].
    bool batch_kept = n0 == 0 || (n0 == -1 && n1 != -1) || (input_batch_ > 0 && n0 == input_batch_);
    bool rest_flattened = n1 == -1 || n1 == features || features == -2;
    if (!batch_kept || !rest_flattened)
      throw Unsupported{"shape [" + std::to_string(n0) + ", " + std::to_string(n1) +
                        "] is not a flatten of the batch"};
    return make(Op::kFlatten, {x});
  }

  Node gemm(const onnx::NodeProto& p) {
    if (attr_int(p, "transA", 0) != 0) throw Unsupported{"transA=1"};
    Node n = make(Op::kLinear, {value_input(p, 0)});
    auto w = const_input(p, 1, "B");
    if (w.dim() != 2) throw Unsupported{"B must be a matrix"};
    if (attr_int(p, "transB", 0) == 0) w = w.t();  // IR weights are [out, in]
    n.params["weight"] = param(w * attr_float(p, "alpha", 1.f));
    if (p.input_size() > 2 && !p.input(2).empty()) {
      auto c = const_input(p, 2, "C").reshape({-1});
      if (c.numel() != w.size(0)) throw Unsupported{"C must have one value per output"};
      n.params["bias"] = param(c * attr_float(p, "beta", 1.f));
    }
    return n;
  }

  Node dropout(const onnx::NodeProto& p) {
    Node n = make(Op::kDropout, {value_input(p, 0)});
    n.attrs.p = attr_float(p, "ratio", 0.5f);
    if (p.input_size() > 1 && consts_.count(p.input(1)))
      n.attrs.p = consts_.at(p.input(1)).item<float>();
    return n;
  }

  // ---- helpers -------------------------------------------------------------
  std::vector<int64_t> symmetric_pads(const onnx::NodeProto& p) {
    auto pad_mode = attr_string(p, "auto_pad", "NOTSET");
    if (pad_mode != "NOTSET" && pad_mode != "VALID")
      throw Unsupported{"auto_pad=" + pad_mode + " (export with explicit pads)"};
    auto pads = attr_ints(p, "pads", {0, 0, 0, 0});
    if (pads.size() != 4) throw Unsupported{"pads must have 4 entries"};
    for (int64_t v : pads)
      if (v < 0)
        throw Unsupported{"negative pads are not valid, got pads " +
                          c10::str(c10::IntArrayRef(pads))};
    if (pads[0] != pads[2] || pads[1] != pads[3])
      throw Unsupported{"asymmetric padding [" + std::to_string(pads[0]) + "," +
                        std::to_string(pads[1]) + "," + std::to_string(pads[2]) + "," +
                        std::to_string(pads[3]) + "]"};
    return {pads[0], pads[1]};
  }

  int value(const std::string& name, const std::string& reader) {
    auto it = ids_.find(name);
    TORCH_CHECK(it != ids_.end(), what_, ": ", reader, " reads '", name,
                "', which is neither the input nor the output of an earlier node");
    return it->second;
  }
  int value_input(const onnx::NodeProto& p, int i) {
    if (i >= p.input_size()) throw Unsupported{"missing input " + std::to_string(i)};
    if (consts_.count(p.input(i)))
      throw Unsupported{"input " + std::to_string(i) +
                        " is a constant tensor, expected an activation"};
    if (nhwc_.count(p.input(i)))
      throw Unsupported{"reads '" + p.input(i) +
                        "', an NHWC transpose of an activation, which nnslim follows only "
                        "through LayerNormalization, MatMul (+ its bias Add) and GELU back to a "
                        "Transpose(0, 3, 1, 2)"};
    if (shuffle_.count(p.input(i)))
      throw Unsupported{"reads '" + p.input(i) + "', part of an incomplete channel shuffle"};
    return value(p.input(i), "node '" + p.name() + "' (" + p.op_type() + ")");
  }
  torch::Tensor const_input(const onnx::NodeProto& p, int i, const std::string& what) {
    if (i >= p.input_size() || !consts_.count(p.input(i)))
      throw Unsupported{what + " must be an initializer or a Constant"};
    return consts_.at(p.input(i));
  }
  static torch::Tensor param(const torch::Tensor& t) {
    return t.to(torch::kFloat).contiguous().clone().requires_grad_(true);
  }

  const onnx::ModelProto& m_;
  std::string what_;
  OnnxImportOptions opt_;
  int64_t opset_ = 0;
  int64_t input_batch_ = 0;  // the input's static batch size, 0 when symbolic
  Graph g_;
  std::map<std::string, torch::Tensor> consts_;
  std::map<std::string, int> ids_;
  struct Padded {
    int value;
    int64_t h, w;
  };
  std::map<std::string, Padded> padded_;  // Pad outputs waiting for their reader
  std::vector<onnx::NodeProto> nodes_;    // the model's nodes after fuse_patterns()
  std::map<std::string, int> nhwc_;       // ONNX values that are NHWC transposes of graph values
  struct Shuffle {
    int value;        // the NCHW value being shuffled
    int64_t groups;   // after the Reshape to [N, groups, C/groups, H, W]
    bool transposed;  // after the Transpose(0, 2, 1, 3, 4)
  };
  std::map<std::string, Shuffle> shuffle_;  // a channel shuffle in progress
  std::set<int> biasless_;                  // 1x1 convs from a MatMul, their bias Add to come
  std::set<std::string> names_;
  std::vector<std::string> unsupported_;

 public:
  std::map<std::string, int64_t> folded_;  // ops evaluated at import, by op
  std::map<std::string, int64_t> mapped_;  // ops translated into graph nodes, by ONNX op
  std::map<std::string, int64_t> fused_;   // node pairs made one node, by pattern
};

}  // namespace

Graph import_onnx_bytes(const std::string& bytes, const std::string& what,
                        const OnnxImportOptions& options, OnnxImportReport* report) {
  onnx::ModelProto m;
  TORCH_CHECK(m.ParseFromString(bytes), what,
              ": not a valid ONNX model (protobuf parse failed; "
              "truncated or not an .onnx file?)");
  TORCH_CHECK(m.has_graph() && m.graph().node_size() > 0, what,
              ": the ONNX model has no graph nodes");
  Importer importer(m, what, options);
  Graph g = importer.run();
  if (report) {
    report->folded = importer.folded_;
    report->mapped = importer.mapped_;
    report->fused = importer.fused_;
  }
  return g;
}

#else  // !NNSLIM_HAVE_ONNX

Graph import_onnx_bytes(const std::string&, const std::string&, const OnnxImportOptions&,
                        OnnxImportReport*) {
  TORCH_CHECK(false, "this nnslim was built without ONNX support: install libonnx-dev and rebuild");
}

#endif

Graph import_onnx(const std::string& path, const OnnxImportOptions& options,
                  OnnxImportReport* report) {
  std::ifstream f(path, std::ios::binary);
  TORCH_CHECK(f, "cannot open ONNX model '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return import_onnx_bytes(ss.str(), path, options, report);
}

}  // namespace nnslim
